//! Webhooks: gerbang tells a facility's system what became of its records (delivered,
//! refused, corrected) by POSTing events to an endpoint the facility registers. Events are
//! signed as Standard Webhooks specifies, so the receiver can check they came from gerbang
//! and were not replayed or altered ([`signature`]).

pub mod signature;
