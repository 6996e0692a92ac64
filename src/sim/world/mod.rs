//! The simulated cluster as one state machine, the world: every node's process, Raft state and client
//! writes, the network between them, the faults, the event log and the figures.
//!
//! Pure: no I/O, no clock. Simulated time moves only in whole slices of `SLICE` (10 ms, `advance`):
//! `tick(dt)` and `tick_towards(t)` only decide how many are run, never how long one is, so the same seed
//! and the same actions at the same slices give the same trace however the slices are grouped. Every
//! other method is one operator or host action applied at the current `now`. The servers in
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
//! slice they are sent in (a slice is 10 ms, a loopback round trip well under that); what
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

use self::node::{Batch, Faults, Node, Probe, ProcessState, Role};
use crate::sim::config::{FaultKind, Shape, SimConfig, SimError};
use crate::sim::log::Log;
use crate::sim::record::{SimEvent, SimStats};

/// Each node draws its own election timeout from this range at every reset (Neumann's
/// documented 150-300 ms). The lower bound is also the check-quorum window and the lease in
/// which a follower that hears from its leader ignores other candidates.
pub const ELECTION_TIMEOUT: (f64, f64) = (0.150, 0.300);
/// Lag at or below which a node counts as caught up (the runbook's canary threshold).
pub const CAUGHT_UP_MS: f64 = 100.0;
/// The one step of simulated time: every slice `advance` takes is exactly this long, whatever the speed
/// or the load on the machine, so a seed replays. Well under the election timeout, so timers fire on time;
/// the model's constants (a message delivered within its slice, a commit in one or two) are set for it.
pub const SLICE: f64 = 0.01;
/// The most slices one tick of the real clock runs (20 simulated seconds): after a longer stall of this
/// process (a loaded machine) the clock catches up over several ticks, with the world unlocked between.
const MAX_SLICES_PER_TICK: u64 = 2000;
/// At start every node's latest snapshot, and the backup's, hold the state as of this index: the
/// cluster has a history, so a node that lost its data comes back through a snapshot.
const START_SNAPSHOT: u64 = 900;
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

/// When an armed fault fires.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// The moment the simulator logs this event kind for this node.
    Event(String, usize),
    /// The end of the first slice at or after this simulated time.
    At(f64),
}

/// A fault armed to fire inside the simulator.
#[derive(Clone, Debug)]
struct Trigger {
    when: When,
    fault: FaultSpec,
}

pub struct World {
    /// Simulated seconds since start: always `slices` whole slices.
    pub now: f64,
    slices: u64,
    /// The seed of `rng` and `noise`, given or drawn: what replays this run.
    pub seed: u64,
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
    /// `client_writes_ok` at the last slice: a stall ends when it moves.
    last_ok_seen: u64,
    /// When a client write was last acknowledged.
    last_ack_at: f64,
    quorum_lost_secs: f64,
    events: VecDeque<SimEvent>,
    triggers: Vec<Trigger>,
    /// (index, t) samples of when the leader's log first reached an index, for time-based replication
    /// lag; `head` is the leader's last index now, first reached at `head_at`, and `before` the last
    /// index it held before that, with when it reached it: entries past `before` were written at
    /// `head_at`, which the samples' spacing would blur.
    timeline: VecDeque<(u64, f64)>,
    head: u64,
    head_at: f64,
    before: (u64, f64),
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
    /// Test transactions waiting for their answer, by id.
    probes: BTreeMap<u64, Probe>,
    next_probe: u64,
    /// The model's randomness (election timeouts, latencies, aborts), drawn only inside slices and
    /// actions, in a fixed order.
    /// Leaderships so far: each leader's appends carry its number in the log (see `Log`).
    leaderships: u64,
    rng: fastrand::Rng,
    /// Randomness for what observers see and the model never does (metrics jitter, a flaky node's
    /// failed requests): reads arrive at moments the real clock picks, so they must not move `rng`.
    noise: fastrand::Rng,
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
        let seed = cfg.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut rng = fastrand::Rng::with_seed(seed);
        // A stream of its own, from the same seed.
        let noise = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
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
            slices: 0,
            seed,
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
            last_ok_seen: 0,
            last_ack_at: 0.0,
            quorum_lost_secs: 0.0,
            events: VecDeque::new(),
            triggers: Vec::new(),
            timeline: VecDeque::from([(commit_index, 0.0)]),
            head: commit_index,
            head_at: 0.0,
            before: (commit_index, 0.0),
            load_acc: 0.0,
            rr: 0,
            lb_waiting: VecDeque::new(),
            lb_failed_pending: 0,
            lb_failed_reported_at: f64::NEG_INFINITY,
            next_group: 1,
            election,
            split: false,
            probes: BTreeMap::new(),
            next_probe: 1,
            leaderships: 0,
            rng,
            noise,
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
        for (at, node, kind) in &cfg.timed_faults {
            let i = world
                .index_of(node)
                .ok_or_else(|| SimError::Config(format!("fault names unknown node `{node}`")))?;
            if !(at.is_finite() && *at >= 0.0) {
                return Err(SimError::Config(format!(
                    "a timed fault's time is simulated seconds since start, got {at}"
                )));
            }
            world.arm_when(When::At(*at), FaultSpec::Node(i, *kind));
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
            .position(|t| matches!(&t.when, When::Event(e, n) if *n == i && e == kind))
        {
            let fired = self.triggers.remove(k);
            self.apply_fault(&fired.fault);
        }
    }

    /// Arms `fault` to fire inside the simulator when it logs `event` for node `on`.
    pub fn arm(&mut self, event: &str, on: usize, fault: FaultSpec) {
        self.arm_when(When::Event(event.to_string(), on), fault);
    }

    /// Arms `fault` for `when`; a time already reached fires at once.
    pub fn arm_when(&mut self, when: When, fault: FaultSpec) {
        match when {
            When::At(t) if t <= self.now => self.apply_fault(&fault),
            when => self.triggers.push(Trigger { when, fault }),
        }
    }

    /// Faults armed for a time now reached, in the order they were armed.
    fn fire_timed(&mut self) {
        while let Some(k) = self
            .triggers
            .iter()
            .position(|t| matches!(t.when, When::At(at) if at <= self.now + 1e-9))
        {
            let fired = self.triggers.remove(k);
            self.apply_fault(&fired.fault);
        }
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
                    n.host.handing_over = false;
                    n.host.restart = false;
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

    /// An observer's coin (a flaky node's failed request): from `noise`, so it leaves the model alone.
    pub fn chance(&mut self, p: f64) -> bool {
        self.noise.f64() < p
    }

    pub fn is_bad(&self, v: &Version) -> bool {
        self.bad_versions.contains(v)
    }

    /// One tick of the real clock: runs the slices due by `target` (up to the first slice boundary at or
    /// after it), at most `MAX_SLICES_PER_TICK` of them; the rest follow on the next ticks.
    pub fn tick_towards(&mut self, target: f64) {
        let due = slices_to(target).saturating_sub(self.slices);
        self.run_slices(due.min(MAX_SLICES_PER_TICK));
    }

    /// Whether simulated time has reached `t`, as `tick_towards(t)` would take it: the slice boundary at
    /// or after it.
    pub fn reached(&self, t: f64) -> bool {
        self.slices >= slices_to(t)
    }

    /// Moves simulated time on by `dt`, rounded up to whole slices.
    #[cfg(test)]
    pub fn tick(&mut self, dt: f64) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        self.run_slices(slices_to(dt));
    }

    fn run_slices(&mut self, n: u64) {
        for _ in 0..n {
            self.slices += 1;
            self.now = self.slices as f64 * SLICE;
            self.advance(SLICE);
        }
    }

    /// One slice of `h` simulated seconds: processes and installs finish, timers fire, leaders replicate
    /// and commit, nodes apply, then the clients' writes move and the figures are taken; faults armed
    /// for this moment fire last, as an action arriving between two slices would.
    fn advance(&mut self, h: f64) {
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
        self.flush_failed_events();
        self.fire_timed();
    }

    fn observe(&mut self, h: f64) {
        let healthy = self.healthy_count() as u64;
        self.stats.min_healthy_seen = self.stats.min_healthy_seen.min(healthy);
        self.track_head();
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

    /// Follows the leader's log end, which replication lag is measured against.
    fn track_head(&mut self) {
        let Some(l) = self.leader else { return };
        let last = self.nodes[l].raft.log.last();
        if last == self.head {
            return;
        }
        if last < self.head {
            // A new leader without the old one's last entries: those no longer exist.
            self.head_at = self.written_at(last);
            self.before = (last, self.head_at);
            while self.timeline.back().is_some_and(|(idx, _)| *idx > last) {
                self.timeline.pop_back();
            }
            self.head = last;
            return;
        }
        self.before = (self.head, self.head_at);
        self.head = last;
        self.head_at = self.now;
        let sample = self.timeline.back().copied();
        if sample.is_none_or(|(idx, t)| last > idx && self.now - t >= TIMELINE_SPACING) {
            self.timeline.push_back((last, self.now));
        }
    }

    /// When the leader's log first reached `idx`, interpolated between samples.
    fn written_at(&self, idx: u64) -> f64 {
        if idx > self.before.0 {
            return self.head_at;
        }
        let tl = &self.timeline;
        let k = tl.partition_point(|(i, _)| *i < idx);
        let (hi_idx, hi_t) = match tl.get(k) {
            Some(&(i, t)) if i <= self.before.0 => (i, t),
            _ => self.before,
        };
        match k.checked_sub(1).and_then(|j| tl.get(j)) {
            Some(&(lo_idx, lo_t)) if hi_idx > lo_idx => {
                lo_t + (idx - lo_idx) as f64 / (hi_idx - lo_idx) as f64 * (hi_t - lo_t)
            }
            _ => hi_t,
        }
    }

    /// Replication lag in ms: how long ago the leader appended the first entry this node's log lacks
    /// (past the prefix it shares with the leader's). Measured against the leader's log, not the
    /// commit index: a follower that holds the commit index back is behind by what it lacks even
    /// though it holds everything committed.
    pub fn lag_ms(&self, i: usize) -> f64 {
        let held = match self.leader {
            Some(l) if l == i => return 0.0,
            Some(l) => self.nodes[i]
                .raft
                .log
                .common_prefix(&self.nodes[l].raft.log),
            None => self.nodes[i].raft.log.last(),
        };
        if held >= self.head {
            return 0.0;
        }
        ((self.now - self.written_at(held + 1)) * 1000.0).max(0.0)
    }
}

/// Slices from 0 to the first slice boundary at or after `t` (a hair under one counts as reached, so
/// times computed as sums of slices do not round up a whole slice).
fn slices_to(t: f64) -> u64 {
    if t.is_nan() || t <= 0.0 {
        return 0;
    }
    (t / SLICE - 1e-6).ceil() as u64
}

fn ms(secs: f64) -> u64 {
    (secs.max(0.0) * 1000.0).round() as u64
}
