//! The typed values scripts see (`Member`, `ClusterHealth`, `RaftStatus`, `Version`, `Metrics`) and the
//! wire shapes of the admin API they are built from. Each derives `CustomType` for its read-only
//! properties and `Serialize` for `to_map()` and JSON; `script::custom_types` lists them for the engine.
//! Properties read as Rhai's own types (int, float, bool, string, array, map, `()` for none) so a script
//! can compare `m.commit_index > 10` without conversions.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rhai::{Array, CustomType, Dynamic, EvalAltResult, Map, TypeBuilder};
use serde::{Deserialize, Serialize};

use super::metrics_text::Scrape;

/// What every typed value has besides its properties: `print` and `debug` show its `Display`.
/// Named as `extra` in each `#[derive(CustomType)]`.
pub fn printable<T: CustomType + fmt::Display>(b: &mut TypeBuilder<T>) {
    b.on_print(|v| v.to_string()).on_debug(|v| v.to_string());
}

/// As `printable`, plus `to_map()`: serde's map of the value, so the map and `--format json` name the
/// same fields with the same values.
fn record<T: CustomType + Serialize + fmt::Display>(b: &mut TypeBuilder<T>) {
    printable(b);
    b.with_fn("to_map", |v: &mut T| -> Map { to_map(v) });
}

/// serde's map of a record (a struct, which serde always writes as a map).
fn to_map<T: Serialize>(v: &T) -> Map {
    plain(v).cast::<Map>()
}

/// A value as plain Rhai data (maps, arrays, strings, numbers, `()` for none), through serde.
fn plain<T: Serialize>(v: &T) -> Dynamic {
    // Only structs of strings, numbers, options and vectors come here: serde cannot fail on those.
    rhai::serde::to_dynamic(v).expect("plain data converts to a Rhai value")
}

/// One cluster member as `GET /admin/cluster/members` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CustomType)]
#[rhai_type(extra = record)]
pub struct Member {
    #[rhai_type(readonly)]
    pub id: String,
    /// Admin URL.
    #[rhai_type(readonly)]
    pub address: String,
    /// "leader" | "follower" | "candidate".
    #[rhai_type(readonly)]
    pub role: String,
    /// "up" | "down" | "draining" | "drained".
    #[rhai_type(readonly)]
    pub state: String,
    #[rhai_type(readonly)]
    pub healthy: bool,
    /// `UNKNOWN_VERSION` for a node that does not answer and that no member reports.
    #[rhai_type(readonly)]
    pub version: String,
    #[rhai_type(readonly)]
    pub commit_index: i64,
    #[rhai_type(readonly)]
    pub applied_index: i64,
    #[rhai_type(readonly)]
    pub replication_lag_ms: i64,
}

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
    /// Schema changes applied and features used, cluster-wide (what forbids rolling back below `since`);
    /// `None` when the node does not report them, which is not the same as reporting none.
    #[serde(default)]
    pub rollback_limits: Option<Vec<RollbackLimit>>,
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
#[derive(Debug, Clone, PartialEq, Serialize, CustomType)]
#[rhai_type(extra = Self::script_api)]
pub struct ClusterHealth {
    /// "healthy" | "degraded" | "unavailable".
    #[rhai_type(readonly)]
    pub status: String,
    #[rhai_type(readonly)]
    pub healthy: bool,
    #[rhai_type(readonly)]
    pub leader: Option<String>,
    #[rhai_type(readonly)]
    pub term: i64,
    #[rhai_type(readonly)]
    pub commit_index: i64,
    #[rhai_type(readonly, get = Self::members_array)]
    pub members: Vec<Member>,
    #[rhai_type(readonly)]
    pub healthy_members: i64,
    /// Members needed for a quorum: floor(N/2) + 1.
    #[rhai_type(readonly)]
    pub quorum: i64,
    #[rhai_type(readonly)]
    pub paused: bool,
    /// Why the cluster is not healthy; empty when it is.
    #[rhai_type(readonly, get = Self::problems_array)]
    pub problems: Vec<String>,
    /// Schema changes applied and features used (from the leader's `/health`): the runbook's rollback
    /// limits; `()` when the cluster does not report them.
    #[rhai_type(readonly, get = Self::rollback_limits_array)]
    pub rollback_limits: Option<Vec<RollbackLimit>>,
}

impl ClusterHealth {
    fn script_api(b: &mut TypeBuilder<Self>) {
        printable(b);
        b.with_fn("to_map", |h: &mut Self| -> Map {
            let mut map = to_map(h);
            // Members keep their type, as in `h.members`, so a printed map shows each as its summary line.
            map.insert("members".into(), h.members_array().into());
            map
        });
    }

    fn members_array(&self) -> Array {
        self.members.iter().cloned().map(Dynamic::from).collect()
    }

    fn problems_array(&self) -> Dynamic {
        plain(&self.problems)
    }

    fn rollback_limits_array(&self) -> Dynamic {
        plain(&self.rollback_limits)
    }
}

/// Members needed for a quorum of `n`.
pub fn quorum(n: usize) -> i64 {
    (n / 2 + 1) as i64
}

/// A follower is caught up when its replication lag is within this many milliseconds
/// (the runbook's canary threshold for replication lag).
pub const CAUGHT_UP_MS: i64 = 100;

/// The version of a member that does not answer and that no answering member lists: nobody can say.
pub const UNKNOWN_VERSION: &str = "unknown";

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CustomType)]
#[rhai_type(extra = record)]
pub struct RaftNode {
    #[rhai_type(readonly)]
    pub id: String,
    #[rhai_type(readonly)]
    pub role: String,
    #[rhai_type(readonly)]
    pub commit_index: i64,
    #[rhai_type(readonly)]
    pub applied_index: i64,
    #[rhai_type(readonly)]
    pub match_index: i64,
}

/// `raft::status()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, CustomType)]
#[rhai_type(extra = record)]
pub struct RaftStatus {
    #[rhai_type(readonly)]
    pub leader: Option<String>,
    #[rhai_type(readonly)]
    pub term: i64,
    #[rhai_type(readonly)]
    pub commit_index: i64,
    /// Each node as a map: id, role, commit_index, applied_index, match_index.
    #[rhai_type(readonly, get = Self::nodes_array)]
    pub nodes: Vec<RaftNode>,
}

impl RaftStatus {
    fn nodes_array(&self) -> Dynamic {
        plain(&self.nodes)
    }
}

impl fmt::Display for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} match {}", self.id, self.role, self.match_index)
    }
}

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

/// A semantic version as scripts see it: `v.major`, `v.minor`, `v.patch`, `v.pre`, printable, comparable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, CustomType)]
#[serde(transparent)]
#[rhai_type(extra = Self::script_api)]
pub struct Version(#[rhai_type(skip)] pub semver::Version);

impl Version {
    fn script_api(b: &mut TypeBuilder<Self>) {
        printable(b);
        b.with_get("major", |v: &mut Self| v.0.major as i64)
            .with_get("minor", |v: &mut Self| v.0.minor as i64)
            .with_get("patch", |v: &mut Self| v.0.patch as i64)
            .with_get("pre", |v: &mut Self| v.0.pre.to_string());
        macro_rules! cmp {
            ($($op:literal => $test:expr),*) => {$(
                b.with_fn($op, |a: &mut Self, b: Self| $test(a.0.cmp(&b.0)));
            )*};
        }
        cmp!(
            "==" => Ordering::is_eq,
            "!=" => Ordering::is_ne,
            "<" => Ordering::is_lt,
            "<=" => Ordering::is_le,
            ">" => Ordering::is_gt,
            ">=" => Ordering::is_ge
        );
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One scrape of one node: `m.node`, `m.value(name)`, `m.value(name, labels)`, `m.names()`,
/// `m.quantile(h, q)`.
#[derive(Debug, Clone, Serialize, CustomType)]
#[rhai_type(extra = Self::script_api)]
pub struct Metrics {
    #[rhai_type(readonly)]
    pub node: String,
    /// Shown (in `to_map()` and JSON) as every series name with its summed value.
    #[serde(rename = "series", serialize_with = "summed_series")]
    #[rhai_type(skip)]
    pub scrape: Arc<Scrape>,
}

fn summed_series<S: serde::Serializer>(scrape: &Arc<Scrape>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(
        scrape
            .names()
            .into_iter()
            .filter_map(|name| scrape.value(&name).map(|v| (name, v))),
    )
}

/// What a function scripts call returns: its value, or the error the script sees.
pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

impl Metrics {
    /// The value of the series `name` (summed when several share it); throws when there is none.
    pub fn value(&self, name: &str, labels: Option<&Map>) -> RhaiResult<f64> {
        let found = match labels {
            None => self.scrape.value(name),
            Some(l) => {
                let want: BTreeMap<String, String> = l
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                self.scrape.value_with(name, &want)
            }
        };
        found.ok_or_else(|| {
            let which = labels
                .map(|l| format!(" with labels {l:?}"))
                .unwrap_or_default();
            format!(
                "{}: metrics: no series `{name}`{which} in this scrape",
                self.node
            )
            .into()
        })
    }

    fn script_api(b: &mut TypeBuilder<Self>) {
        record(b);
        // `value` and `quantile` are registered with their types spelled out (script::custom_types): a closure
        // returning a `Result` would reach the editor definitions as a mangled type name.
        b.with_fn("names", |m: &mut Self| -> Array {
            m.scrape.names().into_iter().map(Dynamic::from).collect()
        });
    }

    /// The `q` quantile of a histogram; throws when the scrape has no such histogram.
    pub fn quantile(&self, name: &str, q: f64) -> RhaiResult<f64> {
        self.scrape.quantile(name, q).ok_or_else(|| {
            format!(
                "{}: metrics: no histogram `{name}` (no `{name}_bucket` series)",
                self.node
            )
            .into()
        })
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metrics of {} ({} series)",
            self.node,
            self.scrape.samples().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use rhai::{Engine, Scope};

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
        let map = to_map(&m);
        assert_eq!(map.len(), 9, "one entry per field: {map:?}");
        assert_eq!(map["replication_lag_ms"].as_int().unwrap(), 7);
        let r = RaftStatus {
            leader: None,
            term: 1,
            commit_index: 2,
            nodes: vec![],
        };
        let mut engine = Engine::new();
        engine.build_type::<Member>().build_type::<RaftStatus>();
        let mut scope = Scope::new();
        scope.push("m", m).push("r", r);
        let mut eval = |code: &str| engine.eval_with_scope::<Dynamic>(&mut scope, code);
        assert!(eval("r.leader").unwrap().is_unit());
        // Each property reads what the map holds, and none can be written.
        for (field, value) in &map {
            let read = eval(&format!("m.{field}")).unwrap();
            assert_eq!(
                (read.type_name(), read.to_string()),
                (value.type_name(), value.to_string()),
                "{field}"
            );
        }
        assert!(eval("m.commit_index > 5 && m.to_map().len() == 9")
            .unwrap()
            .as_bool()
            .unwrap());
        assert!(eval("m.commit_index = 1").is_err());
    }

    #[test]
    fn cluster_health_keeps_members_typed_and_the_rest_plain() {
        let h = ClusterHealth::assess(
            vec![member("node1", "leader", "up", true, 0)],
            &view(),
            &BTreeMap::new(),
        );
        let mut engine = Engine::new();
        engine.build_type::<ClusterHealth>().build_type::<Member>();
        let mut scope = Scope::new();
        scope.push("h", h);
        let mut type_of = |code: &str| {
            engine
                .eval_with_scope::<String>(&mut scope, &format!("type_of({code})"))
                .unwrap()
        };
        assert_eq!(type_of("h.members[0]"), "Member");
        assert_eq!(type_of("h.to_map().members[0]"), "Member");
        assert_eq!(type_of("h.problems"), "array");
        assert_eq!(type_of("h.to_map().leader"), "string");
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
/// Scripts get it as the map `#{status, stdout, stderr}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecOutput {
    pub status: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn to_map(&self) -> Map {
        to_map(self)
    }

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
