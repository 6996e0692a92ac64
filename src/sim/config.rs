//! What a simulator is started with (`SimConfig`, a twin's `Shape`), the faults it can be asked to inject,
//! and `SimError`, what it refuses. A leaf: it imports nothing of the simulator.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub version: semver::Version,
    /// Simulated seconds per real second: every delay shrinks by this factor.
    pub speed: f64,
    /// Versions that misbehave like a broken release: aborts, slow, memory-hungry.
    pub bad_versions: Vec<semver::Version>,
    /// Faults applied at start, as (node id, kind).
    pub faults: Vec<(String, FaultKind)>,
    /// Faults armed for a simulated moment, as (seconds since start, node id, kind): each fires inside
    /// the simulator at the end of the first slice at or after its time, so a run with the same seed
    /// replays them at the same instant whatever the speed or the machine.
    pub timed_faults: Vec<(f64, String, FaultKind)>,
    /// Seeds the simulator's randomness so runs repeat.
    pub seed: Option<u64>,
    /// Raft's election timeout range in ms, each node drawing its own in it; `None` is Neumann's
    /// documented 150-300 ms. The lower bound is also the check-quorum window, the followers' lease
    /// and how long a hand-over may take.
    pub election_timeout_ms: Option<(u64, u64)>,
    /// A twin of a live cluster (rehearsal): its node ids, versions, leader and flags replace `nodes` and
    /// `version`, and any version installs (the twin cannot know what the real registry has).
    pub shape: Option<Shape>,
    /// Serve the run lease (`/admin/lease`); off, the nodes answer 404 there like a cluster without it.
    pub lease_api: bool,
    /// Report `rollback_limits` in `/health`; off, the field is missing, like a cluster that does not
    /// track them.
    pub rollback_limits_reported: bool,
}

/// The shape of a live cluster, for a simulated twin.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shape {
    pub nodes: Vec<NodeShape>,
    pub leader: Option<String>,
    pub paused: bool,
    pub term: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeShape {
    pub id: String,
    pub version: semver::Version,
    pub draining: bool,
    /// Not running (or not reachable): the twin starts it crashed, so it comes back only when started.
    pub down: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            version: semver::Version::new(0, 10, 4),
            speed: 1.0,
            bad_versions: Vec::new(),
            faults: Vec::new(),
            timed_faults: Vec::new(),
            seed: None,
            election_timeout_ms: None,
            shape: None,
            lease_api: true,
            rollback_limits_reported: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Crash,
    Hang,
    Partition,
    Heal,
    SlowCatchup,
    FailInstall,
    Flaky,
    /// The node's data directory is emptied; the process finds it so at its next start.
    Wipe,
    /// The node's data directory is replaced by the cluster's latest backup, found at its next start.
    RestoreBackup,
    /// The node's disk acknowledges writes before they are written: a crash loses the last second.
    UnsyncedDisk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Partition,
        FaultKind::Heal,
        FaultKind::SlowCatchup,
        FaultKind::FailInstall,
        FaultKind::Flaky,
        FaultKind::Wipe,
        FaultKind::RestoreBackup,
        FaultKind::UnsyncedDisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Hang => "hang",
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::SlowCatchup => "slow_catchup",
            FaultKind::FailInstall => "fail_install",
            FaultKind::Flaky => "flaky",
            FaultKind::Wipe => "wipe",
            FaultKind::RestoreBackup => "restore_backup",
            FaultKind::UnsyncedDisk => "unsynced_disk",
        }
    }

    fn list() -> String {
        FaultKind::ALL.map(FaultKind::as_str).join(", ")
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| SimError::UnknownFault(s.to_string()))
    }
}

#[derive(thiserror::Error, Debug)]
pub enum SimError {
    #[error("invalid simulator config: {0}")]
    Config(String),
    #[error("simulator: cannot listen for {what} on 127.0.0.1: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator: unknown node `{0}`")]
    UnknownNode(String),
    #[error("simulator: unknown fault kind `{0}` (expected one of: {list})", list = FaultKind::list())]
    UnknownFault(String),
}
