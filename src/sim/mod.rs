//! The simulated Neumann ("tensor_chain") cluster: N nodes on loopback ports, each serving the
//! admin API, plus a control server for tests and demos, all in this process.
//!
//! `model` holds every rule and all state behind one `Arc<Mutex<Model>>`; a tick task advances
//! simulated time and keeps each node's listener in step with its process (`server`); `control`
//! serves `/sim/...`. Nothing here touches the host: stop/start/install act on the model only.

mod control;
mod lease;
mod log;
mod metrics;
mod model;
pub use model::INSTALL_SECS;
mod net;
mod server;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::model::Model;

/// How often, in real time, the model advances and listeners are reconciled.
const TICK: Duration = Duration::from_millis(10);

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
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Partition,
        FaultKind::Heal,
        FaultKind::SlowCatchup,
        FaultKind::FailInstall,
        FaultKind::Flaky,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SimStats {
    pub client_writes_ok: u64,
    pub client_writes_failed: u64,
    pub elections: u64,
    pub max_leaders_in_a_term: u64,
    pub min_healthy_seen: u64,
    pub lost_committed_writes: u64,
    /// Leaders lost other than by a completed hand-over (stopped, crashed, hung, cut off, or
    /// unseated by a higher term).
    #[serde(default)]
    pub leader_losses: u64,
    /// The longest simulated stretch with client writes waiting and the commit index still.
    #[serde(default)]
    pub max_commit_stall_ms: u64,
    /// Simulated time without a majority of members up, reachable and caught up.
    #[serde(default)]
    pub quorum_lost_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SimEvent {
    /// Simulated seconds since the simulator started.
    pub t: f64,
    pub node: Option<String>,
    pub kind: String,
    pub detail: String,
}

/// What the servers share: the model, plus the time scale to turn simulated waits into real ones.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) model: Arc<Mutex<Model>>,
    pub(crate) speed: f64,
    /// The run lease; locked before the model when both are needed.
    pub(crate) lease: Arc<Mutex<lease::LeaseState>>,
    pub(crate) lease_api: bool,
    /// Simulated seconds fast-forwarded (`/sim/sleep` with `warp`): the tick task's target is real time
    /// times the speed plus this, so the clock goes on from where a warp left it.
    pub(crate) warped: Arc<Mutex<f64>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().expect("simulator model mutex poisoned")
    }

    fn warped_secs(&self) -> f64 {
        *self.warped.lock().expect("simulator warp mutex poisoned")
    }

    /// Moves simulated time on by `secs` as fast as the machine can simulate it, rather than at the
    /// simulator's speed: every node, client and timer runs through it as in paced time, in ticks of at
    /// most 20 simulated seconds with the model unlocked between them. Each tick moves the run lease's
    /// expiry on by what it simulated, since the TTL counts its holder's real seconds, which a warp does
    /// not take; a renewal that lands mid-warp is moved on from there.
    pub(crate) async fn warp(&self, secs: f64) -> f64 {
        let until = self.lock().now + secs;
        loop {
            {
                let mut lease = self.lease.lock().expect("simulator lease mutex poisoned");
                let mut m = self.lock();
                if m.now >= until {
                    return m.now;
                }
                let before = m.now;
                m.tick_towards(until);
                let gained = m.now - before;
                lease.postpone(gained);
                *self.warped.lock().expect("simulator warp mutex poisoned") += gained;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Waits (real time) until simulated time reaches `t` and `ready` holds, or a real-time cap
    /// passes; returns whether it got there. The cap only matters if the tick task is gone.
    pub(crate) async fn wait_until(&self, t: f64, ready: impl Fn(&Model) -> bool) -> bool {
        let cap = Instant::now()
            + Duration::from_secs(30)
            + Duration::from_secs_f64(secs_real(t, self.speed));
        loop {
            let remaining = {
                let m = self.lock();
                if m.now >= t && ready(&m) {
                    return true;
                }
                (t - m.now).max(0.0) / self.speed
            };
            if Instant::now() >= cap {
                return false;
            }
            let nap = remaining.clamp(0.001, 0.01);
            tokio::time::sleep(Duration::from_secs_f64(nap)).await;
        }
    }
}

fn secs_real(sim_secs: f64, speed: f64) -> f64 {
    (sim_secs.max(0.0) / speed).min(3600.0)
}

pub struct Simulator {
    shared: Shared,
    control_addr: SocketAddr,
    node_addrs: Vec<(String, SocketAddr)>,
    stop: watch::Sender<bool>,
    tick_task: Option<JoinHandle<()>>,
    control_task: Option<JoinHandle<()>>,
    /// Drops kept-alive control connections, which outlive the accept loop.
    control_kill: watch::Sender<bool>,
}

impl Simulator {
    /// Binds every port, then spawns the tick task and all servers on the current tokio runtime.
    pub async fn start(cfg: SimConfig) -> Result<Simulator, SimError> {
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut model = Model::new(&cfg, start_unix)?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listeners = Vec::new();
        let mut node_addrs = Vec::new();
        for node in &mut model.nodes {
            let listener = net::bind(loopback).map_err(|source| SimError::Bind {
                what: node.id.clone(),
                source,
            })?;
            let addr = listener.local_addr().map_err(|source| SimError::Bind {
                what: node.id.clone(),
                source,
            })?;
            node.admin_url = format!("http://{addr}");
            node_addrs.push((node.id.clone(), addr));
            listeners.push(listener);
        }
        let control_listener = net::bind(loopback).map_err(|source| SimError::Bind {
            what: "the control server".into(),
            source,
        })?;
        let control_addr = control_listener
            .local_addr()
            .map_err(|source| SimError::Bind {
                what: "the control server".into(),
                source,
            })?;
        let shared = Shared {
            model: Arc::new(Mutex::new(model)),
            speed: cfg.speed,
            lease: Arc::default(),
            lease_api: cfg.lease_api,
            warped: Arc::default(),
        };
        let mut supervisor =
            server::Supervisor::new(shared.clone(), node_addrs.iter().map(|(_, a)| *a).collect());
        for (i, listener) in listeners.into_iter().enumerate() {
            // A node crashed from the start keeps its port number but does not listen on it.
            let running = shared.lock().nodes[i].is_running();
            if running {
                supervisor.serve_initial(i, listener);
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let tick_task = tokio::spawn(run_ticks(shared.clone(), supervisor, stop_rx));
        let (control_kill, control_kill_rx) = watch::channel(false);
        let control_listener = net::KillableListener {
            inner: control_listener,
            kill: control_kill_rx,
        };
        let control_task = tokio::spawn(control::serve(shared.clone(), control_listener));
        Ok(Simulator {
            shared,
            control_addr,
            node_addrs,
            stop,
            tick_task: Some(tick_task),
            control_task: Some(control_task),
            control_kill,
        })
    }

    pub fn inventory_toml(&self) -> String {
        let mut s = String::from(
            "# Inventory of a simulated Neumann cluster written by neumann-script; host operations go to the simulator.\n",
        );
        let _ = write!(s, "[sim]\ncontrol = \"{}\"\n", self.control_addr);
        for (id, addr) in &self.node_addrs {
            let _ = write!(
                s,
                "\n[[nodes]]\nid = \"{id}\"\nadmin_url = \"http://{addr}\"\n"
            );
        }
        s
    }

    pub fn control_addr(&self) -> SocketAddr {
        self.control_addr
    }

    pub fn nodes(&self) -> Vec<(String, String)> {
        self.node_addrs
            .iter()
            .map(|(id, addr)| (id.clone(), format!("http://{addr}")))
            .collect()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats()
    }

    /// Simulated seconds since start (also `GET /sim/clock`): what script waits under `--sim` can
    /// run on.
    pub fn clock(&self) -> f64 {
        self.shared.lock().now
    }

    pub fn events(&self) -> Vec<SimEvent> {
        self.shared.lock().events(None)
    }

    pub fn inject(&self, node: &str, kind: FaultKind) -> Result<(), SimError> {
        let mut m = self.shared.lock();
        let i = m
            .index_of(node)
            .ok_or_else(|| SimError::UnknownNode(node.to_string()))?;
        m.inject(i, kind);
        Ok(())
    }

    /// Stops the tick task, every node server and the control server; their ports are free after.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.tick_task.take() {
            let _ = task.await;
        }
        let _ = self.control_kill.send(true);
        if let Some(task) = self.control_task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Dropped without `shutdown`: stop everything anyway, without waiting for the ports to close.
impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.control_kill.send(true);
        if let Some(task) = self.control_task.take() {
            task.abort();
        }
    }
}

/// Advances simulated time from the real clock and keeps listeners matching process states.
async fn run_ticks(
    shared: Shared,
    mut supervisor: server::Supervisor,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        let target = started.elapsed().as_secs_f64() * shared.speed + shared.warped_secs();
        let wanted = {
            let mut m = shared.lock();
            m.tick_towards(target);
            supervisor.wanted(&m)
        };
        supervisor.reconcile(wanted).await;
    }
    supervisor.shutdown().await;
}

#[cfg(test)]
mod tests;
