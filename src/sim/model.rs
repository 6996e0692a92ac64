//! The simulated cluster's state and rules: processes, Raft, client load, replication, faults.
//!
//! Pure state machine: no I/O, no clock. `tick(dt)` advances simulated time, every other method
//! is one operator or host action applied at the current `now`. The servers in `server.rs` and
//! `control.rs` lock it briefly and translate HTTP to these calls; tests drive it directly.
//!
//! Raft is modelled node by node: each node has its own term, vote, log (`Log`), commit index
//! and applied index, and acts only on what it could know. Messages are delivered within the
//! step they are sent in (a step is 10 ms, a loopback round trip well under that); what makes
//! a message undeliverable is the receiver being down, hung or in another partition group.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use semver::Version;
use serde::Serialize;

use super::log::Log;
use super::{FaultKind, Shape, SimConfig, SimError, SimEvent, SimStats};

/// Client writes per simulated second, spread over the nodes in service.
const CLIENT_RATE: f64 = 300.0;
/// How long a client keeps retrying a write before it counts as failed.
const CLIENT_DEADLINE: f64 = 2.0;
/// How long the load balancer's health check takes to notice an undrained node is gone.
const LB_DOWN_DETECT: f64 = 3.0;
/// How long a healthy node waits before the load balancer routes to it again.
const LB_UP_DELAY: f64 = 1.0;
/// Each node draws its own election timeout from this range at every reset (Neumann's
/// documented 150-300 ms). The lower bound is also the check-quorum window and the lease in
/// which a follower that hears from its leader ignores other candidates.
pub const ELECTION_TIMEOUT: (f64, f64) = (0.150, 0.300);
/// Entries per second a leader ships to a follower that is behind.
const REPLICATION_RATE: f64 = 3000.0;
const SLOW_REPLICATION_RATE: f64 = 300.0;
/// Entries per second a node applies to its state machine once they are committed.
const APPLY_RATE: f64 = 20_000.0;
const STOP_SECS: f64 = 0.5;
const START_SECS: f64 = 1.0;
pub const INSTALL_SECS: f64 = 3.0;
/// A staging compile shares the host's CPU with the serving process: its writes are this much slower.
const STAGING_LATENCY_FACTOR: f64 = 1.3;
/// Lag at or below which a node counts as caught up (the runbook's canary threshold).
pub const CAUGHT_UP_MS: f64 = 100.0;
/// Longest simulated step: well under the election timeout, so timers fire on time.
const MAX_STEP: f64 = 0.01;
const MAX_STEPS_PER_TICK: f64 = 2000.0;
/// The most simulated time one tick of the real clock may cover at `MAX_STEP`: after a longer stall of
/// this process (a loaded machine), the clock catches up over several ticks instead of taking coarser
/// steps, which would let election timers and write deadlines fire where a real cluster's would not.
const MAX_TICK_SECS: f64 = MAX_STEP * MAX_STEPS_PER_TICK;
const TIMELINE_SPACING: f64 = 0.05;
const TIMELINE_KEEP: f64 = 3600.0;
const MAX_EVENTS: usize = 100_000;
const FAILED_EVENT_INTERVAL: f64 = 1.0;
const BACKUP_MAX_AGE: f64 = 86_400.0;
pub const MEMORY_BASE: f64 = 512.0 * 1024.0 * 1024.0;
const BAD_ABORT_RATE: f64 = 0.05;
const BAD_LATENCY_FACTOR: f64 = 4.0;
const BAD_MEMORY_FACTOR: f64 = 1.6;
/// A healthy commit takes one to two steps; only waits beyond that show in the latency.
const NORMAL_COMMIT_DELAY: f64 = 2.0 * MAX_STEP;
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
    pub slow_catchup: bool,
    pub fail_install: bool,
    pub flaky: bool,
}

/// Deliberate violations of Raft, so tests can show the invariant checks catch them. Never set
/// outside tests.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Bugs {
    /// Grant votes without Raft's up-to-date rule.
    pub vote_ignores_log: bool,
    /// Grant a second vote in a term already voted in.
    pub vote_twice: bool,
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

/// Where a batch of writes sits in the leader's log: entries lo..=hi of `term`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    leader: usize,
    term: u64,
    lo: u64,
    hi: u64,
}

/// A group of client writes that arrived at one node in one step and share their fate.
#[derive(Clone, Copy, Debug)]
struct Batch {
    arrived: f64,
    deadline: f64,
    count: u64,
    entry: Option<Entry>,
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    match_idx: u64,
    /// Entries the leader may still send this step; a caught-up follower banks none.
    credit: f64,
    last_ack: f64,
}

#[derive(Clone, Copy, Debug)]
struct Transfer {
    to: usize,
    /// Raft aborts a transfer whose target has not caught up within an election timeout.
    deadline: f64,
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
    // Raft state. term, vote, log, commit and applied survive a restart (persisted); the rest
    // is volatile.
    pub term: u64,
    voted_for: Option<usize>,
    pub log: Log,
    pub commit: u64,
    /// Fractional so applying advances at small steps; exposed floored.
    pub applied: f64,
    pub role: Role,
    /// The leader this node last heard from in its current term.
    pub leader: Option<usize>,
    election_due: f64,
    last_heard: f64,
    progress: Vec<Progress>,
    transfer: Option<Transfer>,
    /// A hung leader is counted as lost when it hangs, not again when it steps down later.
    loss_counted: bool,
    /// Partition group: nodes exchange messages only within the same group.
    pub group: usize,
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
    /// Versions installed beside the running one (`/opt/neumann/{version}`), ready to activate. The
    /// version a node starts with counts as staged: it is what the service link points at.
    pub staged: std::collections::BTreeSet<Version>,
    /// A `stage` in progress: when it completes and what.
    staging: Option<(f64, Version)>,
    bind_failure_logged: Option<u64>,
    awaiting_catch_up: bool,
    in_service: bool,
    bad_since: Option<f64>,
    good_since: Option<f64>,
    /// Appended to a leader's log, waiting for it to commit.
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

    /// Takes part in Raft: exchanges messages, votes, can lead.
    pub fn raft_active(&self) -> bool {
        self.is_running() && self.joined && !self.faults.hang
    }

    /// The process can still finish work it holds (a graceful stop drains it first).
    fn alive(&self) -> bool {
        matches!(
            self.process,
            ProcessState::Running | ProcessState::Stopping { .. }
        ) && !self.faults.hang
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

/// A fault, as the control API or the command line names it.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultSpec {
    Node(usize, FaultKind),
    /// Splits the network: nodes talk only within their group; a node in no group is alone.
    Groups(Vec<Vec<usize>>),
}

/// A fault armed to fire when the simulator logs `event` for `node`.
#[derive(Clone, Debug)]
struct Trigger {
    event: String,
    node: usize,
    fault: FaultSpec,
}

pub struct Model {
    pub now: f64,
    pub start_unix: f64,
    pub nodes: Vec<Node>,
    /// The highest term any node has reached.
    pub term: u64,
    /// The leader of the highest term that is up: what an observer of the whole cluster sees.
    pub leader: Option<usize>,
    /// The highest commit index any node knows.
    pub commit_index: u64,
    pub paused: bool,
    pub snapshot: Option<Snapshot>,
    /// Schema changes applied and features used, cluster-wide: what forbids a rollback below `since`.
    pub rollback_limits: Vec<RollbackLimit>,
    /// Whether `/health` carries `rollback_limits` at all.
    rollback_limits_reported: bool,
    stats: SimStats,
    bad_versions: Vec<Version>,
    base_version: Version,
    /// A rehearsal twin installs any version.
    any_version: bool,
    /// term -> the nodes that believed themselves leader in it (each node's own record).
    leaders_by_term: BTreeMap<u64, BTreeSet<usize>>,
    /// The client's record: entries (lo, hi, term) whose writes were acknowledged.
    acked: Vec<(u64, u64, u64)>,
    stall_since: Option<f64>,
    last_commit_seen: u64,
    quorum_lost_secs: f64,
    events: VecDeque<SimEvent>,
    triggers: Vec<Trigger>,
    /// (commit_index, t) samples of the cluster's commit index, for time-based replication lag.
    timeline: VecDeque<(u64, f64)>,
    load_acc: f64,
    rr: usize,
    /// Writes the load balancer holds while no node is in service.
    lb_waiting: VecDeque<Batch>,
    lb_failed_pending: u64,
    lb_failed_reported_at: f64,
    next_group: usize,
    /// The election timeout range in seconds (see `ELECTION_TIMEOUT`).
    election: (f64, f64),
    /// Some node is in a partition group of its own (group 0 is the whole network).
    split: bool,
    rng: fastrand::Rng,
    #[cfg(test)]
    pub bugs: Bugs,
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
        let election = match cfg.election_timeout_ms {
            Some((lo, hi)) if lo > 0 && hi > lo => (lo as f64 / 1000.0, hi as f64 / 1000.0),
            Some((lo, hi)) => {
                return Err(SimError::Config(format!(
                    "election timeout must be a range lo < hi in ms, got {lo}-{hi}"
                )))
            }
            None => ELECTION_TIMEOUT,
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
                    term: 1,
                    voted_for: Some(0),
                    log: Log::new(commit_index, 1),
                    commit: commit_index,
                    applied: commit_index as f64,
                    role: Role::Follower,
                    leader: Some(0),
                    election_due: election.0 + rng.f64() * (election.1 - election.0),
                    last_heard: 0.0,
                    progress: Vec::new(),
                    transfer: None,
                    loss_counted: false,
                    group: 0,
                    faults: Faults::default(),
                    tx_commits: 0,
                    tx_aborts: 0,
                    latency: Histogram::default(),
                    elections_seen: 0,
                    memory_factor: 1.0,
                    generation: 1,
                    listening: false,
                    installing: None,
                    staged: [cfg.version.clone()].into_iter().collect(),
                    staging: None,
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
        let mut model = Model {
            now: 0.0,
            start_unix,
            nodes,
            term: 1,
            leader: None,
            commit_index,
            paused: false,
            rollback_limits: Vec::new(),
            rollback_limits_reported: cfg.rollback_limits_reported,
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
                leader_losses: 0,
                max_commit_stall_ms: 0,
                quorum_lost_ms: 0,
            },
            bad_versions: cfg.bad_versions.clone(),
            base_version: cfg.version.clone(),
            any_version: false,
            leaders_by_term: BTreeMap::new(),
            acked: Vec::new(),
            stall_since: None,
            last_commit_seen: commit_index,
            quorum_lost_secs: 0.0,
            events: VecDeque::new(),
            triggers: Vec::new(),
            timeline: VecDeque::from([(commit_index, 0.0)]),
            load_acc: 0.0,
            rr: 0,
            lb_waiting: VecDeque::new(),
            lb_failed_pending: 0,
            lb_failed_reported_at: f64::NEG_INFINITY,
            next_group: 1,
            election,
            split: false,
            rng,
            #[cfg(test)]
            bugs: Bugs::default(),
        };
        model.install_leader(0, 1);
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

    /// Makes `l` the leader of `term` as the cluster starts (or a twin copies one): every node
    /// already agrees, so no election is counted.
    fn install_leader(&mut self, l: usize, term: u64) {
        let count = self.nodes.len();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.term = term;
            n.voted_for = Some(l);
            n.leader = Some(l);
            n.role = if i == l { Role::Leader } else { Role::Follower };
            n.transfer = None;
            n.progress = if i == l {
                vec![
                    Progress {
                        match_idx: n.log.last(),
                        credit: 0.0,
                        last_ack: self.now,
                    };
                    count
                ]
            } else {
                Vec::new()
            };
        }
        self.leaders_by_term.entry(term).or_default().insert(l);
        self.refresh_view();
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
        let term = shape.term.max(1);
        self.leaders_by_term.clear();
        for n in &mut self.nodes {
            n.log = Log::new(n.log.last(), term);
        }
        match leader {
            Some(l) => self.install_leader(l, term),
            None => {
                for n in &mut self.nodes {
                    n.term = term;
                    n.voted_for = None;
                    n.leader = None;
                    n.role = Role::Follower;
                    n.progress.clear();
                }
                self.refresh_view();
            }
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

    /// The invariants and counters since start. Lost writes are judged now, against the most
    /// up-to-date log, so a write lost by a later election shows up.
    pub fn stats(&self) -> SimStats {
        let mut s = self.stats.clone();
        s.lost_committed_writes = self.lost_acknowledged_writes();
        if let Some(since) = self.stall_since {
            s.max_commit_stall_ms = s.max_commit_stall_ms.max(ms(self.now - since));
        }
        s
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
        let Some(i) = node else { return };
        if let Some(k) = self
            .triggers
            .iter()
            .position(|t| t.node == i && t.event == kind)
        {
            let fired = self.triggers.remove(k);
            self.apply_fault(&fired.fault);
        }
    }

    /// Arms `fault` to fire inside the simulator when it logs `event` for node `on`.
    pub fn arm(&mut self, event: &str, on: usize, fault: FaultSpec) {
        self.triggers.push(Trigger {
            event: event.to_string(),
            node: on,
            fault,
        });
    }

    pub fn apply_fault(&mut self, fault: &FaultSpec) {
        match fault {
            FaultSpec::Node(i, kind) => self.inject(*i, *kind),
            FaultSpec::Groups(groups) => self.partition_groups(groups),
        }
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

    // ----- the network -----

    /// Raft messages pass between `a` and `b`.
    fn connected(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        x.raft_active() && y.raft_active() && x.group == y.group
    }

    /// In a partition group too small to hold a quorum: it cannot reach enough peers.
    pub fn partitioned(&self, i: usize) -> bool {
        if !self.split {
            return false;
        }
        let g = self.nodes[i].group;
        self.nodes.iter().filter(|n| n.group == g).count() < self.quorum()
    }

    fn partition_groups(&mut self, groups: &[Vec<usize>]) {
        self.split = true;
        for n in &mut self.nodes {
            n.group = usize::MAX;
        }
        let mut names = Vec::new();
        for g in groups {
            let id = self.next_group;
            self.next_group += 1;
            for &i in g {
                self.nodes[i].group = id;
            }
            names.push(
                g.iter()
                    .map(|&i| self.nodes[i].id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].group == usize::MAX {
                self.nodes[i].group = self.next_group;
                self.next_group += 1;
                names.push(self.nodes[i].id.clone());
            }
        }
        self.event(None, "partition", format!("groups [{}]", names.join("] [")));
    }

    fn heal_network(&mut self) {
        self.split = false;
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    fn healthy_count(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft_active() && !self.partitioned(i))
            .count()
    }

    /// The leader node `i` follows and can reach (itself when it leads), if any.
    fn known_leader(&self, i: usize) -> Option<usize> {
        let n = &self.nodes[i];
        if !n.raft_active() {
            return None;
        }
        if n.role == Role::Leader {
            return Some(i);
        }
        let l = n.leader?;
        let ln = &self.nodes[l];
        (ln.role == Role::Leader && ln.term == n.term && self.connected(i, l)).then_some(l)
    }

    /// Replication lag in ms: how long ago the cluster committed the entry after the last one
    /// this node holds.
    pub fn lag_ms(&self, i: usize) -> f64 {
        let held = self.nodes[i].log.last();
        if held >= self.commit_index {
            return 0.0;
        }
        let target = held + 1;
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

    /// Role as this node itself believes it; a process that is not up reports nothing, and the
    /// others see a follower.
    pub fn role(&self, i: usize) -> Role {
        let n = &self.nodes[i];
        if n.raft_active() {
            n.role
        } else {
            Role::Follower
        }
    }

    /// Recomputes the whole-cluster view fields from the nodes.
    fn refresh_view(&mut self) {
        self.term = self.nodes.iter().map(|n| n.term).max().unwrap_or(0);
        self.commit_index = self.nodes.iter().map(|n| n.commit).max().unwrap_or(0);
        self.leader = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft_active() && self.nodes[i].role == Role::Leader)
            .max_by_key(|&i| self.nodes[i].term);
    }

    // ----- time -----

    /// One tick of the real clock: simulated time moves towards `target`, all the way unless the process
    /// stalled for longer than one tick simulates at full resolution (`MAX_TICK_SECS`); the rest follows
    /// on the next ticks.
    pub fn tick_towards(&mut self, target: f64) {
        self.tick((target - self.now).min(MAX_TICK_SECS));
    }

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
        self.run_timers();
        self.run_leaders(h);
        self.apply(h);
        self.refresh_view();
        self.update_load_balancer();
        self.route_new_writes(h);
        self.process_writes();
        self.observe(h);
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
        let due = self.now + self.uniform(self.election);
        let node = &mut self.nodes[i];
        node.process = ProcessState::Running;
        node.running = node.installed.clone();
        node.generation += 1;
        node.draining = false;
        node.faults.hang = false;
        // Volatile Raft state starts afresh; term, vote, log and commit were persisted.
        node.role = Role::Follower;
        node.leader = None;
        node.progress.clear();
        node.transfer = None;
        node.election_due = due;
        node.last_heard = f64::NEG_INFINITY;
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
            let staged = match &self.nodes[i].staging {
                Some((until, v)) if self.now >= *until => Some(v.clone()),
                _ => None,
            };
            if let Some(v) = staged {
                self.nodes[i].staging = None;
                self.nodes[i].staged.insert(v.clone());
                self.event(Some(i), "stage", format!("{v} staged"));
            }
        }
    }

    // ----- Raft -----

    fn reset_timer(&mut self, i: usize) {
        self.nodes[i].election_due = self.now + self.uniform(self.election);
    }

    /// Nodes whose election timer ran out become candidates. Candidates that time out in the
    /// same step all stand before any vote is cast, which is how votes split.
    fn run_timers(&mut self) {
        let firing: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                n.raft_active() && n.role != Role::Leader && self.now >= n.election_due
            })
            .collect();
        let mut standing = Vec::new();
        for &c in &firing {
            standing.push((c, self.stand(c)));
        }
        for (c, term) in standing {
            if self.nodes[c].role == Role::Candidate && self.nodes[c].term == term {
                self.request_votes(c, false);
            }
        }
    }

    /// Starts a campaign: a new term, a vote for itself, a fresh timer for a retry.
    fn stand(&mut self, c: usize) -> u64 {
        self.reset_timer(c);
        let n = &mut self.nodes[c];
        n.term += 1;
        n.voted_for = Some(c);
        n.role = Role::Candidate;
        n.leader = None;
        n.term
    }

    /// Asks every reachable peer for its vote; wins with a majority. `transfer` is Raft's
    /// TimeoutNow campaign, which peers honour even while they still hear from a leader.
    fn request_votes(&mut self, c: usize, transfer: bool) {
        let term = self.nodes[c].term;
        let mut votes = 1;
        for p in 0..self.nodes.len() {
            if p == c || !self.connected(c, p) {
                continue;
            }
            let peer = &self.nodes[p];
            // Check-quorum's lease: a follower that heard from its leader within the minimum
            // election timeout ignores a candidate, so a node returning from a partition cannot
            // win this way (it can still unseat the leader through its higher term; see
            // `run_leaders`).
            let in_lease = peer.role == Role::Follower
                && peer.leader.is_some()
                && self.now - peer.last_heard < self.election.0;
            if !transfer && in_lease {
                continue;
            }
            if term > peer.term {
                let counted = !(transfer && self.nodes[p].transfer.is_some_and(|t| t.to == c));
                self.become_follower(p, term, None, counted);
            }
            if term < self.nodes[p].term {
                continue;
            }
            let peer = &self.nodes[p];
            let free = match peer.voted_for {
                None => true,
                Some(v) => v == c || self.bug_vote_twice(),
            };
            let log_ok =
                self.bug_vote_ignores_log() || self.nodes[c].log.up_to_date_with(&peer.log);
            if free && log_ok {
                self.nodes[p].voted_for = Some(c);
                self.reset_timer(p);
                votes += 1;
            }
        }
        if votes >= self.quorum() {
            self.become_leader(c);
        }
    }

    #[cfg(test)]
    fn bug_vote_twice(&self) -> bool {
        self.bugs.vote_twice
    }
    #[cfg(not(test))]
    fn bug_vote_twice(&self) -> bool {
        false
    }
    #[cfg(test)]
    fn bug_vote_ignores_log(&self) -> bool {
        self.bugs.vote_ignores_log
    }
    #[cfg(not(test))]
    fn bug_vote_ignores_log(&self) -> bool {
        false
    }

    fn become_leader(&mut self, c: usize) {
        let count = self.nodes.len();
        let now = self.now;
        let n = &mut self.nodes[c];
        n.role = Role::Leader;
        n.leader = Some(c);
        n.transfer = None;
        n.loss_counted = false;
        // Raft's no-op: a new leader can only count replicas for entries of its own term.
        let term = n.term;
        n.log.append(1, term);
        let last = n.log.last();
        n.progress = vec![
            Progress {
                match_idx: 0,
                credit: 0.0,
                last_ack: now,
            };
            count
        ];
        n.progress[c].match_idx = last;
        self.stats.elections += 1;
        let leaders = self.leaders_by_term.entry(term).or_default();
        leaders.insert(c);
        self.stats.max_leaders_in_a_term =
            self.stats.max_leaders_in_a_term.max(leaders.len() as u64);
        for n in self.nodes.iter_mut().filter(|n| n.is_running()) {
            n.elections_seen += 1;
        }
        self.event(Some(c), "elected", format!("term {term}"));
    }

    /// Node `i` follows `term` (and `leader` when known). A leader leaving office is a leader
    /// lost unless `counted` is false (a hand-over completing) or it was counted when it hung.
    fn become_follower(&mut self, i: usize, term: u64, leader: Option<usize>, counted: bool) {
        if self.nodes[i].role == Role::Leader {
            let why = if term > self.nodes[i].term {
                format!("saw term {term}")
            } else {
                "stepped down".to_string()
            };
            self.leave_office(i, &why, counted);
        }
        let n = &mut self.nodes[i];
        if term > n.term {
            n.term = term;
            n.voted_for = None;
        }
        n.role = Role::Follower;
        n.leader = leader;
    }

    fn leave_office(&mut self, i: usize, why: &str, counted: bool) {
        let n = &mut self.nodes[i];
        let term = n.term;
        n.role = Role::Follower;
        n.leader = None;
        n.progress.clear();
        n.transfer = None;
        let first = !std::mem::replace(&mut n.loss_counted, true);
        if counted && first {
            self.stats.leader_losses += 1;
            self.event(Some(i), "leader_lost", format!("term {term}: {why}"));
        }
    }

    /// Each leader replicates to the followers it reaches, advances its commit index, hands
    /// over when a transfer's target is caught up, and steps down without a quorum.
    fn run_leaders(&mut self, h: f64) {
        for l in 0..self.nodes.len() {
            if self.nodes[l].role == Role::Leader && self.nodes[l].raft_active() {
                self.lead(l, h);
            }
        }
    }

    fn lead(&mut self, l: usize, h: f64) {
        let term = self.nodes[l].term;
        for f in 0..self.nodes.len() {
            if f == l || !self.connected(l, f) {
                continue;
            }
            if self.nodes[f].term > term {
                // The reply carries a higher term (a node back from a partition, without
                // pre-vote): the leader steps down.
                let t = self.nodes[f].term;
                self.become_follower(l, t, None, true);
                return;
            }
            self.replicate(l, f, h);
        }
        let quorum = self.quorum();
        let n = &mut self.nodes[l];
        n.progress[l] = Progress {
            match_idx: n.log.last(),
            credit: 0.0,
            last_ack: self.now,
        };
        // Commit: the highest index a majority (the leader included) holds, of this term.
        let mut matched: Vec<u64> = n.progress.iter().map(|p| p.match_idx).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let majority = matched[quorum - 1];
        if majority > n.commit && n.log.term_at(majority) == Some(term) {
            n.commit = majority;
        }
        // Check-quorum.
        let now = self.now;
        let window = self.election.0;
        let recent = n
            .progress
            .iter()
            .filter(|p| now - p.last_ack < window)
            .count();
        if recent < quorum {
            self.leave_office(l, "lost contact with a quorum", true);
            return;
        }
        let Some(t) = self.nodes[l].transfer else {
            return;
        };
        if self.nodes[l].progress[t.to].match_idx == self.nodes[l].log.last()
            && self.connected(l, t.to)
            && self.nodes[t.to].term == term
        {
            self.timeout_now(l, t.to);
        } else if now >= t.deadline {
            self.nodes[l].transfer = None;
            let to = self.nodes[t.to].id.clone();
            self.event(
                Some(l),
                "transfer_failed",
                format!("{to} did not catch up within the election timeout"),
            );
        }
    }

    /// One AppendEntries round trip from leader `l` to follower `f`.
    fn replicate(&mut self, l: usize, f: usize, h: f64) {
        let term = self.nodes[l].term;
        self.become_follower(f, term, Some(l), true);
        self.nodes[f].last_heard = self.now;
        self.reset_timer(f);
        let rate = if self.nodes[f].faults.slow_catchup {
            SLOW_REPLICATION_RATE
        } else {
            REPLICATION_RATE
        };
        let now = self.now;
        let (leader, follower) = pair(&mut self.nodes, l, f);
        let p = leader.log.common_prefix(&follower.log);
        follower.log.truncate(p);
        let missing = leader.log.last() - p;
        let prog = &mut leader.progress[f];
        prog.credit += rate * h;
        let send = missing.min(prog.credit.floor() as u64);
        prog.credit -= send as f64;
        if send == missing {
            prog.credit = prog.credit.min(rate * h);
        }
        follower.log.extend_from(&leader.log, p + send);
        prog.match_idx = p + send;
        prog.last_ack = now;
        follower.commit = follower.commit.max(leader.commit.min(prog.match_idx));
    }

    /// Raft's TimeoutNow: the caught-up target campaigns at once, and peers vote even though
    /// they still hear from the leader.
    fn timeout_now(&mut self, l: usize, to: usize) {
        let from_id = self.nodes[l].id.clone();
        self.stand(to);
        self.request_votes(to, true);
        if self.nodes[to].role == Role::Leader {
            let detail = format!(
                "{from_id} -> {}, term {}",
                self.nodes[to].id, self.nodes[to].term
            );
            self.event(Some(l), "transfer", detail);
        } else if self.nodes[l].role == Role::Leader {
            self.nodes[l].transfer = None;
        } else {
            let n = &mut self.nodes[l];
            n.loss_counted = true;
            self.stats.leader_losses += 1;
            self.event(
                Some(l),
                "leader_lost",
                "hand-over failed: the target did not win its election",
            );
        }
    }

    fn apply(&mut self, h: f64) {
        for n in &mut self.nodes {
            if n.raft_active() {
                n.applied = (n.applied + APPLY_RATE * h).min(n.commit as f64);
            }
        }
    }

    // ----- clients -----

    fn update_load_balancer(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let partitioned = self.partitioned(i);
            let n = &mut self.nodes[i];
            let good = n.is_running() && n.joined && !n.draining && !n.faults.hang && !partitioned;
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
                arrived: self.now,
                deadline,
                count: fresh as u64,
                entry: None,
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
                    self.accept(i, Batch { count: share, ..b });
                }
            }
            self.rr = (self.rr + extra) % k;
        }
    }

    fn accept(&mut self, i: usize, batch: Batch) {
        let n = &mut self.nodes[i];
        if n.is_running() && !n.faults.hang {
            push_by_deadline(&mut n.waiting, batch);
        } else {
            push_by_deadline(&mut n.stuck, batch);
        }
    }

    fn write_latency_secs(&mut self, i: usize, forwarded: bool) -> f64 {
        let mut ms = self.uniform((2.0, 8.0)) + if forwarded { 1.0 } else { 0.0 };
        if self.is_bad(&self.nodes[i].running) {
            ms *= BAD_LATENCY_FACTOR;
        }
        if self.nodes[i].staging.is_some() {
            ms *= STAGING_LATENCY_FACTOR;
        }
        ms / 1000.0
    }

    /// The leader node `i` can hand new writes to now, if any: a leader not in a hand-over
    /// (Raft drops proposals during one) that `i` can reach.
    fn route(&self, i: usize) -> Option<usize> {
        if self.paused || !self.nodes[i].is_running() {
            return None;
        }
        let l = self.known_leader(i)?;
        self.nodes[l].transfer.is_none().then_some(l)
    }

    fn process_writes(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            if self.nodes[i].faults.hang {
                let n = &mut self.nodes[i];
                let moved: Vec<Batch> = n.inflight.drain(..).chain(n.waiting.drain(..)).collect();
                for b in moved {
                    push_by_deadline(&mut n.stuck, Batch { entry: None, ..b });
                }
            }
            let alive = self.nodes[i].alive();
            let group = self.nodes[i].group;
            let fate = |nodes: &[Node], b: &Batch| write_fate(nodes, i, alive, group, b);
            if self.nodes[i]
                .inflight
                .iter()
                .any(|b| fate(&self.nodes, b).is_some())
            {
                let mut acks = Vec::new();
                let mut retry = Vec::new();
                let mut inflight = std::mem::take(&mut self.nodes[i].inflight);
                let nodes = &self.nodes;
                inflight.retain(|b| match fate(nodes, b) {
                    None => true,
                    Some(true) => {
                        acks.push(*b);
                        false
                    }
                    Some(false) => {
                        retry.push(Batch { entry: None, ..*b });
                        false
                    }
                });
                self.nodes[i].inflight = inflight;
                for b in retry {
                    push_by_deadline(&mut self.nodes[i].waiting, b);
                }
                for b in acks {
                    if let Some(e) = b.entry {
                        self.acknowledge(i, b, e);
                    }
                }
            }
            if let Some(l) = self.route(i) {
                let waiting = std::mem::take(&mut self.nodes[i].waiting);
                for b in waiting {
                    let leader = &mut self.nodes[l];
                    let lo = leader.log.last() + 1;
                    let term = leader.term;
                    leader.log.append(b.count, term);
                    let entry = Entry {
                        leader: l,
                        term,
                        lo,
                        hi: lo + b.count - 1,
                    };
                    push_by_deadline(
                        &mut self.nodes[i].inflight,
                        Batch {
                            entry: Some(entry),
                            ..b
                        },
                    );
                }
            }
            let mut expired = 0;
            let n = &mut self.nodes[i];
            for q in [&mut n.waiting, &mut n.stuck, &mut n.inflight] {
                while q.front().is_some_and(|b| b.deadline <= now) {
                    expired += q.pop_front().map_or(0, |b| b.count);
                }
            }
            self.fail_writes(Some(i), expired);
        }
    }

    /// The leader committed the batch and node `i` answers its clients.
    fn acknowledge(&mut self, i: usize, b: Batch, e: Entry) {
        let bad = self.is_bad(&self.nodes[i].running);
        let aborted = if bad {
            (0..b.count)
                .filter(|_| self.rng.f64() < BAD_ABORT_RATE)
                .count() as u64
        } else {
            0
        };
        let ok = b.count - aborted;
        let forwarded = e.leader != i;
        let queued = (self.now - b.arrived - NORMAL_COMMIT_DELAY).max(0.0);
        for _ in 0..ok {
            let secs = self.write_latency_secs(i, forwarded) + queued;
            self.nodes[i].latency.observe(secs);
        }
        let n = &mut self.nodes[i];
        n.tx_commits += ok;
        n.tx_aborts += aborted;
        if aborted > 0 {
            // The client retries aborted transactions; they fail only at their deadline.
            push_by_deadline(
                &mut n.waiting,
                Batch {
                    count: aborted,
                    entry: None,
                    ..b
                },
            );
        }
        if ok > 0 {
            self.stats.client_writes_ok += ok;
            self.record_ack(e.lo, e.lo + ok - 1, e.term);
        }
    }

    fn record_ack(&mut self, lo: u64, hi: u64, term: u64) {
        if let Some(last) = self.acked.last_mut() {
            if last.2 == term && last.1 + 1 == lo {
                last.1 = hi;
                return;
            }
        }
        self.acked.push((lo, hi, term));
        if self.acked.len() >= 4096 && self.acked.len().is_power_of_two() {
            self.acked.sort_unstable_by_key(|r| (r.2, r.0));
            let mut merged: Vec<(u64, u64, u64)> = Vec::with_capacity(self.acked.len());
            for r in self.acked.drain(..) {
                match merged.last_mut() {
                    Some(m) if m.2 == r.2 && m.1 + 1 >= r.0 => m.1 = m.1.max(r.1),
                    _ => merged.push(r),
                }
            }
            self.acked = merged;
        }
    }

    /// Acknowledged writes whose entries are missing from the most up-to-date log (Raft's
    /// order: last term, then length). Raft guarantees that log holds every committed entry, so
    /// it is the cluster's final committed log whether or not a leader is in office right now.
    fn lost_acknowledged_writes(&self) -> u64 {
        let Some(reference) = self
            .nodes
            .iter()
            .max_by_key(|n| (n.log.last_term(), n.log.last()))
        else {
            return 0;
        };
        let mut spans: BTreeMap<u64, Option<(u64, u64)>> = BTreeMap::new();
        let mut lost = 0;
        for &(lo, hi, term) in &self.acked {
            let span = *spans
                .entry(term)
                .or_insert_with(|| reference.log.span_of_term(term));
            let kept = match span {
                Some((a, b)) if b.min(hi) >= a.max(lo) => b.min(hi) - a.max(lo) + 1,
                _ => 0,
            };
            lost += hi - lo + 1 - kept;
        }
        lost
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

    fn observe(&mut self, h: f64) {
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
        self.observe_stall(h);
        self.observe_quorum(h);
        for i in 0..self.nodes.len() {
            if self.nodes[i].awaiting_catch_up && self.known_leader(i).is_some() {
                let lag = self.lag_ms(i);
                if lag <= CAUGHT_UP_MS {
                    self.nodes[i].awaiting_catch_up = false;
                    self.event(Some(i), "caught_up", format!("lag {} ms", lag.round()));
                }
            }
        }
    }

    /// A stall: client writes are waiting and the cluster's commit index does not move. A
    /// deliberate pause (`cluster::pause`) is one too: the clients wait all the same.
    fn observe_stall(&mut self, h: f64) {
        let waiting = !self.lb_waiting.is_empty()
            || self
                .nodes
                .iter()
                .any(|n| !n.waiting.is_empty() || !n.inflight.is_empty());
        let moved = self.commit_index > self.last_commit_seen;
        if waiting && !moved {
            let since = *self.stall_since.get_or_insert(self.now - h);
            let stall = ms(self.now - since);
            self.stats.max_commit_stall_ms = self.stats.max_commit_stall_ms.max(stall);
        } else {
            self.stall_since = None;
        }
        self.last_commit_seen = self.commit_index;
    }

    /// Without a quorum: no partition group holds a majority of up, caught-up members.
    fn observe_quorum(&mut self, h: f64) {
        let mut per_group: BTreeMap<usize, usize> = BTreeMap::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].raft_active() && self.lag_ms(i) <= CAUGHT_UP_MS {
                *per_group.entry(self.nodes[i].group).or_default() += 1;
            }
        }
        let best = per_group.values().copied().max().unwrap_or(0);
        if best < self.quorum() {
            self.quorum_lost_secs += h;
            self.stats.quorum_lost_ms = ms(self.quorum_lost_secs);
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
                let was_leader = self.nodes[i].role == Role::Leader && !self.nodes[i].faults.hang;
                let n = &mut self.nodes[i];
                n.process = ProcessState::Stopping { until };
                // The hung process is the one being stopped; a new one starts clean.
                n.faults.hang = false;
                n.awaiting_catch_up = false;
                self.event(Some(i), "stop", "systemctl stop neumann");
                if was_leader || self.nodes[i].role == Role::Leader {
                    self.leave_office(i, "stopped", true);
                }
                self.refresh_view();
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

    /// Begins `cargo install --root /opt/neumann/{version}` beside the running version: returns when it
    /// completes and what it prints. The node keeps serving; only its latency rises while it compiles.
    /// A version already staged is cargo's "already installed": done at once. Fails as an install does.
    pub fn host_stage(&mut self, i: usize, version: &Version) -> (f64, CommandOutput) {
        if self.nodes[i].staged.contains(version) {
            let stderr = format!(
                "    Updating crates.io index\n     Ignored package `neumann v{version}` is already installed, use --force to override\n"
            );
            self.event(Some(i), "stage", format!("{version} already staged"));
            return (
                self.now,
                CommandOutput {
                    status: 0,
                    stdout: String::new(),
                    stderr,
                },
            );
        }
        let busy = self.nodes[i].staging.clone();
        if let Some((until, other)) = busy.as_ref().filter(|(_, v)| v == version) {
            // cargo waits for the lock the same install holds (an earlier run's, cut short on this
            // side), then finds the build in place.
            self.event(
                Some(i),
                "stage",
                format!("{other} already being staged: waiting for it"),
            );
            let stderr = format!(
                "    Blocking waiting for file lock on package cache\n     Ignored package `neumann v{version}` is already installed, use --force to override\n"
            );
            return (
                *until,
                CommandOutput {
                    status: 0,
                    stdout: String::new(),
                    stderr,
                },
            );
        }
        if let Some((_, other)) = busy {
            self.event(
                Some(i),
                "stage_failed",
                format!("{version}: {other} is being staged"),
            );
            return (
                self.now,
                CommandOutput {
                    status: 101,
                    stdout: String::new(),
                    stderr: format!("error: another cargo install (neumann v{other}) holds the lock on this host\n"),
                },
            );
        }
        let (done_at, out) = self.host_install_outcome(i, version, "stage_failed");
        if out.status == 0 {
            self.nodes[i].staging = Some((done_at, version.clone()));
        }
        (done_at, out)
    }

    /// Points the node's service at a staged version (`ln -sfn`): the version it runs at its next start.
    /// A version that was not staged fails as a failed install does, changing nothing.
    pub fn host_activate(&mut self, i: usize, version: &Version) -> CommandOutput {
        if !self.nodes[i].staged.contains(version) {
            let staged: Vec<String> = self.nodes[i].staged.iter().map(|v| v.to_string()).collect();
            self.event(
                Some(i),
                "activate_failed",
                format!("{version}: not staged (staged: {})", staged.join(", ")),
            );
            return CommandOutput {
                status: 1,
                stdout: String::new(),
                stderr: format!(
                    "/opt/neumann/{version}/bin/neumann: No such file or directory (not staged; staged: {})\n",
                    staged.join(", ")
                ),
            };
        }
        self.nodes[i].installed = version.clone();
        self.event(Some(i), "activate", format!("{version} activated"));
        CommandOutput {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// Begins `cargo install`: returns when it completes and what it will print.
    pub fn host_install(&mut self, i: usize, version: &Version) -> (f64, CommandOutput) {
        let (done_at, out) = self.host_install_outcome(i, version, "install_failed");
        if out.status == 0 {
            self.nodes[i].installing = Some((done_at, version.clone()));
        }
        (done_at, out)
    }

    /// How a `cargo install` of `version` on node `i` ends, and when; a failure is logged as `failed`.
    fn host_install_outcome(
        &mut self,
        i: usize,
        version: &Version,
        failed: &str,
    ) -> (f64, CommandOutput) {
        let done_at = self.now + INSTALL_SECS;
        if !self.is_known_version(version) {
            let stderr = format!(
                "    Updating crates.io index\nerror: could not find `neumann` in registry `crates-io` with version `={version}`\n"
            );
            self.event(Some(i), failed, format!("{version}: not in the registry"));
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
            self.event(Some(i), failed, format!("{version}: injected failure"));
            return (
                done_at,
                CommandOutput {
                    status: 101,
                    stdout: String::new(),
                    stderr,
                },
            );
        }
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
        match kind {
            FaultKind::Crash => {
                let n = &mut self.nodes[i];
                if matches!(n.process, ProcessState::Stopped | ProcessState::Crashed) {
                    // Nothing to crash; still logged below so the test sees its request.
                } else {
                    let was_leader = n.role == Role::Leader;
                    n.process = ProcessState::Crashed;
                    n.faults.hang = false;
                    n.awaiting_catch_up = false;
                    let lost = n.take_all_pending();
                    self.fail_writes(Some(i), lost);
                    self.event(Some(i), "crash", "process killed");
                    if was_leader {
                        self.leave_office(i, "crashed", true);
                    }
                }
            }
            FaultKind::Hang => {
                let n = &mut self.nodes[i];
                let leading = n.role == Role::Leader && n.raft_active();
                n.faults.hang = true;
                if leading && !n.loss_counted {
                    // A hung process keeps believing it leads; the cluster has lost it now.
                    n.loss_counted = true;
                    let term = n.term;
                    self.stats.leader_losses += 1;
                    self.event(Some(i), "leader_lost", format!("term {term}: hung"));
                }
            }
            FaultKind::Partition => {
                self.split = true;
                self.nodes[i].group = self.next_group;
                self.next_group += 1;
            }
            FaultKind::Heal => {
                self.nodes[i].faults = Faults::default();
                // Faults armed for this node go too: healed means nothing more is coming its way.
                self.triggers
                    .retain(|t| !matches!(t.fault, FaultSpec::Node(n, _) if n == i));
                self.heal_network();
            }
            FaultKind::SlowCatchup => self.nodes[i].faults.slow_catchup = true,
            FaultKind::FailInstall => self.nodes[i].faults.fail_install = true,
            FaultKind::Flaky => self.nodes[i].faults.flaky = true,
        }
        self.refresh_view();
        self.event(Some(i), "fault", kind.as_str());
    }

    // ----- admin API -----

    fn require_peers(&self, via: usize) -> Result<(), ApiError> {
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

    /// Neumann's own refusals. A lagging target is not refused here: Raft catches it up before
    /// sending TimeoutNow, and aborts the hand-over if that takes longer than an election
    /// timeout (the tool refuses lagging targets before asking).
    fn transfer_target_ok(&self, l: usize, to: usize) -> Result<(), ApiError> {
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
        if !self.connected(l, to) {
            return refuse(format!("{id} is partitioned from its peers"));
        }
        let lv = &self.nodes[l].running;
        if n.running < *lv {
            return refuse(format!(
                "{id} runs {}, older than the leader's {lv}",
                n.running
            ));
        }
        Ok(())
    }

    pub fn request_transfer(&mut self, via: usize, to: &str) -> Result<TransferReply, ApiError> {
        self.require_peers(via)?;
        let t = self
            .index_of(to)
            .ok_or_else(|| ApiError::new(404, format!("unknown node `{to}`")))?;
        let l = self
            .known_leader(via)
            .ok_or_else(|| ApiError::new(409, "no leader: the cluster is electing one"))?;
        if t == l {
            return Ok(TransferReply {
                from: self.nodes[l].id.clone(),
                to: self.nodes[t].id.clone(),
                term: self.nodes[l].term,
            });
        }
        if self.nodes[l].transfer.is_some() {
            return Err(ApiError::new(
                409,
                "a leadership transfer is already in progress",
            ));
        }
        self.transfer_target_ok(l, t)?;
        self.event(Some(l), "transfer_requested", format!("to {to}"));
        self.nodes[l].transfer = Some(Transfer {
            to: t,
            deadline: self.now + self.election.0,
        });
        Ok(TransferReply {
            from: self.nodes[l].id.clone(),
            to: self.nodes[t].id.clone(),
            term: self.nodes[l].term + 1,
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
        if self.known_leader(via) != Some(via) {
            let why = match self.known_leader(via) {
                Some(l) => format!("not the leader; leader is {}", self.nodes[l].id),
                None => "not the leader; no leader is known".to_string(),
            };
            return Err(ApiError::new(409, why));
        }
        let index = self.nodes[via].commit;
        self.snapshot = Some(Snapshot {
            at: self.now,
            index,
        });
        self.event(Some(via), "snapshot", format!("index {index}"));
        Ok(self.backup_status())
    }

    /// Writes a probe entry through the leader. It answers at once when a majority holds the
    /// leader's log closely enough to commit the entry within the probe's patience.
    pub fn test_transaction(&mut self, via: usize) -> Result<TxReply, ApiError> {
        self.require_peers(via)?;
        let Some(l) = self.known_leader(via) else {
            return Err(ApiError::new(503, "no leader: cannot commit"));
        };
        if self.paused {
            return Err(ApiError::new(503, "cluster is paused"));
        }
        if self.nodes[l].transfer.is_some() {
            return Err(ApiError::new(503, "leadership transfer in progress"));
        }
        let holders = 1
            + (0..self.nodes.len())
                .filter(|&f| f != l && self.connected(l, f) && self.lag_ms(f) <= CAUGHT_UP_MS)
                .count();
        if holders < self.quorum() {
            return Err(ApiError::new(
                503,
                format!(
                    "no quorum: cannot commit ({holders} of {} members hold the log, quorum is {})",
                    self.nodes.len(),
                    self.quorum()
                ),
            ));
        }
        let latency = self.write_latency_secs(via, via != l) * 1000.0;
        let term = self.nodes[l].term;
        self.nodes[l].log.append(1, term);
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
            term: n.term,
            commit_index: n.commit,
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
                        n.running.to_string()
                    } else {
                        n.installed.to_string()
                    },
                    commit_index: n.commit,
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
            term: self.nodes[via].term,
            commit_index: self.nodes[via].commit,
            nodes: (0..self.nodes.len())
                .map(|i| {
                    let n = &self.nodes[i];
                    let match_index = leader
                        .and_then(|l| self.nodes[l].progress.get(i))
                        .map_or(n.log.last(), |p| p.match_idx);
                    RaftNodeView {
                        id: n.id.clone(),
                        role: self.role(i).as_str(),
                        commit_index: n.commit,
                        applied_index: n.applied_index(),
                        match_index,
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
            term: n.term,
            commit_index: n.commit,
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

fn ms(secs: f64) -> u64 {
    (secs.max(0.0) * 1000.0).round() as u64
}

/// What becomes of a batch node `i` appended to a leader's log: acknowledged (`Some(true)`),
/// retried because that leader is gone or deposed (`Some(false)`), or still waiting (`None`).
fn write_fate(nodes: &[Node], i: usize, alive: bool, group: usize, b: &Batch) -> Option<bool> {
    let e = b.entry?;
    let l = &nodes[e.leader];
    let reply_path = alive && l.raft_active() && (e.leader == i || l.group == group);
    let committed = l.commit >= e.hi && l.log.term_at(e.hi) == Some(e.term);
    if reply_path && committed {
        Some(true)
    } else if l.raft_active() && l.role == Role::Leader && l.term == e.term {
        None
    } else {
        Some(false)
    }
}

/// Queues stay ordered by deadline, so expiry looks only at the front.
fn push_by_deadline(q: &mut VecDeque<Batch>, b: Batch) {
    if q.back().is_none_or(|last| last.deadline <= b.deadline) {
        q.push_back(b);
    } else {
        let k = q.partition_point(|x| x.deadline <= b.deadline);
        q.insert(k, b);
    }
}

/// Two distinct nodes borrowed mutably at once.
fn pair(nodes: &mut [Node], a: usize, b: usize) -> (&mut Node, &mut Node) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = nodes.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = nodes.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
