//! The process's memory allocator: mimalloc, and the two ways gerbang asks it to hand memory
//! back (at start, after the profiles are compiled; and freed pages at once, always).

/// Every binary linked with gerbang (the server and CLI, its tests and benchmarks) allocates
/// through mimalloc: mapping and validation build many small short-lived values, and glibc's
/// malloc/free were a quarter of their time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay`, the 16th of its options (libmimalloc-sys's constants
/// name mimalloc 2's, whose order differs).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Pages freed are handed back to the system at once rather than after mimalloc's default of a
/// second (ten for whole arenas): a gateway that delivered a few thousand records otherwise
/// holds ~35 MB it no longer uses. Called first thing in `main`.
pub fn give_back_freed_pages_at_once() {
    // SAFETY: reading and setting a mimalloc option is allowed at any time. The option is only
    // set when it holds mimalloc 3's default purge delay (1000 ms), so that a different
    // mimalloc, or an operator's own MIMALLOC_PURGE_DELAY, is left alone.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Hand the memory freed so far back to the operating system. Loading the profiles parses
/// several megabytes of JSON that are dropped once compiled; mimalloc keeps freed pages for
/// reuse, which would leave a resident size three times what the gateway holds.
pub fn give_back_freed_memory() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
