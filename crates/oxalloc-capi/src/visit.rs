//! The heap walk for C: `ox_heap_visit`, on the `oxalloc` crate's [`engine::heap_visit`].

use core::ffi::{c_int, c_void};
use engine::{AreaInfo, PageInfo, Visit};

/// `ox_heap_visit_fn`: called for an area (`page` and `block` null), a page (`block` null) or a
/// live block; returns 0 to go on, anything else to stop the walk.
pub type VisitFn = unsafe extern "C" fn(
    area: *const AreaInfo,
    page: *const PageInfo,
    block: *mut c_void,
    block_size: usize,
    arg: *mut c_void,
) -> c_int;

/// `OX_VISIT_BLOCKS`: also visit live blocks.
pub const VISIT_BLOCKS: c_int = 1;

/// `ox_heap_visit`: walks the heap (see `oxalloc.h`); returns 0 when the walk went to the end,
/// or the nonzero value `visit` returned to stop it.
pub unsafe fn heap_visit(flags: c_int, visit: Option<VisitFn>, arg: *mut c_void) -> c_int {
    let Some(visit) = visit else {
        return 0;
    };
    let mut stopped = 0;
    let mut area_of_page: *const AreaInfo = core::ptr::null();
    engine::heap_visit(flags & VISIT_BLOCKS != 0, |v| {
        // SAFETY: the caller's function gets pointers that live for the call, per oxalloc.h.
        let r = unsafe {
            match v {
                Visit::Area(a) => {
                    area_of_page = a;
                    visit(a, core::ptr::null(), core::ptr::null_mut(), 0, arg)
                }
                Visit::Page(a, p) => visit(a, p, core::ptr::null_mut(), 0, arg),
                Visit::Block(p, b, size) => visit(area_of_page, p, b.cast(), size, arg),
            }
        };
        stopped = r;
        r == 0
    });
    stopped
}
