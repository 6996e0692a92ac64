//! The simulated Neumann ("tensor_chain") cluster: N nodes on loopback ports, each serving the
//! admin API, plus a control server for tests and demos, all in this process.
//!
//! `world` holds every rule and all state, behind one `Arc<Mutex<World>>` that the servers share with
//! the run lease (`shared`); a tick task advances simulated time and keeps each node's listener in
//! step with its process (`server`); `control` serves `/sim/...`. Nothing here touches the host:
//! stop/start/install act on the world only.
//!
//! The files import one way: `config.rs` and `record.rs` (what a simulator is given and what it
//! records) and `log.rs` are leaves; `world/` imports only those; `shared.rs`, `http.rs`, `lease/`,
//! `metrics.rs`, `server.rs` and `control.rs` build on it; this file starts them all and imports what
//! it re-exports. `tests/layers.rs` checks that no file imports one that imports it back.

mod config;
mod control;
mod http;
mod lease;
mod log;
mod metrics;
mod net;
mod record;
mod server;
mod shared;
mod world;

pub use self::config::{FaultKind, NodeShape, Shape, SimConfig, SimError};
pub use self::record::{SimEvent, SimStats};
pub use self::world::host::INSTALL_SECS;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::shared::Shared;
use self::world::World;

/// How often, in real time, the world advances and listeners are reconciled.
const TICK: Duration = Duration::from_millis(10);

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
        let mut world = World::new(&cfg, start_unix)?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listeners = Vec::new();
        let mut node_addrs = Vec::new();
        for node in &mut world.nodes {
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
            world: Arc::new(Mutex::new(world)),
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

    /// The seed of this run's randomness, given or drawn: `SimConfig::seed` with it replays the run.
    pub fn seed(&self) -> u64 {
        self.shared.lock().seed
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
