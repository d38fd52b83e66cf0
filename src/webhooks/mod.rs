//! Telling facility systems what became of their records: each facility's events
//! ([`crate::store::events`]) are sent to its webhook, signed as the Standard Webhooks
//! convention describes ([`signature`]), in order, at least once ([`dispatch`]); the same
//! events are readable as a feed (`GET /events`) in the same JSON ([`payload`]).

pub mod dispatch;
pub mod payload;
pub mod registry;
pub mod signature;
