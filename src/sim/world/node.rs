//! One node's state, data only: its process, its Raft state and the client writes it holds. The rules
//! that change it are `World`'s, in the files beside this one.

use std::collections::{BTreeSet, VecDeque};

use semver::Version;

use crate::sim::log::Log;

/// Upper bounds of the latency histogram buckets, in seconds; `+Inf` is the count.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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
    /// The disk acknowledges writes before they are on the platter (`unsynced_disk`).
    pub unsynced_disk: bool,
}

/// Non-cumulative bucket counts; rendering makes them cumulative.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub(super) fn observe(&mut self, secs: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// Where a batch of writes sits in the leader's log: entries lo..=hi of `term`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) leader: usize,
    pub(super) term: u64,
    pub(super) lo: u64,
    pub(super) hi: u64,
}

/// A group of client writes that arrived at one node in one slice and share their fate.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batch {
    pub(super) arrived: f64,
    pub(super) deadline: f64,
    pub(super) count: u64,
    pub(super) entry: Option<Entry>,
    /// The admin API's test transaction (its id): one write that someone waits on by name.
    pub(super) probe: Option<u64>,
}

/// A test transaction (the admin API's probe write): how it ended, once it has, and when.
#[derive(Clone, Debug, Default)]
pub(super) struct Probe {
    pub(super) settled: Option<(f64, ProbeOutcome)>,
}

#[derive(Clone, Debug)]
pub(super) enum ProbeOutcome {
    /// Acknowledged: its latency as the client saw it, and the leader that committed it.
    Committed { latency_secs: f64, leader: usize },
    /// Not committed by its deadline, or dropped by a node going down: why.
    Failed(String),
}

/// What a leader knows of one follower.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Progress {
    pub(super) match_idx: u64,
    /// Entries the leader may still send this slice; a caught-up follower banks none.
    pub(super) credit: f64,
    pub(super) last_ack: f64,
    /// A snapshot on its way to this follower: its index, and when it is installed.
    pub(super) snapshot: Option<(u64, f64)>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub(super) to: usize,
    /// Raft aborts a transfer whose target has not caught up within an election timeout.
    pub(super) deadline: f64,
}

#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub admin_url: String,
    pub joined: bool,
    pub join_error: Option<String>,
    pub draining: bool,
    /// Partition group: nodes exchange messages only within the same group.
    pub group: usize,
    pub faults: Faults,
    /// Started and not yet caught up: `caught_up` is logged when its lag is small again.
    pub(super) awaiting_catch_up: bool,
    pub host: Host,
    pub raft: Raft,
    pub(super) clients: Clients,
    pub metrics: ProcessMetrics,
    pub(super) disk: Disk,
}

/// The node's data directory, as far as it differs from the Raft state the process holds.
#[derive(Debug, Default)]
pub(super) struct Disk {
    /// What the process finds at its next start when the directory was wiped or replaced.
    pub(super) replaced: Option<DataDir>,
    /// With `unsynced_disk`: the persisted state as the disk held it, slice by slice, oldest first;
    /// what a power loss leaves is the newest one old enough to have been written out.
    pub(super) written: VecDeque<(f64, Persisted)>,
}

#[derive(Clone, Debug)]
pub(super) enum DataDir {
    Empty,
    Backup(Persisted),
}

/// What a node keeps on disk: the Raft state that survives a restart.
#[derive(Clone, Debug)]
pub(super) struct Persisted {
    pub(super) term: u64,
    pub(super) voted_for: Option<usize>,
    pub(super) log: Log,
    pub(super) commit: u64,
    pub(super) applied: f64,
    pub(super) snapshot_index: u64,
    pub(super) compacted: u64,
}

/// The host and its process: which incarnation runs which version, and the builds beside it.
#[derive(Debug)]
pub struct Host {
    pub process: ProcessState,
    pub installed: Version,
    pub running: Version,
    /// Process incarnation: the server for an older incarnation must not answer.
    pub generation: u64,
    /// Written by the server supervisor once the listener matches the process state.
    pub listening: bool,
    pub(super) installing: Option<(f64, Version)>,
    /// Versions installed beside the running one (`/opt/neumann/{version}`), ready to activate. The
    /// version a node starts with counts as staged: it is what the service link points at.
    pub staged: BTreeSet<Version>,
    /// A `stage` in progress: when it completes and what.
    pub(super) staging: Option<(f64, Version)>,
    pub(super) bind_failure_logged: Option<u64>,
    /// Told to stop while leading: the process hands leadership over before it exits (see `host_stop`).
    pub(super) handing_over: bool,
    /// `systemctl restart`: start again the moment the stop completes.
    pub(super) restart: bool,
}

/// Raft state. term, vote, log, commit, applied and the snapshot survive a restart (persisted); the
/// rest is volatile.
#[derive(Debug)]
pub struct Raft {
    pub term: u64,
    pub(super) voted_for: Option<usize>,
    pub log: Log,
    pub commit: u64,
    /// Fractional so applying advances at small slices; exposed floored.
    pub applied: f64,
    /// The node's latest snapshot of its state: as of this index.
    pub snapshot_index: u64,
    /// Entries up to here are compacted away: the node can send them only as a snapshot. (The log
    /// keeps their terms so the invariants can judge them.)
    pub compacted: u64,
    pub role: Role,
    /// The leader this node last heard from in its current term.
    pub leader: Option<usize>,
    pub(super) election_due: f64,
    pub(super) last_heard: f64,
    /// A leader's view of each follower; empty on the others.
    pub(super) progress: Vec<Progress>,
    pub(super) transfer: Option<Transfer>,
    /// A hung leader is counted as lost when it hangs, not again when it steps down later.
    pub(super) loss_counted: bool,
}

/// The clients' side of a node: whether the load balancer sends it writes, and the writes it holds.
#[derive(Debug)]
pub(super) struct Clients {
    pub(super) in_service: bool,
    pub(super) bad_since: Option<f64>,
    pub(super) good_since: Option<f64>,
    /// Appended to a leader's log, waiting for it to commit.
    pub(super) inflight: VecDeque<Batch>,
    /// Retried by the client because no leader could take them.
    pub(super) waiting: VecDeque<Batch>,
    /// Sent to a process that is not there; they fail at their deadline.
    pub(super) stuck: VecDeque<Batch>,
    pub(super) failed_pending: u64,
    pub(super) failed_reported_at: f64,
    /// Test transactions among the writes a stop or crash dropped, to be answered as failed.
    pub(super) dropped_probes: Vec<u64>,
}

/// What the process counts from its start, for `/metrics`: a restart begins them afresh.
#[derive(Debug)]
pub struct ProcessMetrics {
    pub tx_commits: u64,
    pub tx_aborts: u64,
    pub latency: Histogram,
    pub elections_seen: u64,
    pub(super) memory_factor: f64,
}

impl ProcessMetrics {
    pub(super) fn new(rng: &mut fastrand::Rng) -> Self {
        ProcessMetrics {
            tx_commits: 0,
            tx_aborts: 0,
            latency: Histogram::default(),
            elections_seen: 0,
            memory_factor: 0.96 + rng.f64() * 0.08,
        }
    }
}

impl Node {
    /// A running member of a cluster whose log is `commit_index` entries of term 1, led by node 0,
    /// compacted up to `snapshot_index`.
    pub(super) fn new(
        id: String,
        version: &Version,
        commit_index: u64,
        snapshot_index: u64,
        election_due: f64,
        rng: &mut fastrand::Rng,
    ) -> Node {
        Node {
            id,
            admin_url: String::new(),
            joined: true,
            join_error: None,
            draining: false,
            group: 0,
            faults: Faults::default(),
            awaiting_catch_up: false,
            host: Host {
                process: ProcessState::Running,
                installed: version.clone(),
                running: version.clone(),
                generation: 1,
                listening: false,
                installing: None,
                staged: [version.clone()].into_iter().collect(),
                staging: None,
                bind_failure_logged: None,
                handing_over: false,
                restart: false,
            },
            raft: Raft {
                term: 1,
                voted_for: Some(0),
                log: Log::new(commit_index, 1),
                commit: commit_index,
                applied: commit_index as f64,
                snapshot_index,
                compacted: snapshot_index,
                role: Role::Follower,
                leader: Some(0),
                election_due,
                last_heard: 0.0,
                progress: Vec::new(),
                transfer: None,
                loss_counted: false,
            },
            clients: Clients {
                in_service: true,
                bad_since: None,
                good_since: None,
                inflight: VecDeque::new(),
                waiting: VecDeque::new(),
                stuck: VecDeque::new(),
                failed_pending: 0,
                failed_reported_at: f64::NEG_INFINITY,
                dropped_probes: Vec::new(),
            },
            metrics: ProcessMetrics::new(rng),
            disk: Disk::default(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.host.process == ProcessState::Running
    }

    /// Told to stop and not yet stopped: handing leadership over, or shutting down.
    pub fn is_stopping(&self) -> bool {
        self.host.handing_over || matches!(self.host.process, ProcessState::Stopping { .. })
    }

    /// A restart asked for and not yet launched.
    pub fn restart_pending(&self) -> bool {
        self.host.restart
    }

    pub fn in_flight(&self) -> u64 {
        self.clients
            .inflight
            .iter()
            .chain(self.clients.waiting.iter())
            .map(|b| b.count)
            .sum()
    }

    pub fn applied_index(&self) -> u64 {
        self.raft.applied.max(0.0).floor() as u64
    }

    /// Takes part in Raft: exchanges messages, votes, can lead.
    pub fn raft_active(&self) -> bool {
        self.is_running() && self.joined && !self.faults.hang
    }

    /// The process can still finish work it holds (a graceful stop drains it first).
    pub(super) fn alive(&self) -> bool {
        matches!(
            self.host.process,
            ProcessState::Running | ProcessState::Stopping { .. }
        ) && !self.faults.hang
    }

    pub(super) fn persisted(&self) -> Persisted {
        let r = &self.raft;
        Persisted {
            term: r.term,
            voted_for: r.voted_for,
            log: r.log.clone(),
            commit: r.commit,
            applied: r.applied,
            snapshot_index: r.snapshot_index,
            compacted: r.compacted,
        }
    }

    /// The process reads `p` back as its Raft state (its volatile state is the caller's).
    pub(super) fn load(&mut self, p: Persisted) {
        let r = &mut self.raft;
        r.term = p.term;
        r.voted_for = p.voted_for;
        r.log = p.log;
        r.commit = p.commit;
        r.applied = p.applied;
        r.snapshot_index = p.snapshot_index;
        r.compacted = p.compacted;
    }

    pub(super) fn take_all_pending(&mut self) -> u64 {
        let n = self.in_flight();
        let c = &mut self.clients;
        let probes = c
            .inflight
            .iter()
            .chain(c.waiting.iter())
            .filter_map(|b| b.probe);
        c.dropped_probes.extend(probes);
        c.inflight.clear();
        c.waiting.clear();
        n
    }
}
