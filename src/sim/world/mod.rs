//! The simulated cluster as one state machine, the world: every node's process, Raft state and client
//! writes, the network between them, the faults, the event log and the figures.
//!
//! Pure: no I/O, no clock. `tick(dt)` advances simulated time in slices of at most 10 ms (`advance`);
//! every other method is one operator or host action applied at the current `now`. The servers in
//! `server.rs` and `control.rs` lock it briefly and translate HTTP to these calls; tests drive it directly.
//!
//! This file holds the state and the driver: `World::new`, `tick` and `advance` (what one slice does, in
//! order), the event log with its triggers, fault injection and the figures. The rules live beside it,
//! each file an `impl World` of its own, laid out the way raft-rs lays out a node:
//!
//! - `node.rs`: one node's state: its process, its Raft state, the client writes it holds; data only;
//! - `raft.rs`: elections, replication and commit, each leader's progress, leadership hand-over;
//! - `partition.rs`: the network: who reaches whom, partition groups;
//! - `clients.rs`: the client load, the load balancer, and the history of acknowledged writes;
//! - `host.rs`: the host side: stop, start, install, stage, activate;
//! - `admin.rs`: the admin API's answers and its views (`/health`, members, Raft status, metrics);
//! - `snapshot.rs`: log compaction, and snapshots sent to followers behind the compacted log;
//! - `disk.rs`: the data directory's faults: wiped, restored from a backup, a disk that acknowledges
//!   writes before they are written.
//!
//! The files beside this one import it and `node.rs`; this file imports none of them.
//!
//! Raft is modelled node by node: each node has its own term, vote, log (`Log`), commit index
//! and applied index, and acts only on what it could know. Messages are delivered within the
//! slice they are sent in (a slice is at most 10 ms, a loopback round trip well under that); what
//! makes a message undeliverable is the receiver being down, hung or in another partition group.

pub(crate) mod admin;
mod clients;
mod disk;
pub(crate) mod host;
pub(crate) mod node;
mod partition;
mod raft;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use semver::Version;
use serde::Serialize;

use self::node::{Batch, Faults, Node, ProcessState, Role};
use crate::sim::config::{FaultKind, Shape, SimConfig, SimError};
use crate::sim::log::Log;
use crate::sim::record::{SimEvent, SimStats};

/// Each node draws its own election timeout from this range at every reset (Neumann's
/// documented 150-300 ms). The lower bound is also the check-quorum window and the lease in
/// which a follower that hears from its leader ignores other candidates.
pub const ELECTION_TIMEOUT: (f64, f64) = (0.150, 0.300);
/// Lag at or below which a node counts as caught up (the runbook's canary threshold).
pub const CAUGHT_UP_MS: f64 = 100.0;
/// At start every node's latest snapshot, and the backup's, hold the state as of this index: the
/// cluster has a history, so a node that lost its data comes back through a snapshot.
const START_SNAPSHOT: u64 = 900;
/// The longest slice of simulated time `advance` takes at once: well under the election timeout, so
/// timers fire on time.
const MAX_SLICE: f64 = 0.01;
const MAX_SLICES_PER_TICK: f64 = 2000.0;
/// The most simulated time one tick of the real clock may cover at `MAX_SLICE`: after a longer stall of
/// this process (a loaded machine), the clock catches up over several ticks instead of taking coarser
/// slices, which would let election timers and write deadlines fire where a real cluster's would not.
const MAX_TICK_SECS: f64 = MAX_SLICE * MAX_SLICES_PER_TICK;
const TIMELINE_SPACING: f64 = 0.05;
const TIMELINE_KEEP: f64 = 3600.0;
const MAX_EVENTS: usize = 100_000;

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

/// The cluster's latest backup (`/admin/snapshot`): the state as of `index`, taken at `at` in the
/// leader's `term`, with the log's terms up to there (what a node restored from it holds).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub at: f64,
    pub index: u64,
    pub term: u64,
    pub log: Log,
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

pub struct World {
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
    /// The client's record: entries (lo, hi, (term, leadership)) whose writes were acknowledged.
    acked: Vec<(u64, u64, (u64, u64))>,
    stall_since: Option<f64>,
    /// When a client write was last acknowledged.
    last_ack_at: f64,
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
    /// Leaderships so far: each leader's appends carry its number in the log (see `Log`).
    leaderships: u64,
    rng: fastrand::Rng,
    #[cfg(test)]
    pub bugs: Bugs,
}

impl World {
    pub fn new(cfg: &SimConfig, start_unix: f64) -> Result<World, SimError> {
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
                let election_due = election.0 + rng.f64() * (election.1 - election.0);
                Node::new(
                    format!("node{n}"),
                    &cfg.version,
                    commit_index,
                    START_SNAPSHOT,
                    election_due,
                    &mut rng,
                )
            })
            .collect();
        let mut world = World {
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
                index: START_SNAPSHOT,
                term: 1,
                log: Log::new(START_SNAPSHOT, 1),
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
                max_ack_gap_ms: 0,
            },
            bad_versions: cfg.bad_versions.clone(),
            base_version: cfg.version.clone(),
            any_version: false,
            leaders_by_term: BTreeMap::new(),
            acked: Vec::new(),
            stall_since: None,
            last_ack_at: 0.0,
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
            leaderships: 0,
            rng,
            #[cfg(test)]
            bugs: Bugs::default(),
        };
        world.install_leader(0, 1);
        if let Some(shape) = &cfg.shape {
            world.take_shape(shape)?;
        }
        for (node, kind) in &cfg.faults {
            let i = world
                .index_of(node)
                .ok_or_else(|| SimError::Config(format!("fault names unknown node `{node}`")))?;
            world.inject(i, *kind);
        }
        Ok(world)
    }

    /// Becomes a twin of a live cluster: its ids, versions, leader, drains, pause; down nodes crash.
    fn take_shape(&mut self, shape: &Shape) -> Result<(), SimError> {
        self.any_version = true;
        for (node, s) in self.nodes.iter_mut().zip(&shape.nodes) {
            node.id = s.id.clone();
            node.host.installed = s.version.clone();
            node.host.running = s.version.clone();
            node.draining = s.draining;
            node.clients.in_service = !s.draining;
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
            n.raft.log = Log::new(n.raft.log.last(), term);
        }
        match leader {
            Some(l) => self.install_leader(l, term),
            None => {
                for n in &mut self.nodes {
                    n.raft.term = term;
                    n.raft.voted_for = None;
                    n.raft.leader = None;
                    n.raft.role = Role::Follower;
                    n.raft.progress.clear();
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
        s.max_ack_gap_ms = s.max_ack_gap_ms.max(ms(self.now - self.last_ack_at));
        s
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

    pub fn inject(&mut self, i: usize, kind: FaultKind) {
        match kind {
            FaultKind::Crash => {
                let n = &mut self.nodes[i];
                if matches!(
                    n.host.process,
                    ProcessState::Stopped | ProcessState::Crashed
                ) {
                    // Nothing to crash; still logged below so the test sees its request.
                } else {
                    let was_leader = n.raft.role == Role::Leader;
                    n.host.process = ProcessState::Crashed;
                    n.faults.hang = false;
                    n.awaiting_catch_up = false;
                    let lost = n.take_all_pending();
                    self.fail_writes(Some(i), lost);
                    self.event(Some(i), "crash", "process killed");
                    if was_leader {
                        self.leave_office(i, "crashed", true);
                    }
                    self.lose_unwritten(i);
                }
            }
            FaultKind::Hang => {
                let n = &mut self.nodes[i];
                let leading = n.raft.role == Role::Leader && n.raft_active();
                n.faults.hang = true;
                if leading && !n.raft.loss_counted {
                    // A hung process keeps believing it leads; the cluster has lost it now.
                    n.raft.loss_counted = true;
                    let term = n.raft.term;
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
                if self.nodes[i].faults.hang {
                    // A frozen process's timers did not run while it was frozen (a ticker drops the
                    // ticks it missed): it resumes with a fresh election timeout, not an expired one.
                    self.nodes[i].raft.election_due = self.now + self.uniform(self.election);
                }
                self.nodes[i].faults = Faults::default();
                // Faults armed for this node go too: healed means nothing more is coming its way.
                self.triggers
                    .retain(|t| !matches!(t.fault, FaultSpec::Node(n, _) if n == i));
                self.heal_network();
            }
            FaultKind::SlowCatchup => self.nodes[i].faults.slow_catchup = true,
            FaultKind::FailInstall => self.nodes[i].faults.fail_install = true,
            FaultKind::Flaky => self.nodes[i].faults.flaky = true,
            FaultKind::Wipe => self.wipe(i),
            FaultKind::RestoreBackup => self.restore_backup(i),
            FaultKind::UnsyncedDisk => self.nodes[i].faults.unsynced_disk = true,
        }
        self.refresh_view();
        self.event(Some(i), "fault", kind.as_str());
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

    /// One tick of the real clock: simulated time moves towards `target`, all the way unless the process
    /// stalled for longer than one tick simulates at full resolution (`MAX_TICK_SECS`); the rest follows
    /// on the next ticks.
    pub fn tick_towards(&mut self, target: f64) {
        self.tick((target - self.now).min(MAX_TICK_SECS));
    }

    /// Moves simulated time on by `dt`, in equal slices of at most `MAX_SLICE`.
    pub fn tick(&mut self, dt: f64) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        let slices = (dt / MAX_SLICE).ceil().clamp(1.0, MAX_SLICES_PER_TICK);
        let h = dt / slices;
        for _ in 0..slices as usize {
            self.advance(h);
        }
        self.flush_failed_events();
    }

    /// One slice of `h` simulated seconds: processes and installs finish, timers fire, leaders replicate
    /// and commit, nodes apply, then the clients' writes move and the figures are taken.
    fn advance(&mut self, h: f64) {
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

    /// Replication lag in ms: how long ago the cluster committed the entry after the last one
    /// this node holds.
    pub fn lag_ms(&self, i: usize) -> f64 {
        let held = self.nodes[i].raft.log.last();
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
}

fn ms(secs: f64) -> u64 {
    (secs.max(0.0) * 1000.0).round() as u64
}
