//! Each simulated node's admin HTTP server, and the supervisor that runs one exactly while the
//! node's process is up: a stopped or crashed node refuses connections on its port, a restarted
//! one listens on the same port again. Handlers lock the world briefly and never across an await.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::http::{json_error, method_not_allowed, not_found};
use super::lease;
use super::metrics;
use super::net::{self, KillableListener};
use super::shared::Shared;
use super::world::World;

/// Share of a flaky node's admin requests that fail.
const FLAKY_RATE: f64 = 0.3;
/// Simulated seconds a test transaction can take: its client deadline, with room.
const PROBE_PATIENCE: f64 = 3.0;

/// One node process's view of the world: which node, and which incarnation of its process.
#[derive(Clone)]
struct NodeCtx {
    shared: Shared,
    idx: usize,
    generation: u64,
}

impl NodeCtx {
    fn with<T>(&self, f: impl FnOnce(&mut World, usize) -> T) -> T {
        let mut m = self.shared.lock();
        f(&mut m, self.idx)
    }
}

fn router(ctx: NodeCtx) -> Router {
    let lease_api = ctx.shared.lease_api;
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/admin/cluster/members", get(members))
        .route("/admin/raft/status", get(raft_status))
        .route("/admin/raft/transfer-leadership", post(transfer))
        .route("/admin/drain", post(drain))
        .route("/admin/undrain", post(undrain))
        .route("/admin/cluster/pause", post(pause))
        .route("/admin/cluster/resume", post(resume))
        .route("/admin/backup/status", get(backup_status))
        .route("/admin/snapshot", post(snapshot))
        .route("/admin/test-transaction", post(test_transaction));
    let router = if lease_api {
        router
            .route(
                "/admin/lease",
                get(|State(c): State<NodeCtx>| async move { lease::get(&c.shared) })
                    .post(|State(c): State<NodeCtx>, b: Bytes| async move {
                        lease::post(&c.shared, &b)
                    })
                    .delete(|State(c): State<NodeCtx>, b: Bytes| async move {
                        lease::delete(&c.shared, &b)
                    }),
            )
            .route(
                "/admin/lease/request",
                post(|State(c): State<NodeCtx>, b: Bytes| async move {
                    lease::request(&c.shared, &b)
                }),
            )
    } else {
        router
    };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(ctx.clone(), gate))
        .with_state(ctx)
}

/// Process-level behaviour before any handler: a hung process never answers, a flaky one fails
/// some requests, and a request that raced the process going down gets no answer from it.
async fn gate(State(ctx): State<NodeCtx>, req: Request, next: Next) -> Response {
    loop {
        let (alive, hung) = ctx.with(|m, i| {
            let n = &m.nodes[i];
            (
                n.is_running() && n.host.generation == ctx.generation,
                n.faults.hang,
            )
        });
        if !alive {
            return json_error(503, "node process is not running");
        }
        if !hung {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flaky = ctx.with(|m, i| m.nodes[i].faults.flaky && m.chance(FLAKY_RATE));
    if flaky {
        return json_error(503, "flaky: injected");
    }
    next.run(req).await
}

async fn health(State(ctx): State<NodeCtx>) -> Response {
    Json(ctx.with(|m, i| m.health(i))).into_response()
}

async fn metrics_text(State(ctx): State<NodeCtx>) -> Response {
    let snapshot = ctx.with(|m, i| m.metrics(i));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&snapshot),
    )
        .into_response()
}

async fn members(State(ctx): State<NodeCtx>) -> Response {
    Json(ctx.with(|m, _| m.members())).into_response()
}

async fn raft_status(State(ctx): State<NodeCtx>) -> Response {
    Json(ctx.with(|m, i| m.raft_status(i))).into_response()
}

#[derive(Deserialize)]
struct TransferBody {
    to: String,
}

async fn transfer(State(ctx): State<NodeCtx>, body: Bytes) -> Response {
    let body: TransferBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return json_error(
                400,
                &format!("bad request body, expected {{\"to\": \"node2\"}}: {e}"),
            );
        }
    };
    match ctx.with(|m, i| m.request_transfer(i, &body.to)) {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => e.into_response(),
    }
}

fn set_draining(ctx: &NodeCtx, draining: bool) -> Response {
    let id = ctx.with(|m, i| {
        m.set_draining(i, draining);
        m.nodes[i].id.clone()
    });
    Json(json!({ "node_id": id, "draining": draining })).into_response()
}

async fn drain(State(ctx): State<NodeCtx>) -> Response {
    set_draining(&ctx, true)
}

async fn undrain(State(ctx): State<NodeCtx>) -> Response {
    set_draining(&ctx, false)
}

fn set_paused(ctx: &NodeCtx, paused: bool) -> Response {
    match ctx.with(|m, i| m.set_paused(i, paused)) {
        Ok(()) => Json(json!({ "paused": paused })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn pause(State(ctx): State<NodeCtx>) -> Response {
    set_paused(&ctx, true)
}

async fn resume(State(ctx): State<NodeCtx>) -> Response {
    set_paused(&ctx, false)
}

async fn backup_status(State(ctx): State<NodeCtx>) -> Response {
    Json(ctx.with(|m, _| m.backup_status())).into_response()
}

async fn snapshot(State(ctx): State<NodeCtx>) -> Response {
    match ctx.with(|m, i| m.take_snapshot(i)) {
        Ok(s) => Json(s).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Answers once the probe write is committed or has failed: it waits as a client's write does.
async fn test_transaction(State(ctx): State<NodeCtx>) -> Response {
    let id = ctx.with(|m, i| m.test_transaction(i));
    let settled = ctx
        .shared
        .wait_for(PROBE_PATIENCE, |m| m.test_transaction_settled(id))
        .await;
    match ctx.with(|m, _| m.test_transaction_answer(id)) {
        Some(Ok(r)) if settled => Json(r).into_response(),
        Some(Err(e)) if settled => e.into_response(),
        _ => json_error(503, "the simulator's clock has stopped"),
    }
}

struct NodeServer {
    generation: u64,
    kill: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A supervisor dropped without `shutdown` (runtime going away) must not leave ports open.
impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.kill.send(true);
        self.task.abort();
    }
}

/// Owns the node servers; only the tick task drives it.
pub struct Supervisor {
    shared: Shared,
    addrs: Vec<SocketAddr>,
    servers: Vec<Option<NodeServer>>,
}

impl Supervisor {
    pub fn new(shared: Shared, addrs: Vec<SocketAddr>) -> Self {
        let servers = addrs.iter().map(|_| None).collect();
        Supervisor {
            shared,
            addrs,
            servers,
        }
    }

    fn spawn(&self, idx: usize, generation: u64, listener: TcpListener) -> NodeServer {
        let (kill, kill_rx) = watch::channel(false);
        let ctx = NodeCtx {
            shared: self.shared.clone(),
            idx,
            generation,
        };
        let app = router(ctx);
        let listener = KillableListener {
            inner: listener,
            kill: kill_rx,
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        NodeServer {
            generation,
            kill,
            task,
        }
    }

    /// Serves a listener bound before start, so every port answers as soon as `start` returns.
    pub fn serve_initial(&mut self, idx: usize, listener: TcpListener) {
        let generation = {
            let mut m = self.shared.lock();
            m.nodes[idx].host.listening = true;
            m.nodes[idx].host.generation
        };
        self.servers[idx] = Some(self.spawn(idx, generation, listener));
    }

    /// For each node, the process incarnation that should be listening, if any. A hung process
    /// still listens: it accepts and never answers.
    pub fn wanted(&self, m: &World) -> Vec<Option<u64>> {
        m.nodes
            .iter()
            .map(|n| n.is_running().then_some(n.host.generation))
            .collect()
    }

    async fn kill(mut server: NodeServer) {
        let _ = server.kill.send(true);
        server.task.abort();
        // Awaiting the aborted task guarantees the listener is closed before we say so.
        let _ = (&mut server.task).await;
    }

    pub async fn reconcile(&mut self, wanted: Vec<Option<u64>>) {
        let mut changed = false;
        let mut failures = Vec::new();
        for (idx, want) in wanted.into_iter().enumerate() {
            let current = self.servers[idx].as_ref().map(|s| s.generation);
            if current == want {
                continue;
            }
            changed = true;
            if let Some(server) = self.servers[idx].take() {
                Self::kill(server).await;
            }
            if let Some(generation) = want {
                match net::bind(self.addrs[idx]) {
                    Ok(listener) => self.servers[idx] = Some(self.spawn(idx, generation, listener)),
                    Err(e) => failures.push((idx, e.to_string())),
                }
            }
        }
        if changed {
            let mut m = self.shared.lock();
            for (idx, s) in self.servers.iter().enumerate() {
                m.nodes[idx].host.listening = s.is_some();
            }
            for (idx, e) in failures {
                let addr = self.addrs[idx];
                m.note_bind_failure(idx, &format!("cannot listen on {addr}: {e}; retrying"));
            }
        }
    }

    pub async fn shutdown(&mut self) {
        for slot in &mut self.servers {
            if let Some(server) = slot.take() {
                Self::kill(server).await;
            }
        }
    }
}
