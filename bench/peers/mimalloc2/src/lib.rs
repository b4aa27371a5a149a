//! mimalloc 2.x, preloadable: `LD_PRELOAD=.../libpeer_mimalloc2.so program`.
#![no_std]
#![allow(clippy::missing_safety_doc)]

include!("../../common.rs");
include!("../../mimalloc.rs");
