//! The admin API's answers (drain, pause, snapshot, test transaction) and its views: `/health`, the
//! members, the Raft status, the backup status, and what `/metrics` shows.

use serde::Serialize;

use super::node::{Histogram, ProbeOutcome, Role};
use super::{RollbackLimit, Snapshot, World};

const BACKUP_MAX_AGE: f64 = 86_400.0;
pub const MEMORY_BASE: f64 = 512.0 * 1024.0 * 1024.0;
const BAD_MEMORY_FACTOR: f64 = 1.6;

/// An admin API refusal: HTTP status and the `{"error": ...}` message.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub(super) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_limits: Option<Vec<RollbackLimit>>,
    pub status: &'static str,
    pub raft_state: &'static str,
    pub term: u64,
    pub commit_index: u64,
    pub members: usize,
    pub healthy_members: usize,
    pub node_id: String,
    pub version: String,
    pub leader: Option<String>,
    pub applied_index: u64,
    pub replication_lag_ms: u64,
    pub draining: bool,
    pub in_flight: u64,
    pub paused: bool,
    pub joined: bool,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub address: String,
    pub role: &'static str,
    pub state: &'static str,
    pub healthy: bool,
    pub version: String,
    pub commit_index: u64,
    pub applied_index: u64,
    pub replication_lag_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RaftNodeView {
    pub id: String,
    pub role: &'static str,
    pub commit_index: u64,
    pub applied_index: u64,
    pub match_index: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RaftStatus {
    pub leader: Option<String>,
    pub term: u64,
    pub commit_index: u64,
    pub nodes: Vec<RaftNodeView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupStatus {
    pub ok: bool,
    pub last_snapshot_at: Option<f64>,
    pub age_secs: Option<f64>,
    pub index: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransferReply {
    pub from: String,
    pub to: String,
    pub term: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TxReply {
    pub ok: bool,
    pub latency_ms: f64,
    pub leader: String,
}

/// Everything `/metrics` shows, copied out so rendering happens outside the lock.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    pub node_id: String,
    pub version: String,
    pub raft_state: Role,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub elections: u64,
    pub tx_commits: u64,
    pub tx_aborts: u64,
    pub latency: Histogram,
    pub members: usize,
    pub healthy: usize,
    pub memory_bytes: f64,
    pub replication_lag_secs: f64,
}

impl World {
    /// Records a schema change or a feature in use (control API), as a newer release would on first use.
    pub fn add_rollback_limit(&mut self, limit: RollbackLimit) {
        self.event(
            None,
            "rollback_limit",
            format!("{} {} (since {})", limit.kind, limit.detail, limit.since),
        );
        self.rollback_limits.push(limit);
    }

    pub(super) fn require_peers(&self, via: usize) -> Result<(), ApiError> {
        if self.partitioned(via) {
            Err(ApiError::new(503, "partitioned: cannot reach peers"))
        } else {
            Ok(())
        }
    }

    pub fn set_draining(&mut self, i: usize, draining: bool) {
        self.nodes[i].draining = draining;
        let kind = if draining { "drain" } else { "undrain" };
        self.event(Some(i), kind, "");
    }

    pub fn set_paused(&mut self, via: usize, paused: bool) -> Result<(), ApiError> {
        self.require_peers(via)?;
        if self.paused != paused {
            self.paused = paused;
            let kind = if paused { "pause" } else { "resume" };
            self.event(Some(via), kind, "");
        }
        Ok(())
    }

    pub fn backup_status(&self) -> BackupStatus {
        match &self.snapshot {
            Some(s) => {
                let age = self.now - s.at;
                BackupStatus {
                    ok: age <= BACKUP_MAX_AGE,
                    last_snapshot_at: Some(self.start_unix + s.at),
                    age_secs: Some(age),
                    index: s.index,
                }
            }
            None => BackupStatus {
                ok: false,
                last_snapshot_at: None,
                age_secs: None,
                index: 0,
            },
        }
    }

    pub fn take_snapshot(&mut self, via: usize) -> Result<BackupStatus, ApiError> {
        if self.known_leader(via) != Some(via) {
            let why = match self.known_leader(via) {
                Some(l) => format!("not the leader; leader is {}", self.nodes[l].id),
                None => "not the leader; no leader is known".to_string(),
            };
            return Err(ApiError::new(409, why));
        }
        let index = self.nodes[via].raft.commit;
        let leader = &self.nodes[via].raft;
        self.snapshot = Some(Snapshot {
            at: self.now,
            index,
            term: leader.term,
            log: leader.log.prefix(index),
        });
        self.event(Some(via), "snapshot", format!("index {index}"));
        Ok(self.backup_status())
    }

    /// `POST /admin/test-transaction`: sends the probe write through node `via`, down the clients' own
    /// path (`submit_probe`); its answer comes from `test_transaction_answer` once it is committed or
    /// has failed, within the clients' 2 s deadline.
    pub fn test_transaction(&mut self, via: usize) -> u64 {
        self.submit_probe(via)
    }

    /// The test transaction's answer: None while it waits. `{ok, latency_ms, leader}` once committed;
    /// 503 naming why when it was not committed by its deadline or its node went down.
    pub fn test_transaction_answer(&mut self, id: u64) -> Option<Result<TxReply, ApiError>> {
        Some(match self.take_probe(id)? {
            ProbeOutcome::Committed {
                latency_secs,
                leader,
            } => Ok(TxReply {
                ok: true,
                latency_ms: latency_secs * 1000.0,
                leader: self.nodes[leader].id.clone(),
            }),
            ProbeOutcome::Failed(why) => Err(ApiError::new(503, why)),
        })
    }

    pub fn test_transaction_settled(&self, id: u64) -> bool {
        self.probe_settled(id)
    }

    pub fn health(&self, i: usize) -> Health {
        let n = &self.nodes[i];
        let leader = self.known_leader(i);
        let partitioned = self.partitioned(i);
        let healthy = n.joined && !partitioned && leader.is_some();
        let error = if let Some(e) = &n.join_error {
            Some(e.clone())
        } else if partitioned {
            Some("partitioned: cannot reach peers".to_string())
        } else if leader.is_none() {
            Some(format!(
                "no leader: {} of {} members reachable, quorum is {}",
                self.healthy_count(),
                self.nodes.len(),
                self.quorum()
            ))
        } else {
            None
        };
        Health {
            rollback_limits: self
                .rollback_limits_reported
                .then(|| self.rollback_limits.clone()),
            status: if healthy { "healthy" } else { "unhealthy" },
            raft_state: self.role(i).as_str(),
            term: n.raft.term,
            commit_index: n.raft.commit,
            members: self.nodes.len(),
            healthy_members: self.healthy_count(),
            node_id: n.id.clone(),
            version: n.host.running.to_string(),
            leader: leader.map(|l| self.nodes[l].id.clone()),
            applied_index: n.applied_index(),
            replication_lag_ms: self.lag_ms(i).round() as u64,
            draining: n.draining,
            in_flight: n.in_flight(),
            paused: self.paused,
            joined: n.joined,
            error,
        }
    }

    pub fn members(&self) -> Vec<MemberView> {
        (0..self.nodes.len())
            .map(|i| {
                let n = &self.nodes[i];
                let up = n.is_running() && n.joined;
                let state = match (up, n.draining, n.in_flight()) {
                    (false, _, _) => "down",
                    (true, false, _) => "up",
                    (true, true, 0) => "drained",
                    (true, true, _) => "draining",
                };
                MemberView {
                    id: n.id.clone(),
                    address: n.admin_url.clone(),
                    role: self.role(i).as_str(),
                    state,
                    healthy: !self.partitioned(i) && self.known_leader(i).is_some(),
                    version: if n.is_running() {
                        n.host.running.to_string()
                    } else {
                        n.host.installed.to_string()
                    },
                    commit_index: n.raft.commit,
                    applied_index: n.applied_index(),
                    replication_lag_ms: self.lag_ms(i).round() as u64,
                }
            })
            .collect()
    }

    pub fn raft_status(&self, via: usize) -> RaftStatus {
        let leader = self.known_leader(via);
        RaftStatus {
            leader: leader.map(|l| self.nodes[l].id.clone()),
            term: self.nodes[via].raft.term,
            commit_index: self.nodes[via].raft.commit,
            nodes: (0..self.nodes.len())
                .map(|i| {
                    let n = &self.nodes[i];
                    let match_index = leader
                        .and_then(|l| self.nodes[l].raft.progress.get(i))
                        .map_or(n.raft.log.last(), |p| p.match_idx);
                    RaftNodeView {
                        id: n.id.clone(),
                        role: self.role(i).as_str(),
                        commit_index: n.raft.commit,
                        applied_index: n.applied_index(),
                        match_index,
                    }
                })
                .collect(),
        }
    }

    pub fn metrics(&mut self, i: usize) -> MetricsSnapshot {
        let jitter = 0.99 + self.noise.f64() * 0.02;
        let n = &self.nodes[i];
        let bad = if self.is_bad(&n.host.running) {
            BAD_MEMORY_FACTOR
        } else {
            1.0
        };
        MetricsSnapshot {
            node_id: n.id.clone(),
            version: n.host.running.to_string(),
            raft_state: self.role(i),
            term: n.raft.term,
            commit_index: n.raft.commit,
            applied_index: n.applied_index(),
            elections: n.metrics.elections_seen,
            tx_commits: n.metrics.tx_commits,
            tx_aborts: n.metrics.tx_aborts,
            latency: n.metrics.latency.clone(),
            members: self.nodes.len(),
            healthy: self.healthy_count(),
            memory_bytes: (MEMORY_BASE * n.metrics.memory_factor * bad * jitter).round(),
            replication_lag_secs: self.lag_ms(i) / 1000.0,
        }
    }
}
