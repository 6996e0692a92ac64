//! The simulated cluster's state and rules: processes, Raft, client load, replication, faults.
//!
//! Pure state machine: no I/O, no clock. `tick(dt)` advances simulated time, every other method
//! is one operator or host action applied at the current `now`. The servers in `server.rs` and
//! `control.rs` lock it briefly and translate HTTP to these calls; tests drive it directly.

use std::collections::{BTreeMap, VecDeque};

use semver::Version;
use serde::Serialize;

use super::{FaultKind, Shape, SimConfig, SimError, SimEvent, SimStats};

/// Client writes per simulated second, spread over the nodes in service.
const CLIENT_RATE: f64 = 300.0;
/// How long a client keeps retrying a write before it counts as failed.
const CLIENT_DEADLINE: f64 = 2.0;
/// How long the load balancer's health check takes to notice an undrained node is gone.
const LB_DOWN_DETECT: f64 = 3.0;
/// How long a healthy node waits before the load balancer routes to it again.
const LB_UP_DELAY: f64 = 1.0;
const ELECTION_TIMEOUT: (f64, f64) = (0.150, 0.300);
const TRANSFER_DELAY: (f64, f64) = (0.050, 0.100);
const CATCHUP_RATE: f64 = 3000.0;
const SLOW_CATCHUP_RATE: f64 = 300.0;
const STOP_SECS: f64 = 0.5;
const START_SECS: f64 = 1.0;
pub const INSTALL_SECS: f64 = 3.0;
/// Lag at or below which a node counts as caught up (the runbook's canary threshold).
pub const CAUGHT_UP_MS: f64 = 100.0;
/// Longest simulated step: keeps elections, latencies and lag accurate at any speed.
const MAX_STEP: f64 = 0.02;
const MAX_STEPS_PER_TICK: f64 = 1000.0;
const TIMELINE_SPACING: f64 = 0.05;
const TIMELINE_KEEP: f64 = 3600.0;
const MAX_EVENTS: usize = 100_000;
const FAILED_EVENT_INTERVAL: f64 = 1.0;
const BACKUP_MAX_AGE: f64 = 86_400.0;
pub const MEMORY_BASE: f64 = 512.0 * 1024.0 * 1024.0;
const BAD_ABORT_RATE: f64 = 0.05;
const BAD_LATENCY_FACTOR: f64 = 4.0;
const BAD_MEMORY_FACTOR: f64 = 1.6;
/// Upper bounds of the latency histogram buckets, in seconds; `+Inf` is the count.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Published releases as (major, minor, highest patch): what `cargo install` can find.
const CATALOG: &[(u64, u64, u64)] = &[
    (0, 8, 3),
    (0, 9, 4),
    (0, 10, 6),
    (0, 11, 3),
    (0, 12, 1),
    (1, 0, 1),
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProcessState {
    Running,
    Stopping { until: f64 },
    Stopped,
    Starting { until: f64 },
    Crashed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
        }
    }

    pub fn gauge(self) -> u8 {
        match self {
            Role::Follower => 0,
            Role::Candidate => 1,
            Role::Leader => 2,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub hang: bool,
    pub partition: bool,
    pub slow_catchup: bool,
    pub fail_install: bool,
    pub flaky: bool,
}

/// Non-cumulative bucket counts; rendering makes them cumulative.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// A group of client writes that arrived at one node in one step and share their fate.
#[derive(Clone, Copy, Debug)]
struct Batch {
    due: f64,
    deadline: f64,
    count: u64,
}

#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub admin_url: String,
    pub process: ProcessState,
    pub installed: Version,
    pub running: Version,
    pub joined: bool,
    pub join_error: Option<String>,
    pub draining: bool,
    /// Fractional so slow catch-up advances at small steps; exposed floored.
    pub applied: f64,
    pub faults: Faults,
    pub tx_commits: u64,
    pub tx_aborts: u64,
    pub latency: Histogram,
    pub elections_seen: u64,
    memory_factor: f64,
    /// Process incarnation: the server for an older incarnation must not answer.
    pub generation: u64,
    /// Written by the server supervisor once the listener matches the process state.
    pub listening: bool,
    installing: Option<(f64, Version)>,
    bind_failure_logged: Option<u64>,
    awaiting_catch_up: bool,
    in_service: bool,
    bad_since: Option<f64>,
    good_since: Option<f64>,
    /// Forwarded to the leader, committing when `due`.
    inflight: VecDeque<Batch>,
    /// Retried by the client because no leader could take them.
    waiting: VecDeque<Batch>,
    /// Sent to a process that is not there; they fail at their deadline.
    stuck: VecDeque<Batch>,
    failed_pending: u64,
    failed_reported_at: f64,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.process == ProcessState::Running
    }

    pub fn in_flight(&self) -> u64 {
        self.inflight
            .iter()
            .chain(self.waiting.iter())
            .map(|b| b.count)
            .sum()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied.max(0.0).floor() as u64
    }

    /// Takes part in Raft: replicates, votes, can lead.
    pub fn raft_active(&self) -> bool {
        self.is_running() && self.joined && !self.faults.partition && !self.faults.hang
    }

    fn reset_process_counters(&mut self, rng: &mut fastrand::Rng) {
        self.tx_commits = 0;
        self.tx_aborts = 0;
        self.latency = Histogram::default();
        self.elections_seen = 0;
        self.memory_factor = 0.96 + rng.f64() * 0.08;
    }

    fn take_all_pending(&mut self) -> u64 {
        let n = self.in_flight();
        self.inflight.clear();
        self.waiting.clear();
        n
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub at: f64,
    pub index: u64,
}

#[derive(Clone, Copy, Debug)]
struct PendingTransfer {
    from: usize,
    to: usize,
    at: f64,
}

/// An admin API refusal: HTTP status and the `{"error": ...}` message.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// What a host-side command prints and returns.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn ok() -> Self {
        CommandOutput {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum StartOutcome {
    Launched,
    AlreadyUp,
    /// The process is still stopping; start once it has.
    WaitStopped,
}

#[derive(Clone, Debug, Serialize)]
pub struct Health {
    pub rollback_limits: Vec<RollbackLimit>,
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

/// The runbook's rollback limitations, as the cluster records them: a schema change applied, or a new
/// feature used, by version `since`; a rollback to a version older than `since` would be unsafe.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackLimit {
    /// "schema" | "feature".
    pub kind: String,
    pub detail: String,
    pub since: String,
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

pub struct Model {
    pub now: f64,
    pub start_unix: f64,
    pub nodes: Vec<Node>,
    pub term: u64,
    pub leader: Option<usize>,
    pub commit_index: u64,
    pub paused: bool,
    pub snapshot: Option<Snapshot>,
    /// Schema changes applied and features used, cluster-wide: what forbids a rollback below `since`.
    pub rollback_limits: Vec<RollbackLimit>,
    pub stats: SimStats,
    bad_versions: Vec<Version>,
    base_version: Version,
    /// A rehearsal twin installs any version.
    any_version: bool,
    leaders_by_term: BTreeMap<u64, Vec<usize>>,
    election_due: Option<f64>,
    transfer: Option<PendingTransfer>,
    events: VecDeque<SimEvent>,
    /// (commit_index, t) samples of the leader's log, for time-based replication lag.
    timeline: VecDeque<(u64, f64)>,
    load_acc: f64,
    rr: usize,
    /// Writes the load balancer holds while no node is in service.
    lb_waiting: VecDeque<Batch>,
    lb_failed_pending: u64,
    lb_failed_reported_at: f64,
    rng: fastrand::Rng,
}

impl Model {
    pub fn new(cfg: &SimConfig, start_unix: f64) -> Result<Model, SimError> {
        let count = cfg.shape.as_ref().map_or(cfg.nodes, |s| s.nodes.len());
        if count == 0 {
            return Err(SimError::Config("a cluster needs at least 1 node".into()));
        }
        if !(cfg.speed.is_finite() && cfg.speed > 0.0) {
            return Err(SimError::Config(format!(
                "speed must be a positive number, got {}",
                cfg.speed
            )));
        }
        let mut rng = match cfg.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let commit_index = 1000;
        let nodes = (1..=count)
            .map(|n| {
                let mut node = Node {
                    id: format!("node{n}"),
                    admin_url: String::new(),
                    process: ProcessState::Running,
                    installed: cfg.version.clone(),
                    running: cfg.version.clone(),
                    joined: true,
                    join_error: None,
                    draining: false,
                    applied: commit_index as f64,
                    faults: Faults::default(),
                    tx_commits: 0,
                    tx_aborts: 0,
                    latency: Histogram::default(),
                    elections_seen: 0,
                    memory_factor: 1.0,
                    generation: 1,
                    listening: false,
                    installing: None,
                    bind_failure_logged: None,
                    awaiting_catch_up: false,
                    in_service: true,
                    bad_since: None,
                    good_since: None,
                    inflight: VecDeque::new(),
                    waiting: VecDeque::new(),
                    stuck: VecDeque::new(),
                    failed_pending: 0,
                    failed_reported_at: f64::NEG_INFINITY,
                };
                node.reset_process_counters(&mut rng);
                node
            })
            .collect();
        let mut leaders_by_term = BTreeMap::new();
        leaders_by_term.insert(1, vec![0]);
        let mut model = Model {
            now: 0.0,
            start_unix,
            nodes,
            term: 1,
            leader: Some(0),
            commit_index,
            paused: false,
            rollback_limits: Vec::new(),
            snapshot: Some(Snapshot {
                at: -600.0,
                index: 900,
            }),
            stats: SimStats {
                client_writes_ok: 0,
                client_writes_failed: 0,
                elections: 0,
                max_leaders_in_a_term: 1,
                min_healthy_seen: count as u64,
                lost_committed_writes: 0,
            },
            bad_versions: cfg.bad_versions.clone(),
            base_version: cfg.version.clone(),
            any_version: false,
            leaders_by_term,
            election_due: None,
            transfer: None,
            events: VecDeque::new(),
            timeline: VecDeque::from([(commit_index, 0.0)]),
            load_acc: 0.0,
            rr: 0,
            lb_waiting: VecDeque::new(),
            lb_failed_pending: 0,
            lb_failed_reported_at: f64::NEG_INFINITY,
            rng,
        };
        if let Some(shape) = &cfg.shape {
            model.take_shape(shape)?;
        }
        for (node, kind) in &cfg.faults {
            let i = model
                .index_of(node)
                .ok_or_else(|| SimError::Config(format!("fault names unknown node `{node}`")))?;
            model.inject(i, *kind);
        }
        Ok(model)
    }

    /// Becomes a twin of a live cluster: its ids, versions, leader, drains, pause; down nodes crash.
    fn take_shape(&mut self, shape: &Shape) -> Result<(), SimError> {
        self.any_version = true;
        for (node, s) in self.nodes.iter_mut().zip(&shape.nodes) {
            node.id = s.id.clone();
            node.installed = s.version.clone();
            node.running = s.version.clone();
            node.draining = s.draining;
            node.in_service = !s.draining;
        }
        let mut ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(SimError::Config("a shape names the same node twice".into()));
        }
        let leader = match &shape.leader {
            Some(id) => Some(self.index_of(id).ok_or_else(|| {
                SimError::Config(format!("the shape's leader `{id}` is not one of its nodes"))
            })?),
            None => None,
        };
        self.term = shape.term.max(1);
        self.leader = leader;
        self.leaders_by_term.clear();
        if let Some(l) = leader {
            self.leaders_by_term.insert(self.term, vec![l]);
        }
        self.paused = shape.paused;
        for (i, s) in shape.nodes.iter().enumerate() {
            if s.down {
                self.inject(i, FaultKind::Crash);
            }
        }
        Ok(())
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    pub fn events(&self, since: Option<f64>) -> Vec<SimEvent> {
        self.events
            .iter()
            .filter(|e| since.is_none_or(|s| e.t >= s))
            .cloned()
            .collect()
    }

    /// Records a schema change or a feature in use (control API), as a newer release would on first use.
    pub fn add_rollback_limit(&mut self, limit: RollbackLimit) {
        self.event(
            None,
            "rollback_limit",
            format!("{} {} (since {})", limit.kind, limit.detail, limit.since),
        );
        self.rollback_limits.push(limit);
    }

    pub(crate) fn event(&mut self, node: Option<usize>, kind: &str, detail: impl Into<String>) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(SimEvent {
            t: self.now,
            node: node.map(|i| self.nodes[i].id.clone()),
            kind: kind.to_string(),
            detail: detail.into(),
        });
    }

    fn uniform(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + self.rng.f64() * (hi - lo)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    pub fn is_bad(&self, v: &Version) -> bool {
        self.bad_versions.contains(v)
    }

    pub fn is_known_version(&self, v: &Version) -> bool {
        let published = v.pre.is_empty()
            && v.build.is_empty()
            && CATALOG
                .iter()
                .any(|&(ma, mi, mp)| v.major == ma && v.minor == mi && v.patch <= mp);
        self.any_version || published || *v == self.base_version || self.is_bad(v)
    }

    fn healthy_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.raft_active()).count()
    }

    fn leader_ok(&self) -> bool {
        self.leader.is_some_and(|l| self.nodes[l].raft_active())
    }

    /// A write can reach a leader that can reach a quorum, and the cluster takes writes.
    fn cluster_can_commit(&self) -> bool {
        self.leader_ok() && !self.paused && self.healthy_count() >= self.quorum()
    }

    /// Replication lag in ms: how long ago the leader committed the entry after `applied`.
    pub fn lag_ms(&self, i: usize) -> f64 {
        let applied = self.nodes[i].applied_index();
        if applied >= self.commit_index {
            return 0.0;
        }
        let target = applied + 1;
        // The current (commit_index, now) is the timeline's implicit last point.
        let tl = &self.timeline;
        let k = tl.partition_point(|(idx, _)| *idx < target);
        let (hi_idx, hi_t) = tl.get(k).copied().unwrap_or((self.commit_index, self.now));
        let t = match k.checked_sub(1).and_then(|j| tl.get(j)) {
            Some(&(lo_idx, lo_t)) if hi_idx > lo_idx => {
                lo_t + (target - lo_idx) as f64 / (hi_idx - lo_idx) as f64 * (hi_t - lo_t)
            }
            _ => hi_t,
        };
        ((self.now - t) * 1000.0).max(0.0)
    }

    /// Role as this node itself reports it.
    pub fn role(&self, i: usize) -> Role {
        let n = &self.nodes[i];
        if self.leader == Some(i) {
            Role::Leader
        } else if n.is_running() && n.joined && (n.faults.partition || self.leader.is_none()) {
            Role::Candidate
        } else {
            Role::Follower
        }
    }

    /// The leader this node knows of: a partitioned node cannot see one.
    fn known_leader(&self, i: usize) -> Option<usize> {
        if self.nodes[i].faults.partition && self.leader != Some(i) {
            None
        } else {
            self.leader
        }
    }

    // ----- time -----

    pub fn tick(&mut self, dt: f64) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        let steps = (dt / MAX_STEP).ceil().clamp(1.0, MAX_STEPS_PER_TICK);
        let h = dt / steps;
        for _ in 0..steps as usize {
            self.step(h);
        }
        self.flush_failed_events();
    }

    fn step(&mut self, h: f64) {
        self.now += h;
        self.advance_processes();
        self.advance_installs();
        self.advance_transfer();
        self.run_elections();
        self.update_load_balancer();
        self.route_new_writes(h);
        self.process_writes();
        self.replicate(h);
        self.observe();
    }

    fn advance_processes(&mut self) {
        for i in 0..self.nodes.len() {
            match self.nodes[i].process {
                ProcessState::Stopping { until } if self.now >= until => {
                    let node = &mut self.nodes[i];
                    node.process = ProcessState::Stopped;
                    let lost = node.take_all_pending();
                    self.fail_writes(Some(i), lost);
                }
                ProcessState::Starting { until } if self.now >= until => self.finish_start(i),
                _ => {}
            }
        }
    }

    fn finish_start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.process = ProcessState::Running;
        node.running = node.installed.clone();
        node.generation += 1;
        node.draining = false;
        node.faults.hang = false;
        node.reset_process_counters(&mut self.rng);
        let lowest = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.is_running() && n.joined)
            .map(|(_, n)| &n.running)
            .min()
            .cloned();
        let mine = self.nodes[i].running.clone();
        let refusal =
            lowest.filter(|low| low.major != mine.major || low.minor.abs_diff(mine.minor) > 1);
        match refusal {
            Some(low) => {
                let why = format!(
                    "refused to join: version {mine} is more than one minor version from the cluster's lowest {low}"
                );
                let node = &mut self.nodes[i];
                node.joined = false;
                node.join_error = Some(why.clone());
                node.awaiting_catch_up = false;
                self.event(Some(i), "refused", why);
            }
            None => {
                let node = &mut self.nodes[i];
                node.joined = true;
                node.join_error = None;
                node.awaiting_catch_up = true;
                self.event(Some(i), "rejoined", format!("version {mine}"));
            }
        }
    }

    fn advance_installs(&mut self) {
        for i in 0..self.nodes.len() {
            let finished = match &self.nodes[i].installing {
                Some((until, v)) if self.now >= *until => Some(v.clone()),
                _ => None,
            };
            if let Some(v) = finished {
                self.nodes[i].installing = None;
                self.nodes[i].installed = v.clone();
                self.event(Some(i), "install", format!("{v} installed"));
            }
        }
    }

    fn advance_transfer(&mut self) {
        let Some(p) = self.transfer else { return };
        if self.now < p.at {
            return;
        }
        self.transfer = None;
        if self.leader != Some(p.from) {
            self.event(
                Some(p.from),
                "transfer_failed",
                "leadership changed meanwhile",
            );
            return;
        }
        if let Err(e) = self.transfer_target_ok(p.to, false) {
            self.event(Some(p.from), "transfer_failed", e.message);
            return;
        }
        // The old leader brings the target up to date before handing over, so nothing is lost.
        self.nodes[p.to].applied = self.commit_index as f64;
        self.term += 1;
        let detail = format!(
            "{} -> {}, term {}",
            self.nodes[p.from].id, self.nodes[p.to].id, self.term
        );
        self.event(Some(p.from), "transfer", detail);
        self.become_leader(p.to);
    }

    fn run_elections(&mut self) {
        if self.leader_ok() {
            self.election_due = None;
            return;
        }
        let due = match self.election_due {
            Some(d) => d,
            None => {
                let d = self.now + self.uniform(ELECTION_TIMEOUT);
                self.election_due = Some(d);
                d
            }
        };
        if self.now < due {
            return;
        }
        if let Some(old) = self.leader.take() {
            self.transfer = None;
            let why = self.down_reason(old);
            self.event(
                Some(old),
                "leader_lost",
                format!("term {}: leader {why}", self.term),
            );
        }
        let candidate = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.raft_active())
            .max_by(|(ia, a), (ib, b)| a.applied.total_cmp(&b.applied).then(ib.cmp(ia)))
            .map(|(i, _)| i);
        match candidate {
            Some(c) if self.healthy_count() >= self.quorum() => {
                let applied = self.nodes[c].applied_index();
                if applied < self.commit_index {
                    self.stats.lost_committed_writes += self.commit_index - applied;
                    self.commit_index = applied;
                    while self.timeline.len() > 1
                        && self.timeline.back().is_some_and(|(idx, _)| *idx > applied)
                    {
                        self.timeline.pop_back();
                    }
                }
                self.nodes[c].applied = self.commit_index as f64;
                self.term += 1;
                self.become_leader(c);
            }
            _ => {
                let d = self.now + self.uniform(ELECTION_TIMEOUT);
                self.election_due = Some(d);
            }
        }
    }

    fn become_leader(&mut self, c: usize) {
        self.leader = Some(c);
        self.election_due = None;
        self.stats.elections += 1;
        let leaders = self.leaders_by_term.entry(self.term).or_default();
        if !leaders.contains(&c) {
            leaders.push(c);
        }
        let count = leaders.len() as u64;
        self.stats.max_leaders_in_a_term = self.stats.max_leaders_in_a_term.max(count);
        for n in self.nodes.iter_mut().filter(|n| n.is_running()) {
            n.elections_seen += 1;
        }
        let term = self.term;
        self.event(Some(c), "elected", format!("term {term}"));
    }

    fn down_reason(&self, i: usize) -> &'static str {
        let n = &self.nodes[i];
        match n.process {
            ProcessState::Crashed => "crashed",
            ProcessState::Running if n.faults.hang => "hung",
            ProcessState::Running if n.faults.partition => "partitioned",
            ProcessState::Running if !n.joined => "not joined",
            ProcessState::Running => "up",
            _ => "stopped",
        }
    }

    fn update_load_balancer(&mut self) {
        let now = self.now;
        for n in &mut self.nodes {
            let good =
                n.is_running() && n.joined && !n.draining && !n.faults.hang && !n.faults.partition;
            if n.in_service {
                if n.draining {
                    n.in_service = false;
                    n.bad_since = None;
                    n.good_since = None;
                } else if good {
                    n.bad_since = None;
                } else if now - *n.bad_since.get_or_insert(now) >= LB_DOWN_DETECT {
                    n.in_service = false;
                    n.bad_since = None;
                    n.good_since = None;
                }
            } else if !good {
                n.good_since = None;
            } else if now - *n.good_since.get_or_insert(now) >= LB_UP_DELAY {
                n.in_service = true;
                n.good_since = None;
            }
        }
    }

    fn route_new_writes(&mut self, h: f64) {
        self.load_acc += CLIENT_RATE * h;
        let fresh = self.load_acc.floor();
        self.load_acc -= fresh;
        let deadline = self.now + CLIENT_DEADLINE;
        if fresh > 0.0 {
            self.lb_waiting.push_back(Batch {
                due: self.now,
                deadline,
                count: fresh as u64,
            });
        }
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].in_service)
            .collect();
        if targets.is_empty() {
            let now = self.now;
            let mut expired = 0;
            self.lb_waiting.retain(|b| {
                let keep = b.deadline > now;
                if !keep {
                    expired += b.count;
                }
                keep
            });
            self.lb_failed_pending += expired;
            self.stats.client_writes_failed += expired;
            return;
        }
        let k = targets.len();
        let batches: Vec<Batch> = self.lb_waiting.drain(..).collect();
        for b in batches {
            let base = b.count / k as u64;
            let extra = (b.count % k as u64) as usize;
            for (j, &i) in targets.iter().enumerate() {
                let share = base + u64::from((j + k - self.rr % k) % k < extra);
                if share > 0 {
                    self.accept(i, share, b.deadline);
                }
            }
            self.rr = (self.rr + extra) % k;
        }
    }

    fn accept(&mut self, i: usize, count: u64, deadline: f64) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let batch = Batch {
            due: now,
            deadline,
            count,
        };
        if n.is_running() && !n.faults.hang {
            n.waiting.push_back(batch);
        } else {
            n.stuck.push_back(batch);
        }
    }

    fn write_latency_secs(&mut self, i: usize, forwarded: bool) -> f64 {
        let mut ms = self.uniform((2.0, 8.0)) + if forwarded { 1.0 } else { 0.0 };
        if self.is_bad(&self.nodes[i].running) {
            ms *= BAD_LATENCY_FACTOR;
        }
        ms / 1000.0
    }

    fn process_writes(&mut self) {
        let now = self.now;
        let global_ok = self.cluster_can_commit();
        for i in 0..self.nodes.len() {
            let alive = {
                let n = &self.nodes[i];
                matches!(
                    n.process,
                    ProcessState::Running | ProcessState::Stopping { .. }
                ) && !n.faults.hang
            };
            if self.nodes[i].faults.hang {
                let n = &mut self.nodes[i];
                let moved: Vec<Batch> = n.inflight.drain(..).chain(n.waiting.drain(..)).collect();
                n.stuck.extend(moved);
            }
            let can =
                global_ok && alive && (self.leader == Some(i) || !self.nodes[i].faults.partition);
            // Complete forwarded writes that are due.
            let mut due = Vec::new();
            self.nodes[i].inflight.retain(|b| {
                let ready = b.due <= now;
                if ready {
                    due.push(*b);
                }
                !ready
            });
            for b in due {
                if can {
                    self.commit_writes(i, b);
                } else {
                    self.nodes[i].waiting.push_back(b);
                }
            }
            if can && !self.nodes[i].waiting.is_empty() {
                let bad = self.is_bad(&self.nodes[i].running);
                let mean = 0.005 * if bad { BAD_LATENCY_FACTOR } else { 1.0 };
                let n = &mut self.nodes[i];
                let moved: Vec<Batch> = n.waiting.drain(..).collect();
                n.inflight.extend(moved.into_iter().map(|b| Batch {
                    due: now + mean,
                    ..b
                }));
            }
            let mut expired = 0;
            let n = &mut self.nodes[i];
            for q in [&mut n.waiting, &mut n.stuck] {
                q.retain(|b| {
                    let keep = b.deadline > now;
                    if !keep {
                        expired += b.count;
                    }
                    keep
                });
            }
            self.fail_writes(Some(i), expired);
        }
    }

    fn commit_writes(&mut self, i: usize, b: Batch) {
        let bad = self.is_bad(&self.nodes[i].running);
        let forwarded = self.leader != Some(i);
        let aborted = if bad {
            (0..b.count)
                .filter(|_| self.rng.f64() < BAD_ABORT_RATE)
                .count() as u64
        } else {
            0
        };
        let ok = b.count - aborted;
        for _ in 0..ok {
            let secs = self.write_latency_secs(i, forwarded);
            self.nodes[i].latency.observe(secs);
        }
        let n = &mut self.nodes[i];
        n.tx_commits += ok;
        n.tx_aborts += aborted;
        if aborted > 0 {
            // The client retries aborted transactions; they fail only at their deadline.
            n.waiting.push_back(Batch {
                count: aborted,
                ..b
            });
        }
        self.commit_index += ok;
        self.stats.client_writes_ok += ok;
        if let Some(l) = self.leader {
            self.nodes[l].applied = self.commit_index as f64;
        }
    }

    fn fail_writes(&mut self, node: Option<usize>, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.client_writes_failed += count;
        match node {
            Some(i) => self.nodes[i].failed_pending += count,
            None => self.lb_failed_pending += count,
        }
    }

    /// One `write_failed` event per node per second at most: at a 10 ms tick, one per tick would
    /// still be one event per write.
    fn flush_failed_events(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if n.failed_pending > 0 && now - n.failed_reported_at >= FAILED_EVENT_INTERVAL {
                let count = std::mem::take(&mut n.failed_pending);
                n.failed_reported_at = now;
                self.event(
                    Some(i),
                    "write_failed",
                    format!("{count} client writes failed"),
                );
            }
        }
        if self.lb_failed_pending > 0 && now - self.lb_failed_reported_at >= FAILED_EVENT_INTERVAL {
            let count = std::mem::take(&mut self.lb_failed_pending);
            self.lb_failed_reported_at = now;
            self.event(
                None,
                "write_failed",
                format!("{count} client writes failed: no node in service"),
            );
        }
    }

    fn replicate(&mut self, h: f64) {
        let commit = self.commit_index as f64;
        let leader = self.leader;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.raft_active() {
                continue;
            }
            if leader == Some(i) {
                n.applied = commit;
            } else {
                let rate = if n.faults.slow_catchup {
                    SLOW_CATCHUP_RATE
                } else {
                    CATCHUP_RATE
                };
                n.applied = (n.applied + rate * h).min(commit);
            }
        }
    }

    fn observe(&mut self) {
        let healthy = self.healthy_count() as u64;
        self.stats.min_healthy_seen = self.stats.min_healthy_seen.min(healthy);
        let last = self.timeline.back().copied();
        if last.is_none_or(|(idx, t)| self.commit_index > idx && self.now - t >= TIMELINE_SPACING) {
            self.timeline.push_back((self.commit_index, self.now));
        }
        while self.timeline.len() > 1
            && self
                .timeline
                .front()
                .is_some_and(|(_, t)| *t < self.now - TIMELINE_KEEP)
        {
            self.timeline.pop_front();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].awaiting_catch_up
                && self.nodes[i].raft_active()
                && self.leader.is_some()
            {
                let lag = self.lag_ms(i);
                if lag <= CAUGHT_UP_MS {
                    self.nodes[i].awaiting_catch_up = false;
                    self.event(Some(i), "caught_up", format!("lag {} ms", lag.round()));
                }
            }
        }
    }

    /// The supervisor could not take the node's port back; logged once per process start.
    pub fn note_bind_failure(&mut self, i: usize, detail: &str) {
        let generation = self.nodes[i].generation;
        if self.nodes[i].bind_failure_logged != Some(generation) {
            self.nodes[i].bind_failure_logged = Some(generation);
            self.event(Some(i), "bind_failed", detail);
        }
    }

    // ----- host side -----

    /// Begins a graceful stop. Returns when it will be stopped, None when it already is.
    pub fn host_stop(&mut self, i: usize) -> Option<f64> {
        match self.nodes[i].process {
            ProcessState::Running | ProcessState::Starting { .. } => {
                let until = self.now + STOP_SECS;
                let n = &mut self.nodes[i];
                n.process = ProcessState::Stopping { until };
                // The hung process is the one being stopped; a new one starts clean.
                n.faults.hang = false;
                n.awaiting_catch_up = false;
                self.event(Some(i), "stop", "systemctl stop neumann");
                Some(until)
            }
            ProcessState::Stopping { until } => Some(until),
            ProcessState::Stopped | ProcessState::Crashed => None,
        }
    }

    pub fn host_start(&mut self, i: usize) -> StartOutcome {
        match self.nodes[i].process {
            ProcessState::Stopped | ProcessState::Crashed => {
                let until = self.now + START_SECS;
                self.nodes[i].process = ProcessState::Starting { until };
                let v = self.nodes[i].installed.clone();
                self.event(Some(i), "start", format!("starting {v}"));
                StartOutcome::Launched
            }
            ProcessState::Stopping { .. } => StartOutcome::WaitStopped,
            ProcessState::Running | ProcessState::Starting { .. } => StartOutcome::AlreadyUp,
        }
    }

    /// Begins `cargo install`: returns when it completes and what it will print.
    pub fn host_install(&mut self, i: usize, version: &Version) -> (f64, CommandOutput) {
        let done_at = self.now + INSTALL_SECS;
        if !self.is_known_version(version) {
            let stderr = format!(
                "    Updating crates.io index\nerror: could not find `neumann` in registry `crates-io` with version `={version}`\n"
            );
            self.event(
                Some(i),
                "install_failed",
                format!("{version}: not in the registry"),
            );
            return (
                done_at,
                CommandOutput {
                    status: 101,
                    stdout: String::new(),
                    stderr,
                },
            );
        }
        if self.nodes[i].faults.fail_install {
            let stderr = format!(
                "    Updating crates.io index\n  Downloaded neumann v{version}\n  Installing neumann v{version}\nerror: failed to compile `neumann v{version}`, intermediate artifacts can be found at `/tmp/cargo-install3Xq1`.\n\nCaused by:\n  No space left on device (os error 28)\n"
            );
            self.event(
                Some(i),
                "install_failed",
                format!("{version}: injected failure"),
            );
            return (
                done_at,
                CommandOutput {
                    status: 101,
                    stdout: String::new(),
                    stderr,
                },
            );
        }
        self.nodes[i].installing = Some((done_at, version.clone()));
        let stderr = format!(
            "    Updating crates.io index\n  Downloaded neumann v{version}\n  Installing neumann v{version}\n   Installed package `neumann v{version}` (executable `neumann`)\n"
        );
        (
            done_at,
            CommandOutput {
                status: 0,
                stdout: String::new(),
                stderr,
            },
        )
    }

    pub fn inject(&mut self, i: usize, kind: FaultKind) {
        let n = &mut self.nodes[i];
        match kind {
            FaultKind::Crash => {
                if matches!(n.process, ProcessState::Stopped | ProcessState::Crashed) {
                    // Nothing to crash; still logged below so the test sees its request.
                } else {
                    n.process = ProcessState::Crashed;
                    n.faults.hang = false;
                    n.awaiting_catch_up = false;
                    let lost = n.take_all_pending();
                    self.fail_writes(Some(i), lost);
                    self.event(Some(i), "crash", "process killed");
                }
            }
            FaultKind::Hang => n.faults.hang = true,
            FaultKind::Partition => n.faults.partition = true,
            FaultKind::Heal => {
                n.faults = Faults::default();
            }
            FaultKind::SlowCatchup => n.faults.slow_catchup = true,
            FaultKind::FailInstall => n.faults.fail_install = true,
            FaultKind::Flaky => n.faults.flaky = true,
        }
        self.event(Some(i), "fault", kind.as_str());
    }

    // ----- admin API -----

    fn require_peers(&self, via: usize) -> Result<(), ApiError> {
        if self.nodes[via].faults.partition {
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

    fn transfer_target_ok(&self, to: usize, check_lag: bool) -> Result<(), ApiError> {
        let n = &self.nodes[to];
        let id = &n.id;
        let refuse = |why: String| Err(ApiError::new(409, why));
        if !n.is_running() {
            return refuse(format!("{id} is down"));
        }
        if n.faults.hang {
            return refuse(format!("{id} is not responding"));
        }
        if !n.joined {
            return refuse(format!("{id} has not joined the cluster"));
        }
        if n.draining {
            return refuse(format!("{id} is draining"));
        }
        if n.faults.partition {
            return refuse(format!("{id} is partitioned from its peers"));
        }
        if check_lag {
            let lag = self.lag_ms(to);
            if lag > CAUGHT_UP_MS {
                return refuse(format!(
                    "{id} is behind: replication lag {} ms",
                    lag.round()
                ));
            }
        }
        if let Some(l) = self.leader {
            let lv = &self.nodes[l].running;
            if n.running < *lv {
                return refuse(format!(
                    "{id} runs {}, older than the leader's {lv}",
                    n.running
                ));
            }
        }
        Ok(())
    }

    pub fn request_transfer(&mut self, via: usize, to: &str) -> Result<TransferReply, ApiError> {
        self.require_peers(via)?;
        let t = self
            .index_of(to)
            .ok_or_else(|| ApiError::new(404, format!("unknown node `{to}`")))?;
        let l = self
            .leader
            .ok_or_else(|| ApiError::new(409, "no leader: the cluster is electing one"))?;
        if t == l {
            return Ok(TransferReply {
                from: self.nodes[l].id.clone(),
                to: self.nodes[t].id.clone(),
                term: self.term,
            });
        }
        if !self.nodes[l].raft_active() {
            return Err(ApiError::new(
                409,
                format!("leader {} is not reachable", self.nodes[l].id),
            ));
        }
        if self.transfer.is_some() {
            return Err(ApiError::new(
                409,
                "a leadership transfer is already in progress",
            ));
        }
        self.transfer_target_ok(t, true)?;
        let at = self.now + self.uniform(TRANSFER_DELAY);
        self.transfer = Some(PendingTransfer { from: l, to: t, at });
        Ok(TransferReply {
            from: self.nodes[l].id.clone(),
            to: self.nodes[t].id.clone(),
            term: self.term + 1,
        })
    }

    pub fn backup_status(&self) -> BackupStatus {
        match self.snapshot {
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
        if self.leader != Some(via) {
            let why = match self.known_leader(via) {
                Some(l) => format!("not the leader; leader is {}", self.nodes[l].id),
                None => "not the leader; no leader is known".to_string(),
            };
            return Err(ApiError::new(409, why));
        }
        self.snapshot = Some(Snapshot {
            at: self.now,
            index: self.commit_index,
        });
        let index = self.commit_index;
        self.event(Some(via), "snapshot", format!("index {index}"));
        Ok(self.backup_status())
    }

    pub fn test_transaction(&mut self, via: usize) -> Result<TxReply, ApiError> {
        self.require_peers(via)?;
        let Some(l) = self.leader.filter(|_| self.leader_ok()) else {
            return Err(ApiError::new(503, "no leader: cannot commit"));
        };
        if self.paused {
            return Err(ApiError::new(503, "cluster is paused"));
        }
        if self.healthy_count() < self.quorum() {
            return Err(ApiError::new(503, "no quorum: cannot commit"));
        }
        let latency = self.write_latency_secs(via, via != l) * 1000.0;
        self.commit_index += 1;
        self.nodes[l].applied = self.commit_index as f64;
        Ok(TxReply {
            ok: true,
            latency_ms: latency,
            leader: self.nodes[l].id.clone(),
        })
    }

    // ----- views -----

    pub fn health(&self, i: usize) -> Health {
        let n = &self.nodes[i];
        let leader = self.known_leader(i);
        let healthy = n.joined && !n.faults.partition && leader.is_some();
        let error = if let Some(e) = &n.join_error {
            Some(e.clone())
        } else if n.faults.partition {
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
            rollback_limits: self.rollback_limits.clone(),
            status: if healthy { "healthy" } else { "unhealthy" },
            raft_state: self.role(i).as_str(),
            term: self.term,
            commit_index: self.node_commit_index(i),
            members: self.nodes.len(),
            healthy_members: self.healthy_count(),
            node_id: n.id.clone(),
            version: n.running.to_string(),
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

    /// The commit index a node knows: the leader's while it follows, its own log when cut off.
    fn node_commit_index(&self, i: usize) -> u64 {
        let n = &self.nodes[i];
        if self.leader == Some(i) || n.raft_active() {
            self.commit_index
        } else {
            n.applied_index()
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
                    healthy: n.raft_active() && self.leader.is_some(),
                    version: if n.is_running() {
                        n.running.to_string()
                    } else {
                        n.installed.to_string()
                    },
                    commit_index: self.node_commit_index(i),
                    applied_index: n.applied_index(),
                    replication_lag_ms: self.lag_ms(i).round() as u64,
                }
            })
            .collect()
    }

    pub fn raft_status(&self, via: usize) -> RaftStatus {
        RaftStatus {
            leader: self.known_leader(via).map(|l| self.nodes[l].id.clone()),
            term: self.term,
            commit_index: self.commit_index,
            nodes: (0..self.nodes.len())
                .map(|i| {
                    let n = &self.nodes[i];
                    RaftNodeView {
                        id: n.id.clone(),
                        role: self.role(i).as_str(),
                        commit_index: self.node_commit_index(i),
                        applied_index: n.applied_index(),
                        match_index: n.applied_index(),
                    }
                })
                .collect(),
        }
    }

    pub fn metrics(&mut self, i: usize) -> MetricsSnapshot {
        let jitter = 0.99 + self.rng.f64() * 0.02;
        let n = &self.nodes[i];
        let bad = if self.is_bad(&n.running) {
            BAD_MEMORY_FACTOR
        } else {
            1.0
        };
        MetricsSnapshot {
            node_id: n.id.clone(),
            version: n.running.to_string(),
            raft_state: self.role(i),
            term: self.term,
            commit_index: self.node_commit_index(i),
            applied_index: n.applied_index(),
            elections: n.elections_seen,
            tx_commits: n.tx_commits,
            tx_aborts: n.tx_aborts,
            latency: n.latency.clone(),
            members: self.nodes.len(),
            healthy: self.healthy_count(),
            memory_bytes: (MEMORY_BASE * n.memory_factor * bad * jitter).round(),
            replication_lag_secs: self.lag_ms(i) / 1000.0,
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
