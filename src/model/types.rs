//! The typed values scripts see (`Member`, `ClusterHealth`, `RaftStatus`) and the wire shapes of the
//! admin API they are built from. Field types are Rhai's own (i64, f64, bool, String) so a script can
//! compare `m.commit_index > 10` without conversions.

use std::collections::BTreeMap;
use std::fmt;

use rhai::{Array, Dynamic, Map};
use serde::{Deserialize, Serialize};

/// Converts a field to the Rhai value scripts see.
pub trait ToRhai {
    fn to_rhai(&self) -> Dynamic;
}

impl ToRhai for String {
    fn to_rhai(&self) -> Dynamic {
        self.clone().into()
    }
}
impl ToRhai for bool {
    fn to_rhai(&self) -> Dynamic {
        (*self).into()
    }
}
impl ToRhai for i64 {
    fn to_rhai(&self) -> Dynamic {
        (*self).into()
    }
}
impl ToRhai for f64 {
    fn to_rhai(&self) -> Dynamic {
        (*self).into()
    }
}
impl<T: ToRhai> ToRhai for Option<T> {
    fn to_rhai(&self) -> Dynamic {
        self.as_ref().map_or(Dynamic::UNIT, ToRhai::to_rhai)
    }
}
impl ToRhai for Vec<String> {
    fn to_rhai(&self) -> Dynamic {
        self.iter()
            .map(|s| Dynamic::from(s.clone()))
            .collect::<Array>()
            .into()
    }
}
impl ToRhai for Vec<Member> {
    fn to_rhai(&self) -> Dynamic {
        self.iter()
            .cloned()
            .map(Dynamic::from)
            .collect::<Array>()
            .into()
    }
}
impl ToRhai for Vec<RaftNode> {
    fn to_rhai(&self) -> Dynamic {
        self.iter()
            .map(|n| Dynamic::from(n.to_map()))
            .collect::<Array>()
            .into()
    }
}

/// A typed value with named read-only fields: the same list feeds the Rhai getters, `to_map()` and JSON.
pub trait Record: Clone + 'static {
    const TYPE_NAME: &'static str;
    fn fields() -> &'static [&'static str];
    fn field(&self, name: &str) -> Dynamic;
    fn to_map(&self) -> Map {
        Self::fields()
            .iter()
            .map(|f| ((*f).into(), self.field(f)))
            .collect()
    }
}

macro_rules! record {
    ($ty:ty, $name:literal, [$($field:ident),* $(,)?]) => {
        impl Record for $ty {
            const TYPE_NAME: &'static str = $name;
            fn fields() -> &'static [&'static str] {
                &[$(stringify!($field)),*]
            }
            fn field(&self, name: &str) -> Dynamic {
                match name {
                    $(stringify!($field) => ToRhai::to_rhai(&self.$field),)*
                    _ => Dynamic::UNIT,
                }
            }
        }
    };
}

/// One cluster member as `GET /admin/cluster/members` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    /// Admin URL.
    pub address: String,
    /// "leader" | "follower" | "candidate".
    pub role: String,
    /// "up" | "down" | "draining" | "drained".
    pub state: String,
    pub healthy: bool,
    pub version: String,
    pub commit_index: i64,
    pub applied_index: i64,
    pub replication_lag_ms: i64,
}
record!(
    Member,
    "Member",
    [
        id,
        address,
        role,
        state,
        healthy,
        version,
        commit_index,
        applied_index,
        replication_lag_ms
    ]
);

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} v{} {} commit {} applied {} lag {} ms",
            self.id,
            self.role,
            self.state,
            self.version,
            if self.healthy { "healthy" } else { "unhealthy" },
            self.commit_index,
            self.applied_index,
            self.replication_lag_ms
        )
    }
}

/// What one node says of itself on `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    pub status: String,
    pub raft_state: String,
    pub term: i64,
    pub commit_index: i64,
    pub members: i64,
    pub healthy_members: i64,
    pub node_id: String,
    pub version: String,
    pub leader: Option<String>,
    pub applied_index: i64,
    pub replication_lag_ms: i64,
    #[serde(default)]
    pub draining: bool,
    #[serde(default)]
    pub in_flight: i64,
    #[serde(default)]
    pub paused: bool,
    #[serde(default = "yes")]
    pub joined: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// Schema changes applied and features used, cluster-wide (what forbids rolling back below `since`).
    #[serde(default)]
    pub rollback_limits: Vec<RollbackLimit>,
}

/// One of the runbook's rollback limitations, as the cluster reports it in `/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackLimit {
    /// "schema" | "feature".
    pub kind: String,
    pub detail: String,
    /// The version that applied the change; rolling back below it is unsafe.
    pub since: String,
}

impl ToRhai for Vec<RollbackLimit> {
    fn to_rhai(&self) -> Dynamic {
        self.iter()
            .map(|l| {
                let mut m = Map::new();
                m.insert("kind".into(), l.kind.clone().into());
                m.insert("detail".into(), l.detail.clone().into());
                m.insert("since".into(), l.since.clone().into());
                Dynamic::from_map(m)
            })
            .collect::<Array>()
            .into()
    }
}

fn yes() -> bool {
    true
}

impl NodeHealth {
    /// The node's own report as a `Member`.
    pub fn to_member(&self, address: &str) -> Member {
        let state = if !self.joined {
            "down"
        } else if self.draining && self.in_flight > 0 {
            "draining"
        } else if self.draining {
            "drained"
        } else {
            "up"
        };
        Member {
            id: self.node_id.clone(),
            address: address.to_string(),
            role: self.raft_state.clone(),
            state: state.into(),
            healthy: self.status == "healthy",
            version: self.version.clone(),
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            replication_lag_ms: self.replication_lag_ms,
        }
    }
}

/// The cluster's health as `cluster::health()` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterHealth {
    /// "healthy" | "degraded" | "unavailable".
    pub status: String,
    pub healthy: bool,
    pub leader: Option<String>,
    pub term: i64,
    pub commit_index: i64,
    pub members: Vec<Member>,
    pub healthy_members: i64,
    /// Members needed for a quorum: floor(N/2) + 1.
    pub quorum: i64,
    pub paused: bool,
    /// Why the cluster is not healthy; empty when it is.
    pub problems: Vec<String>,
    /// Schema changes applied and features used (from the leader's `/health`): the runbook's rollback limits.
    pub rollback_limits: Vec<RollbackLimit>,
}
record!(
    ClusterHealth,
    "ClusterHealth",
    [
        status,
        healthy,
        leader,
        term,
        commit_index,
        members,
        healthy_members,
        quorum,
        paused,
        problems,
        rollback_limits
    ]
);

/// Members needed for a quorum of `n`.
pub fn quorum(n: usize) -> i64 {
    (n / 2 + 1) as i64
}

/// A follower is caught up when its replication lag is within this many milliseconds
/// (the runbook's canary threshold for replication lag).
pub const CAUGHT_UP_MS: i64 = 100;

impl ClusterHealth {
    /// Judges the cluster from the members list and one node's view of leader, term and pause.
    /// `notes` gives what is known about a member beyond its state (why it cannot be reached, say); a
    /// note for an id that is not a member is a problem of its own.
    pub fn assess(
        members: Vec<Member>,
        view: &NodeHealth,
        notes: &BTreeMap<String, String>,
    ) -> ClusterHealth {
        let quorum = quorum(members.len());
        let healthy_members = members
            .iter()
            .filter(|m| m.healthy && m.state != "down")
            .count() as i64;
        let leader = members
            .iter()
            .find(|m| m.role == "leader" && m.state != "down")
            .map(|m| m.id.clone());
        let mut problems = Vec::new();
        if leader.is_none() {
            problems.push("no leader: an election is in progress or quorum is lost".to_string());
        }
        for m in &members {
            match (member_problem(m), notes.get(&m.id)) {
                (Some(p), Some(note)) => problems.push(format!("{p} ({note})")),
                (Some(p), None) => problems.push(p),
                (None, Some(note)) => problems.push(format!("{}: {note}", m.id)),
                (None, None) => {}
            }
        }
        let status = if leader.is_none() || healthy_members < quorum {
            "unavailable"
        } else if problems.is_empty() {
            "healthy"
        } else {
            "degraded"
        };
        ClusterHealth {
            status: status.into(),
            healthy: status == "healthy",
            leader,
            term: view.term,
            commit_index: view.commit_index,
            members,
            healthy_members,
            quorum,
            paused: view.paused,
            problems,
            rollback_limits: view.rollback_limits.clone(),
        }
    }
}

/// Why one member is not fully healthy, if it is not.
pub fn member_problem(m: &Member) -> Option<String> {
    if m.state == "down" {
        Some(format!("{}: down", m.id))
    } else if !m.healthy {
        Some(format!("{}: unhealthy", m.id))
    } else if m.state != "up" {
        Some(format!("{}: {}", m.id, m.state))
    } else if m.replication_lag_ms > CAUGHT_UP_MS {
        Some(format!(
            "{}: replication lag {} ms (limit {CAUGHT_UP_MS} ms)",
            m.id, m.replication_lag_ms
        ))
    } else {
        None
    }
}

impl fmt::Display for ClusterHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {}: {}/{} members healthy (quorum {}), leader {}, term {}, commit {}{}",
            self.status,
            self.healthy_members,
            self.members.len(),
            self.quorum,
            self.leader.as_deref().unwrap_or("none"),
            self.term,
            self.commit_index,
            if self.paused { ", PAUSED" } else { "" }
        )?;
        for p in &self.problems {
            write!(f, "\n  problem: {p}")?;
        }
        Ok(())
    }
}

/// One node in `GET /admin/raft/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftNode {
    pub id: String,
    pub role: String,
    pub commit_index: i64,
    pub applied_index: i64,
    pub match_index: i64,
}
record!(
    RaftNode,
    "RaftNode",
    [id, role, commit_index, applied_index, match_index]
);

/// `raft::status()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftStatus {
    pub leader: Option<String>,
    pub term: i64,
    pub commit_index: i64,
    pub nodes: Vec<RaftNode>,
}
record!(
    RaftStatus,
    "RaftStatus",
    [leader, term, commit_index, nodes]
);

impl fmt::Display for RaftStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "raft: leader {}, term {}, commit {}",
            self.leader.as_deref().unwrap_or("none"),
            self.term,
            self.commit_index
        )?;
        for n in &self.nodes {
            write!(
                f,
                "\n  {} {} commit {} applied {} match {}",
                n.id, n.role, n.commit_index, n.applied_index, n.match_index
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, role: &str, state: &str, healthy: bool, lag: i64) -> Member {
        Member {
            id: id.into(),
            address: format!("http://{id}:9090"),
            role: role.into(),
            state: state.into(),
            healthy,
            version: "0.10.4".into(),
            commit_index: 10,
            applied_index: 10,
            replication_lag_ms: lag,
        }
    }

    fn view() -> NodeHealth {
        serde_json::from_value(serde_json::json!({
            "status": "healthy", "raft_state": "leader", "term": 3, "commit_index": 10, "members": 3,
            "healthy_members": 3, "node_id": "node1", "version": "0.10.4", "leader": "node1",
            "applied_index": 10, "replication_lag_ms": 0
        }))
        .unwrap()
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!([1, 2, 3, 4, 5, 300].map(quorum), [1, 2, 2, 3, 3, 151]);
    }

    #[test]
    fn health_is_judged_from_members() {
        let ok = ClusterHealth::assess(
            vec![
                member("node1", "leader", "up", true, 0),
                member("node2", "follower", "up", true, 5),
                member("node3", "follower", "up", true, 0),
            ],
            &view(),
            &BTreeMap::new(),
        );
        assert_eq!(
            (
                ok.status.as_str(),
                ok.healthy,
                ok.healthy_members,
                ok.quorum
            ),
            ("healthy", true, 3, 2)
        );
        assert!(ok.problems.is_empty());

        let degraded = ClusterHealth::assess(
            vec![
                member("node1", "leader", "up", true, 0),
                member("node2", "follower", "down", false, 0),
                member("node3", "follower", "up", true, 900),
            ],
            &view(),
            &BTreeMap::new(),
        );
        assert_eq!(degraded.status, "degraded");
        assert_eq!(
            degraded.problems,
            vec![
                "node2: down",
                "node3: replication lag 900 ms (limit 100 ms)"
            ]
        );

        let gone = ClusterHealth::assess(
            vec![
                member("node1", "leader", "down", false, 0),
                member("node2", "follower", "down", false, 0),
                member("node3", "follower", "up", true, 0),
            ],
            &view(),
            &BTreeMap::new(),
        );
        assert_eq!(gone.status, "unavailable");
        assert_eq!(gone.leader, None);
    }

    #[test]
    fn notes_explain_problems_and_unknown_members_are_problems() {
        let notes = BTreeMap::from([
            (
                "node2".to_string(),
                "not answering: connection refused".to_string(),
            ),
            (
                "node3".to_string(),
                "a member missing from the inventory".to_string(),
            ),
        ]);
        let h = ClusterHealth::assess(
            vec![
                member("node1", "leader", "up", true, 0),
                member("node2", "follower", "down", false, 0),
                member("node3", "follower", "up", true, 0),
            ],
            &view(),
            &notes,
        );
        assert_eq!(
            h.problems,
            vec![
                "node2: down (not answering: connection refused)",
                "node3: a member missing from the inventory"
            ]
        );
        assert_eq!(h.status, "degraded");
    }

    #[test]
    fn records_expose_every_field_and_none_as_unit() {
        let m = member("node2", "follower", "drained", true, 7);
        let map = m.to_map();
        assert_eq!(map.len(), Member::fields().len());
        assert_eq!(map["replication_lag_ms"].as_int().unwrap(), 7);
        let r = RaftStatus {
            leader: None,
            term: 1,
            commit_index: 2,
            nodes: vec![],
        };
        assert!(r.field("leader").is_unit());
    }

    #[test]
    fn node_health_maps_drain_states() {
        let mut h = view();
        h.draining = true;
        h.in_flight = 2;
        assert_eq!(h.to_member("u").state, "draining");
        h.in_flight = 0;
        assert_eq!(h.to_member("u").state, "drained");
        h.joined = false;
        assert_eq!(h.to_member("u").state, "down");
    }
}

/// What a command printed and how it exited. A non-zero status is a result, not an error.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ExecOutput {
    pub status: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    /// What a rehearsal answers for a command it must not run: the twin has no host, and running it here
    /// would act on this machine instead.
    pub fn not_run() -> ExecOutput {
        ExecOutput {
            status: 0,
            stdout: String::new(),
            stderr: "(rehearsal: not run)".into(),
        }
    }
}
