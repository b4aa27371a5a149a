//! mimalloc 3.x, preloadable: `LD_PRELOAD=.../libpeer_mimalloc3.so program`.
#![no_std]
#![allow(clippy::missing_safety_doc)]

include!("../../common.rs");
include!("../../mimalloc.rs");
