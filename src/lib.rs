//! gerbang — a FHIR R4 gateway between Indonesian primary-care systems (puskesmas, pustu,
//! posyandu) and SATUSEHAT.
//!
//! A record travels one path (see `DESIGN.md`): input check → map → validate → commit →
//! deliver. The first three stages are pure ([`mapping`], [`profile`]) and run identically in
//! the server, the CLI, the tests and the built-in [`sandbox`]; the last two own all I/O
//! ([`store`], [`deliver`]). [`api`] wires them to HTTP; [`console`] shows them to people.

pub mod allocator;
pub mod api;
pub mod cli;
pub mod config;
pub mod console;
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
