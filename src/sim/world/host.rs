//! The host side of each node, as a runbook reaches it over SSH: stop and start the process, `cargo
//! install` a version, or stage one beside the running version and activate it for the next start.

use semver::Version;
use serde::Serialize;

use super::node::{ProcessMetrics, ProcessState, Role};
use super::World;

const STOP_SECS: f64 = 0.5;
const START_SECS: f64 = 1.0;
pub const INSTALL_SECS: f64 = 3.0;
/// Published releases as (major, minor, highest patch): what `cargo install` can find.
const CATALOG: &[(u64, u64, u64)] = &[
    (0, 8, 3),
    (0, 9, 4),
    (0, 10, 6),
    (0, 11, 3),
    (0, 12, 1),
    (1, 0, 1),
];

/// What a host-side command prints and returns.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn ok() -> Self {
        CommandOutput::stderr(0, String::new())
    }

    /// What cargo, ln and the like answer: a status, and what they print on stderr only.
    fn stderr(status: i32, stderr: String) -> Self {
        CommandOutput {
            status,
            stdout: String::new(),
            stderr,
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

impl World {
    pub fn is_known_version(&self, v: &Version) -> bool {
        let published = v.pre.is_empty()
            && v.build.is_empty()
            && CATALOG
                .iter()
                .any(|&(ma, mi, mp)| v.major == ma && v.minor == mi && v.patch <= mp);
        self.any_version || published || *v == self.base_version || self.is_bad(v)
    }

    pub(super) fn advance_processes(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].host.handing_over {
                let n = &self.nodes[i];
                let done =
                    !n.raft_active() || n.raft.role != Role::Leader || n.raft.transfer.is_none();
                if done {
                    self.begin_stop(i, "stopped: the hand-over was abandoned", false);
                }
                continue;
            }
            match self.nodes[i].host.process {
                ProcessState::Stopping { until } if self.now >= until => {
                    let node = &mut self.nodes[i];
                    node.host.process = ProcessState::Stopped;
                    let lost = node.take_all_pending();
                    self.fail_writes(Some(i), lost);
                    if std::mem::take(&mut self.nodes[i].host.restart) {
                        self.host_start(i);
                    }
                }
                ProcessState::Starting { until } if self.now >= until => self.finish_start(i),
                _ => {}
            }
        }
    }

    fn finish_start(&mut self, i: usize) {
        self.load_data_dir(i);
        let due = self.now + self.uniform(self.election);
        let node = &mut self.nodes[i];
        node.host.process = ProcessState::Running;
        node.host.running = node.host.installed.clone();
        node.host.generation += 1;
        node.draining = false;
        node.faults.hang = false;
        node.host.handing_over = false;
        node.host.restart = false;
        // Volatile Raft state starts afresh; term, vote, log and commit were persisted.
        node.raft.role = Role::Follower;
        node.raft.leader = None;
        node.raft.progress.clear();
        node.raft.transfer = None;
        node.raft.election_due = due;
        node.raft.last_heard = f64::NEG_INFINITY;
        node.metrics = ProcessMetrics::new(&mut self.rng);
        let lowest = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.is_running() && n.joined)
            .map(|(_, n)| &n.host.running)
            .min()
            .cloned();
        let mine = self.nodes[i].host.running.clone();
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

    pub(super) fn advance_installs(&mut self) {
        for i in 0..self.nodes.len() {
            let finished = match &self.nodes[i].host.installing {
                Some((until, v)) if self.now >= *until => Some(v.clone()),
                _ => None,
            };
            if let Some(v) = finished {
                self.nodes[i].host.installing = None;
                self.nodes[i].host.installed = v.clone();
                self.event(Some(i), "install", format!("{v} installed"));
            }
            let staged = match &self.nodes[i].host.staging {
                Some((until, v)) if self.now >= *until => Some(v.clone()),
                _ => None,
            };
            if let Some(v) = staged {
                self.nodes[i].host.staging = None;
                self.nodes[i].host.staged.insert(v.clone());
                self.event(Some(i), "stage", format!("{v} staged"));
            }
        }
    }

    /// The supervisor could not take the node's port back; logged once per process start.
    pub fn note_bind_failure(&mut self, i: usize, detail: &str) {
        let generation = self.nodes[i].host.generation;
        if self.nodes[i].host.bind_failure_logged != Some(generation) {
            self.nodes[i].host.bind_failure_logged = Some(generation);
            self.event(Some(i), "bind_failed", detail);
        }
    }

    /// `systemctl stop`: a graceful stop. A leader first hands leadership to its most caught-up eligible
    /// follower (Raft's TimeoutNow, as etcd does on SIGTERM) and shuts down once that follower leads, or
    /// once the hand-over is abandoned after an election timeout, which loses the leader; with no
    /// follower to hand over to, it leaves office at once (a leader lost). Any other node shuts down at
    /// once. Shutting down takes `STOP_SECS`, requests in flight finishing. Returns the earliest time it
    /// will be stopped, None when it already is.
    pub fn host_stop(&mut self, i: usize) -> Option<f64> {
        if self.nodes[i].host.handing_over {
            return Some(self.now + STOP_SECS);
        }
        match self.nodes[i].host.process {
            ProcessState::Running | ProcessState::Starting { .. } => {
                let n = &self.nodes[i];
                if !(n.raft_active() && n.raft.role == Role::Leader) {
                    return self.begin_stop(i, "stopped", true);
                }
                self.event(Some(i), "stop", "systemctl stop neumann");
                let n = &self.nodes[i];
                if !matches!(
                    n.host.process,
                    ProcessState::Running | ProcessState::Starting { .. }
                ) {
                    // A fault armed on this stop took the process already.
                    return self.host_stop(i);
                }
                if n.raft_active() && n.raft.role == Role::Leader && self.hand_over_on_stop(i) {
                    self.nodes[i].host.handing_over = true;
                    return Some(self.now + STOP_SECS);
                }
                self.begin_stop(i, "stopped with no follower to hand over to", false)
            }
            ProcessState::Stopping { until } => Some(until),
            ProcessState::Stopped | ProcessState::Crashed => None,
        }
    }

    /// The process shuts down: it takes no more requests, finishes those in flight, and is gone in
    /// `STOP_SECS`. A node still leading leaves office, a leader lost.
    fn begin_stop(&mut self, i: usize, why: &str, log_stop: bool) -> Option<f64> {
        let until = self.now + STOP_SECS;
        let n = &mut self.nodes[i];
        n.host.process = ProcessState::Stopping { until };
        n.host.handing_over = false;
        // The hung process is the one being stopped; a new one starts clean.
        n.faults.hang = false;
        n.awaiting_catch_up = false;
        if log_stop {
            self.event(Some(i), "stop", "systemctl stop neumann");
        }
        if self.nodes[i].raft.role == Role::Leader {
            self.leave_office(i, why, true);
        }
        self.refresh_view();
        Some(until)
    }

    /// `systemctl restart`: a stop as above, then a start the moment the process is gone, both decided
    /// here so that the start's moment does not depend on when the caller hears of the stop. Returns the
    /// earliest time the new process is launched.
    pub fn host_restart(&mut self, i: usize) -> f64 {
        match self.host_stop(i) {
            Some(until) => {
                self.nodes[i].host.restart = true;
                until
            }
            None => {
                self.host_start(i);
                self.now
            }
        }
    }

    pub fn host_start(&mut self, i: usize) -> StartOutcome {
        if self.nodes[i].host.handing_over {
            return StartOutcome::WaitStopped;
        }
        match self.nodes[i].host.process {
            ProcessState::Stopped | ProcessState::Crashed => {
                let until = self.now + START_SECS;
                self.nodes[i].host.process = ProcessState::Starting { until };
                let v = self.nodes[i].host.installed.clone();
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
        if self.nodes[i].host.staged.contains(version) {
            let stderr = format!(
                "    Updating crates.io index\n     Ignored package `neumann v{version}` is already installed, use --force to override\n"
            );
            self.event(Some(i), "stage", format!("{version} already staged"));
            return (self.now, CommandOutput::stderr(0, stderr));
        }
        let busy = self.nodes[i].host.staging.clone();
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
            return (*until, CommandOutput::stderr(0, stderr));
        }
        if let Some((_, other)) = busy {
            self.event(
                Some(i),
                "stage_failed",
                format!("{version}: {other} is being staged"),
            );
            let stderr = format!(
                "error: another cargo install (neumann v{other}) holds the lock on this host\n"
            );
            return (self.now, CommandOutput::stderr(101, stderr));
        }
        let (done_at, out) = self.host_install_outcome(i, version, "stage_failed");
        if out.status == 0 {
            self.nodes[i].host.staging = Some((done_at, version.clone()));
        }
        (done_at, out)
    }

    /// Points the node's service at a staged version (`ln -sfn`): the version it runs at its next start.
    /// A version that was not staged fails as a failed install does, changing nothing.
    pub fn host_activate(&mut self, i: usize, version: &Version) -> CommandOutput {
        if !self.nodes[i].host.staged.contains(version) {
            let staged: Vec<String> = self.nodes[i]
                .host
                .staged
                .iter()
                .map(|v| v.to_string())
                .collect();
            self.event(
                Some(i),
                "activate_failed",
                format!("{version}: not staged (staged: {})", staged.join(", ")),
            );
            let stderr = format!(
                "/opt/neumann/{version}/bin/neumann: No such file or directory (not staged; staged: {})\n",
                staged.join(", ")
            );
            return CommandOutput::stderr(1, stderr);
        }
        self.nodes[i].host.installed = version.clone();
        self.event(Some(i), "activate", format!("{version} activated"));
        CommandOutput::ok()
    }

    /// Begins `cargo install`: returns when it completes and what it will print.
    pub fn host_install(&mut self, i: usize, version: &Version) -> (f64, CommandOutput) {
        let (done_at, out) = self.host_install_outcome(i, version, "install_failed");
        if out.status == 0 {
            self.nodes[i].host.installing = Some((done_at, version.clone()));
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
            return (done_at, CommandOutput::stderr(101, stderr));
        }
        if self.nodes[i].faults.fail_install {
            let stderr = format!(
                "    Updating crates.io index\n  Downloaded neumann v{version}\n  Installing neumann v{version}\nerror: failed to compile `neumann v{version}`, intermediate artifacts can be found at `/tmp/cargo-install3Xq1`.\n\nCaused by:\n  No space left on device (os error 28)\n"
            );
            self.event(Some(i), failed, format!("{version}: injected failure"));
            return (done_at, CommandOutput::stderr(101, stderr));
        }
        let stderr = format!(
            "    Updating crates.io index\n  Downloaded neumann v{version}\n  Installing neumann v{version}\n   Installed package `neumann v{version}` (executable `neumann`)\n"
        );
        (done_at, CommandOutput::stderr(0, stderr))
    }
}
