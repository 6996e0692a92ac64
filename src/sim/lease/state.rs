//! The run lease as the cluster holds it: the holder's record and the request ids handed out. Data only;
//! the rules that change it are the handlers' in `mod.rs`. A leaf, so `Shared` can hold it.

use serde::Serialize;
use serde_json::Value;

/// The lease as `GET /admin/lease` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Lease {
    pub(super) run_id: String,
    pub(super) holder: String,
    pub(super) script: String,
    pub(super) args: Vec<String>,
    /// Unix seconds (the wall clock, not the simulated one): "since when" for the operator.
    pub(super) acquired_at: f64,
    pub(super) ttl_secs: f64,
    pub(super) step: Option<String>,
    pub(super) request: Option<Value>,
    /// `{by, reason, since, at}` while the holder is paused, as its last renewal said.
    pub(super) paused: Option<Value>,
    /// The steps the holder has begun, as its last renewal sent them (an array), for `status --watch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) history: Option<Value>,
    /// Real seconds left before it expires unless renewed.
    pub(super) expires_in_secs: f64,
    #[serde(skip)]
    pub(super) expires_at: f64,
}

/// The lease state beside the world; lock it before the world, never the other way round.
#[derive(Default)]
pub(crate) struct LeaseState {
    pub(super) held: Option<Lease>,
    /// The last request id handed out: ids are never reused, so an acknowledgement names one request.
    pub(super) requests: u64,
}

impl LeaseState {
    /// Moves the lease's expiry `secs` simulated seconds on: time fast-forwarded is not its holder's.
    pub(crate) fn postpone(&mut self, secs: f64) {
        if let Some(l) = self.held.as_mut() {
            l.expires_at += secs;
        }
    }
}
