//! What the simulator records for its observers: the event log (`SimEvent`) and the figures and
//! invariants since start (`SimStats`). A leaf: it imports nothing of the simulator.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SimStats {
    pub client_writes_ok: u64,
    pub client_writes_failed: u64,
    pub elections: u64,
    pub max_leaders_in_a_term: u64,
    pub min_healthy_seen: u64,
    pub lost_committed_writes: u64,
    /// Leaders lost other than by a completed hand-over (stopped, crashed, hung, cut off, or
    /// unseated by a higher term).
    #[serde(default)]
    pub leader_losses: u64,
    /// The longest simulated stretch with client writes waiting and the commit index still.
    #[serde(default)]
    pub max_commit_stall_ms: u64,
    /// Simulated time without a majority of members up, reachable and caught up.
    #[serde(default)]
    pub quorum_lost_ms: u64,
    /// The longest simulated stretch without an acknowledged client write: what a client sees of
    /// an outage, and what the calibration compares with etcd.
    #[serde(default)]
    pub max_ack_gap_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SimEvent {
    /// Simulated seconds since the simulator started.
    pub t: f64,
    pub node: Option<String>,
    pub kind: String,
    pub detail: String,
}
