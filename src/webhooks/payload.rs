//! An event as JSON: the body of a webhook request and an item of `GET /events`, the same
//! bytes on every retry (built from the stored event alone). The shape follows the Standard
//! Webhooks convention: `type`, `timestamp`, `data`.

use crate::store::Event;
use crate::time::millis_to_utc;
use serde_json::{Value, json};

pub fn event_json(e: &Event) -> Value {
    let mut data = json!({
        "receipt": e.receipt_id,
        "record_type": e.record_type,
        "local_id": e.local_id,
    });
    if let Some(r) = e.revision {
        data["revision"] = json!(r);
    }
    if let Value::Object(extra) = &e.data {
        for (k, v) in extra {
            if !v.is_null() {
                data[k] = v.clone();
            }
        }
    }
    json!({
        "id": e.id,
        "seq": e.seq,
        "type": e.kind.as_str(),
        "timestamp": millis_to_utc(e.at),
        "data": data,
    })
}
