//! gerbang — a FHIR R4 gateway between Indonesian primary-care systems (puskesmas, pustu,
//! posyandu) and SATUSEHAT.
//!
//! A record travels one path (see `DESIGN.md`): input check → map → validate → commit →
//! deliver. The first three stages are pure ([`mapping`], [`profile`]) and run identically in
//! the server, the CLI, the tests and the built-in [`sandbox`]; the last two own all I/O
//! ([`store`], [`deliver`]). [`api`] wires them to HTTP.

/// Every binary linked with gerbang (the server and CLI, its tests and benchmarks) allocates
/// through mimalloc: mapping and validation build many small short-lived values, and glibc's
/// malloc/free were a quarter of their time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hand the memory freed so far back to the operating system. Loading the profiles parses
/// several megabytes of JSON that are dropped once compiled; mimalloc keeps freed pages for
/// reuse, which would leave a resident size three times what the gateway holds.
pub fn give_back_freed_memory() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; any thread may call it at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

pub mod api;
pub mod cli;
pub mod config;
pub mod dead_letters;
pub mod deliver;
pub mod fhir;
pub mod fhir_in;
pub mod internal_events;
pub mod logging;
pub mod mapping;
pub mod profile;
pub mod pull;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod terminology;
pub mod time;
pub mod webhooks;
