//! The sampled heap profile for C: `ox_profile_dump`, on the `oxalloc` crate's
//! [`engine::profile_dump`].

use core::ffi::{c_char, c_int, CStr};

/// `ox_profile_dump`: writes the live samples of the heap profile to `path` (NULL: the file of
/// `OXALLOC_PROFILE_FILE`). Returns 0 on success, -1 if profiling is off or the file cannot be
/// written.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
pub unsafe fn profile_dump(path: *const c_char) -> c_int {
    // SAFETY: per the contract.
    let path = (!path.is_null()).then(|| unsafe { CStr::from_ptr(path) });
    if engine::profile_dump(path) {
        0
    } else {
        -1
    }
}
