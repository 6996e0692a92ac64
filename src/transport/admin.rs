//! The admin HTTP client (docs/ADMIN_API.md): every Neumann node serves its admin API on :9090; the simulator
//! serves the same paths on loopback.
//!
//! Every call has a connect and a request timeout, so a hung node cannot hang the tool. Every error names
//! the node, the operation, the method and URL, and the cause. Cluster-wide reads go to whichever node
//! answers (the last one that did first), the way the runbook's `neumann cluster ...` commands do.
//!
//! No call is trusted to a node before its identity is: the `node_id` its own `/health` reports must be
//! the id the inventory gives its `admin_url`, or the call fails with `AdminError::WrongNode` (an
//! inventory error, exit 2) before anything else is sent there. Every `/health` answer is checked as it
//! arrives, at no cost; any other call to a node not yet seen answering asks its `/health` first, once
//! per node and process (docs/ADMIN_API.md#identity).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::http::{snippet, Cause, InFlight};
use crate::inventory::{Inventory, NodeSpec};
use crate::model::{Member, NodeHealth, RaftStatus};
use crate::secret::Secret;

/// A failed admin call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdminError {
    #[error("{node}: {op} failed: {method} {url}: {cause}")]
    Node {
        node: String,
        op: String,
        method: &'static str,
        url: String,
        cause: Cause,
    },
    /// The node at a node's `admin_url` reports another id: the inventory points the name at the wrong
    /// node, and whatever was sent under that name would reach another one.
    #[error("inventory `{}`: {node}'s admin_url {url} answers as {answered_as} (its /health reports node_id \"{answered_as}\"): the inventory's admin_urls are swapped or out of date. Nothing but /health was sent there; correct the inventory", inventory.display())]
    WrongNode {
        inventory: PathBuf,
        node: String,
        url: String,
        answered_as: String,
    },
    #[error("cluster: {op} failed: no node answered in {} ({})", crate::output::human_duration(*took), tried.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    NoNodeAnswered {
        op: String,
        tried: Vec<AdminError>,
        /// The real time spent asking them all, one after another.
        took: Duration,
    },
}

impl AdminError {
    /// True when another node might answer instead: the node could not be reached, timed out, or
    /// answered 5xx (overloaded, flaky, shutting down). A 4xx is a real answer and is not retried elsewhere.
    pub fn try_elsewhere(&self) -> bool {
        match self {
            AdminError::Node { cause, .. } => match cause {
                Cause::Refused | Cause::Unreachable(_) | Cause::Timeout(_) => true,
                Cause::Status { code, .. } => *code >= 500,
                Cause::Api { .. } | Cause::BadAnswer(_) => false,
            },
            AdminError::WrongNode { .. } => false,
            AdminError::NoNodeAnswered { .. } => true,
        }
    }

    /// True for failures worth retrying on the same node: a 5xx answer or a connection that broke
    /// mid-call (not a refused connection, not a timeout).
    pub fn transient(&self) -> bool {
        match self {
            AdminError::Node { cause, .. } => match cause {
                Cause::Status { code, .. } => *code >= 500,
                Cause::Unreachable(_) => true,
                Cause::Refused | Cause::Timeout(_) | Cause::Api { .. } | Cause::BadAnswer(_) => {
                    false
                }
            },
            AdminError::WrongNode { .. } | AdminError::NoNodeAnswered { .. } => false,
        }
    }

    /// True when the node's address refused the connection: nothing listens there.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            AdminError::Node {
                cause: Cause::Refused,
                ..
            }
        )
    }

    /// True when the node could not be reached at all (as opposed to answering with an error).
    pub fn unreachable(&self) -> bool {
        matches!(self, AdminError::Node { cause, .. } if cause.no_answer())
    }

    /// True when the node at an inventory entry's `admin_url` is another node: an inventory error.
    pub fn wrong_node(&self) -> bool {
        matches!(self, AdminError::WrongNode { .. })
    }

    /// Why the call failed, without the node, operation and URL.
    pub fn cause(&self) -> String {
        match self {
            AdminError::Node { cause, .. } => cause.to_string(),
            other => other.to_string(),
        }
    }

    /// The HTTP status the node answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AdminError::Node {
                cause: Cause::Status { code, .. },
                ..
            } => Some(*code),
            _ => None,
        }
    }
}

/// The `node_id` of a `/health` answer.
fn reported_id(text: &str) -> Option<String> {
    let v = serde_json::from_str::<Value>(text).ok()?;
    v.get("node_id")?.as_str().map(str::to_string)
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// The cluster's run lease as `GET /admin/lease` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeaseRecord {
    pub run_id: String,
    /// `user@host pid N`.
    pub holder: String,
    pub script: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Unix seconds.
    #[serde(default)]
    pub acquired_at: f64,
    pub ttl_secs: f64,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub request: Option<Value>,
    /// `{by, reason, since, at}` while the run is paused (docs/ADMIN_API.md).
    #[serde(default)]
    pub paused: Option<Value>,
    /// Seconds left before it expires unless renewed, when the cluster says.
    #[serde(default)]
    pub expires_in_secs: Option<f64>,
    /// The steps the run has begun, as its last renewal sent them (`lease::Course`); kept as sent, so
    /// that a cluster holding something else cannot make the lease unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Value>,
}

#[derive(serde::Deserialize)]
struct LeaseAnswer {
    lease: Option<LeaseRecord>,
}

/// How many nodes one fan-out asks at once: enough for hundreds of nodes in a few round trips, few enough
/// not to exhaust file descriptors or flood a cluster's admin ports.
pub const FAN_OUT: usize = 64;

/// Attempts per admin call while failures are transient (5xx, broken connections).
const ATTEMPTS: usize = 8;
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Health probes in a survey wait at most this long, so one hung node costs a survey seconds, not the
/// full request timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Each node's time to answer a lease call: a lease is a small record, and a node that cannot answer
/// it promptly is passed over for the next.
const LEASE_TIMEOUT: Duration = PROBE_TIMEOUT;

/// The path every node answers with its own id.
const HEALTH: &str = "/health";

/// The client for every node of one inventory.
pub struct AdminClient {
    http: reqwest::Client,
    nodes: Vec<NodeSpec>,
    /// The inventory's file, for identity errors.
    inventory: PathBuf,
    /// The `node_id` each node's `/health` reported first, per inventory entry: set once it answered.
    identity: Vec<tokio::sync::OnceCell<String>>,
    token: Option<Secret>,
    request_timeout: Duration,
    /// The node that answered a cluster-wide read last: asked first next time.
    preferred: AtomicUsize,
    /// Calls on the wire now (and the cluster's host commands), for the operator's live line.
    pub in_flight: InFlight,
}

impl AdminClient {
    pub fn new(inv: &Inventory) -> Result<AdminClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(inv.connect_timeout)
            .timeout(inv.request_timeout)
            // A proxy from the environment must never sit between the tool and the cluster's admin ports.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("neumann-script/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(AdminClient {
            http,
            nodes: inv.nodes.clone(),
            inventory: inv.source.clone(),
            identity: inv.nodes.iter().map(|_| Default::default()).collect(),
            token: inv.token.clone(),
            request_timeout: inv.request_timeout,
            preferred: AtomicUsize::new(0),
            in_flight: InFlight::default(),
        })
    }

    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// One admin call to a node whose identity is checked first (a `/health` answer is checked itself).
    async fn send(
        &self,
        idx: usize,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<String, AdminError> {
        let _on_the_wire = self.in_flight.start(&self.nodes[idx].id, op);
        if path == HEALTH {
            let text = self
                .send_retrying(idx, op, method, path, body, timeout)
                .await?;
            let id = reported_id(&text).ok_or_else(|| self.no_id(idx, op, &text))?;
            let _ = self.identity[idx].set(id.clone());
            return match self.wrong_node(idx, &id) {
                Some(e) => Err(e),
                None => Ok(text),
            };
        }
        self.verify(idx, op, timeout).await?;
        self.send_retrying(idx, op, method, path, body, timeout)
            .await
    }

    /// Checks, once per node, that the node at its `admin_url` is the node the inventory names, by its
    /// own `/health`. A node that does not answer is not verified (and the call fails as the node could
    /// not be reached); it is verified when it first answers.
    async fn verify(
        &self,
        idx: usize,
        op: &str,
        timeout: Option<Duration>,
    ) -> Result<(), AdminError> {
        let id = self.identity[idx]
            .get_or_try_init(|| async {
                let text = self
                    .send_retrying(idx, op, Method::Get, HEALTH, None, timeout)
                    .await?;
                reported_id(&text).ok_or_else(|| self.no_id(idx, op, &text))
            })
            .await?;
        match self.wrong_node(idx, id) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A `/health` answer without the `node_id` that would say which node gave it.
    fn no_id(&self, idx: usize, op: &str, text: &str) -> AdminError {
        let node = &self.nodes[idx];
        AdminError::Node {
            node: node.id.clone(),
            op: op.to_string(),
            method: "GET",
            url: format!("{}{HEALTH}", node.admin_url),
            cause: Cause::BadAnswer(format!(
                "no node_id in {}: without it this tool cannot tell which node answers",
                snippet(text, "an empty body")
            )),
        }
    }

    /// The error when the node at inventory entry `idx` reported itself as `reported`, another node.
    fn wrong_node(&self, idx: usize, reported: &str) -> Option<AdminError> {
        let node = &self.nodes[idx];
        (node.id != reported).then(|| AdminError::WrongNode {
            inventory: self.inventory.clone(),
            node: node.id.clone(),
            url: node.admin_url.clone(),
            answered_as: reported.to_string(),
        })
    }

    /// One admin call, retried with backoff while the node answers 5xx or drops the connection: every
    /// admin call this tool makes is idempotent (reads, drain, undrain, pause, resume, a transfer to a
    /// named node), so a retry cannot do anything twice. Refused connections and timeouts are not retried:
    /// the first means the process is not there, the second has already waited long enough. No identity
    /// check: `send` makes it.
    async fn send_retrying(
        &self,
        idx: usize,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<String, AdminError> {
        let mut backoff = RETRY_BACKOFF;
        for _ in 1..ATTEMPTS {
            match self.send_once(idx, op, method, path, body, timeout).await {
                Err(e) if e.transient() => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(800));
                }
                other => return other,
            }
        }
        self.send_once(idx, op, method, path, body, timeout).await
    }

    async fn send_once(
        &self,
        idx: usize,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<String, AdminError> {
        let node = &self.nodes[idx];
        let url = format!("{}{}", node.admin_url, path);
        let timeout = timeout.unwrap_or(self.request_timeout);
        let fail = |cause: Cause| AdminError::Node {
            node: node.id.clone(),
            op: op.to_string(),
            method: method.name(),
            url: url.clone(),
            cause,
        };
        let mut req = match method {
            Method::Get => self.http.get(&url),
            Method::Post => self
                .http
                .post(&url)
                .json(body.unwrap_or(&Value::Object(Default::default()))),
            Method::Delete => self
                .http
                .delete(&url)
                .json(body.unwrap_or(&Value::Object(Default::default()))),
        }
        .timeout(timeout);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose());
        }
        let resp = req.send().await.map_err(|e| fail(Cause::of(&e, timeout)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| fail(Cause::of(&e, timeout)))?;
        if status.is_success() {
            Ok(text)
        } else {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| snippet(&text, status.canonical_reason().unwrap_or("error")));
            Err(fail(Cause::Status {
                code: status.as_u16(),
                message,
            }))
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        idx: usize,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<T, AdminError> {
        let text = self.send(idx, op, method, path, body, timeout).await?;
        serde_json::from_str(&text).map_err(|e| {
            let node = &self.nodes[idx];
            AdminError::Node {
                node: node.id.clone(),
                op: op.to_string(),
                method: method.name(),
                url: format!("{}{}", node.admin_url, path),
                cause: Cause::BadAnswer(format!("{e} in {}", snippet(&text, "an empty body"))),
            }
        })
    }

    /// Asks the nodes in turn, the last one that answered first, until one answers.
    async fn any<T: DeserializeOwned>(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(usize, T), AdminError> {
        self.any_within(op, method, path, body, None).await
    }

    /// `any` with each node's own timeout.
    async fn any_within<T: DeserializeOwned>(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(usize, T), AdminError> {
        let n = self.nodes.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut tried = Vec::new();
        let started = std::time::Instant::now();
        for k in 0..n {
            let idx = (first + k) % n;
            match self.json(idx, op, method, path, body, timeout).await {
                Ok(v) => {
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok((idx, v));
                }
                Err(e) if e.try_elsewhere() => tried.push(e),
                Err(e) => return Err(e),
            }
        }
        Err(AdminError::NoNodeAnswered {
            op: op.to_string(),
            tried,
            took: started.elapsed(),
        })
    }

    /// Points the next cluster-wide read at this node (the leader, usually).
    pub fn prefer(&self, id: &str) {
        if let Some(i) = self.index(id) {
            self.preferred.store(i, Ordering::Relaxed);
        }
    }

    fn unknown(&self, id: &str, op: &str) -> AdminError {
        AdminError::Node {
            node: id.to_string(),
            op: op.to_string(),
            method: "GET",
            url: String::new(),
            cause: Cause::Unreachable("the inventory has no such node".into()),
        }
    }

    async fn on<T: DeserializeOwned>(
        &self,
        id: &str,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<T, AdminError> {
        // Callers validate ids against the inventory first; this is the backstop, not the message users see.
        let i = self.index(id).ok_or_else(|| self.unknown(id, op))?;
        self.json(i, op, method, path, body, timeout).await
    }

    /// `GET /health` of one node.
    pub async fn node_health(&self, id: &str) -> Result<NodeHealth, AdminError> {
        self.on(id, "health", Method::Get, HEALTH, None, None).await
    }

    /// `GET /health` of one node with a short timeout, for polling loops.
    pub async fn node_health_within(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<NodeHealth, AdminError> {
        self.on(id, "health", Method::Get, HEALTH, None, Some(timeout))
            .await
    }

    /// `GET /health` of every node at once, at most `FAN_OUT` in flight, in inventory order.
    pub async fn health_all(&self) -> Vec<Result<NodeHealth, AdminError>> {
        use futures_util::StreamExt;
        futures_util::stream::iter(0..self.nodes.len())
            .map(|i| {
                let t = Some(PROBE_TIMEOUT.min(self.request_timeout));
                self.json::<NodeHealth>(i, "health", Method::Get, HEALTH, None, t)
            })
            .buffered(FAN_OUT)
            .collect()
            .await
    }

    /// `GET /admin/cluster/members` from any node.
    pub async fn members(&self) -> Result<Vec<Member>, AdminError> {
        Ok(self
            .any("members", Method::Get, "/admin/cluster/members", None)
            .await?
            .1)
    }

    /// `GET /admin/cluster/members` from one node, within `timeout`: a survey asks a node that has just
    /// answered its health probe, so one hung node cannot hold the survey up.
    pub async fn members_on(&self, id: &str, timeout: Duration) -> Result<Vec<Member>, AdminError> {
        self.on(
            id,
            "members",
            Method::Get,
            "/admin/cluster/members",
            None,
            Some(timeout),
        )
        .await
    }

    /// `GET /admin/raft/status` from any node.
    pub async fn raft_status(&self) -> Result<RaftStatus, AdminError> {
        Ok(self
            .any("raft status", Method::Get, "/admin/raft/status", None)
            .await?
            .1)
    }

    /// `POST /admin/raft/transfer-leadership` on the leader.
    pub async fn transfer_leadership(&self, leader: &str, to: &str) -> Result<Value, AdminError> {
        let body = serde_json::json!({ "to": to });
        self.on(
            leader,
            "transfer leadership",
            Method::Post,
            "/admin/raft/transfer-leadership",
            Some(&body),
            None,
        )
        .await
    }

    /// `POST /admin/drain` on the node itself.
    pub async fn drain(&self, id: &str) -> Result<Value, AdminError> {
        self.on(id, "drain", Method::Post, "/admin/drain", None, None)
            .await
    }

    /// `POST /admin/undrain` on the node itself.
    pub async fn undrain(&self, id: &str) -> Result<Value, AdminError> {
        self.on(id, "undrain", Method::Post, "/admin/undrain", None, None)
            .await
    }

    /// `POST /admin/cluster/pause` or `resume` via any node.
    pub async fn set_paused(&self, paused: bool) -> Result<Value, AdminError> {
        let (op, path) = if paused {
            ("pause", "/admin/cluster/pause")
        } else {
            ("resume", "/admin/cluster/resume")
        };
        Ok(self.any(op, Method::Post, path, None).await?.1)
    }

    /// `GET /admin/backup/status` via any node.
    pub async fn backup_status(&self) -> Result<Value, AdminError> {
        Ok(self
            .any("backup status", Method::Get, "/admin/backup/status", None)
            .await?
            .1)
    }

    /// `POST /admin/snapshot` on the leader.
    pub async fn snapshot(&self, leader: &str) -> Result<Value, AdminError> {
        self.on(
            leader,
            "snapshot",
            Method::Post,
            "/admin/snapshot",
            None,
            Some(self.request_timeout * 6),
        )
        .await
    }

    /// `POST /admin/test-transaction` via any node (it forwards to the leader).
    pub async fn test_transaction(&self) -> Result<Value, AdminError> {
        Ok(self
            .any(
                "test transaction",
                Method::Post,
                "/admin/test-transaction",
                None,
            )
            .await?
            .1)
    }

    /// `GET /admin/lease` via any node: the run holding the cluster's lease, if any.
    pub async fn lease(&self) -> Result<Option<LeaseRecord>, AdminError> {
        let (_, a): (usize, LeaseAnswer) = self
            .any_within(
                "lease",
                Method::Get,
                "/admin/lease",
                None,
                Some(LEASE_TIMEOUT),
            )
            .await?;
        Ok(a.lease)
    }

    /// `POST /admin/lease` via any node: acquires or renews; 409 while another run holds it.
    pub async fn lease_acquire(&self, body: &Value) -> Result<Option<LeaseRecord>, AdminError> {
        let (_, a): (usize, LeaseAnswer) = self
            .any_within(
                "lease",
                Method::Post,
                "/admin/lease",
                Some(body),
                Some(LEASE_TIMEOUT),
            )
            .await?;
        Ok(a.lease)
    }

    /// `DELETE /admin/lease {"run_id", "by"}` via any node.
    pub async fn lease_release(&self, run_id: &str, by: &str) -> Result<(), AdminError> {
        let body = serde_json::json!({ "run_id": run_id, "by": by });
        self.any_within::<Value>(
            "release lease",
            Method::Delete,
            "/admin/lease",
            Some(&body),
            Some(LEASE_TIMEOUT),
        )
        .await
        .map(|_| ())
    }

    /// `POST /admin/lease/request {"action", "by", "reason"}`: asks the lease's holder to pause, resume
    /// or abort at its next safe point; 404 when no run holds the lease.
    pub async fn lease_request(
        &self,
        action: &str,
        by: &str,
        reason: &str,
    ) -> Result<Value, AdminError> {
        let body = serde_json::json!({ "action": action, "by": by, "reason": reason });
        Ok(self
            .any(
                "lease request",
                Method::Post,
                "/admin/lease/request",
                Some(&body),
            )
            .await?
            .1)
    }

    /// `GET /metrics` of one node, as text.
    pub async fn metrics_text(&self, id: &str) -> Result<String, AdminError> {
        let i = self.index(id).ok_or_else(|| self.unknown(id, "scrape"))?;
        self.send(i, "scrape", Method::Get, "/metrics", None, None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_sentences() {
        let e = AdminError::Node {
            node: "node2".into(),
            op: "drain".into(),
            method: "POST",
            url: "http://127.0.0.1:1/admin/drain".into(),
            cause: Cause::Status {
                code: 409,
                message: "node is the leader".into(),
            },
        };
        assert_eq!(e.to_string(), "node2: drain failed: POST http://127.0.0.1:1/admin/drain: HTTP 409: node is the leader");
        assert!(!e.try_elsewhere());
        let t = AdminError::Node {
            node: "node3".into(),
            op: "health".into(),
            method: "GET",
            url: "u".into(),
            cause: Cause::Timeout(Duration::from_secs(10)),
        };
        assert!(t.try_elsewhere() && t.unreachable());
        assert_eq!(
            t.to_string(),
            "node3: health failed: GET u: no answer within 10 s"
        );
    }

    #[test]
    fn snippets_are_bounded() {
        assert_eq!(snippet("  ", "empty"), "empty");
        assert_eq!(snippet(&"x".repeat(500), "").chars().count(), 201);
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused_and_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let inv = Inventory::parse(
            &format!("[[nodes]]\nid = \"node1\"\nadmin_url = \"http://127.0.0.1:{port}\"\n"),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let client = AdminClient::new(&inv).unwrap();
        let e = client.node_health("node1").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("node1: health failed: GET http://127.0.0.1:{port}/health: connection refused")
        );
        let all = client.members().await.unwrap_err().to_string();
        assert!(
            all.starts_with("cluster: members failed: no node answered in ")
                && all.contains(" ms (node1: members failed"),
            "{all}"
        );
    }

    #[tokio::test]
    async fn a_node_that_never_answers_times_out() {
        // Accepts connections and never replies, like a hung process.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let inv = Inventory::parse(
            &format!("[cluster]\nrequest_timeout_secs = 0.3\n[[nodes]]\nid = \"node1\"\nadmin_url = \"http://127.0.0.1:{port}\"\n"),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let client = AdminClient::new(&inv).unwrap();
        let e = client.node_health("node1").await.unwrap_err();
        assert!(
            e.to_string().ends_with("/health: no answer within 300 ms"),
            "{e}"
        );
        hold.abort();
    }

    /// A node on loopback that reports `id` in its `/health`, answers `{}` to anything else, and
    /// records every path asked of it.
    async fn node_reporting(id: &str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = paths.clone();
        let health = if id.is_empty() {
            serde_json::json!({ "status": "healthy" })
        } else {
            serde_json::json!({ "status": "healthy", "node_id": id })
        };
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let (seen, health) = (seen.clone(), health.clone());
            async move {
                seen.lock().unwrap().push(uri.path().to_string());
                axum::Json(if uri.path() == "/health" {
                    health
                } else {
                    serde_json::json!({})
                })
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, paths)
    }

    fn client_for(url: &str) -> AdminClient {
        let inv = Inventory::parse(
            &format!("[[nodes]]\nid = \"node1\"\nadmin_url = \"{url}\"\n"),
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        AdminClient::new(&inv).unwrap()
    }

    #[tokio::test]
    async fn a_node_answering_as_another_gets_nothing_but_its_health_asked() {
        let (url, paths) = node_reporting("node2").await;
        let client = client_for(&url);
        for _ in 0..2 {
            let e = client.drain("node1").await.unwrap_err();
            assert!(e.wrong_node() && !e.try_elsewhere(), "{e}");
            assert_eq!(
                e.to_string(),
                format!("inventory `c.toml`: node1's admin_url {url} answers as node2 (its /health reports node_id \"node2\"): the inventory's admin_urls are swapped or out of date. Nothing but /health was sent there; correct the inventory")
            );
        }
        // The verdict is kept: the second drain did not ask again, and no drain was sent.
        assert_eq!(*paths.lock().unwrap(), vec!["/health"]);
        // A cluster-wide call does not pass the node over for another: it fails the same way.
        assert!(client.set_paused(true).await.unwrap_err().wrong_node());
        // A health probe is judged by its own answer.
        assert!(client.node_health("node1").await.unwrap_err().wrong_node());
        assert_eq!(*paths.lock().unwrap(), vec!["/health", "/health"]);
    }

    #[tokio::test]
    async fn a_node_is_verified_once_per_process_and_a_health_answer_verifies_it() {
        let (url, paths) = node_reporting("node1").await;
        let client = client_for(&url);
        client.drain("node1").await.unwrap();
        client.undrain("node1").await.unwrap();
        client.set_paused(false).await.unwrap();
        assert_eq!(
            *paths.lock().unwrap(),
            vec![
                "/health",
                "/admin/drain",
                "/admin/undrain",
                "/admin/cluster/resume"
            ]
        );

        // A health answer seen first costs no extra request.
        let (url, paths) = node_reporting("node1").await;
        let client = client_for(&url);
        let _ = client.node_health("node1").await;
        client.drain("node1").await.unwrap();
        assert_eq!(*paths.lock().unwrap(), vec!["/health", "/admin/drain"]);
    }

    #[tokio::test]
    async fn a_node_that_does_not_say_who_it_is_gets_no_call() {
        let (url, paths) = node_reporting("").await;
        let client = client_for(&url);
        let e = client.drain("node1").await.unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "node1: drain failed: GET {url}/health: unexpected answer: no node_id in {{\"status\":\"healthy\"}}: without it this tool cannot tell which node answers"
            )),
            "{e}"
        );
        assert_eq!(*paths.lock().unwrap(), vec!["/health"]);
    }

    #[tokio::test]
    async fn a_node_not_answering_is_verified_when_it_first_answers() {
        // Bound, so the port is known; closed until the node starts on it.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let client = client_for(&format!("http://{addr}"));
        let e = client.drain("node1").await.unwrap_err();
        assert!(e.unreachable() && e.try_elsewhere(), "{e}");
        assert_eq!(
            e.to_string(),
            format!("node1: drain failed: GET http://{addr}/health: connection refused")
        );
        // Now something answers there, and it is not node1.
        let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = paths.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(uri.path().to_string());
                axum::Json(serde_json::json!({ "node_id": "node3" }))
            }
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert!(client.drain("node1").await.unwrap_err().wrong_node());
        assert_eq!(*paths.lock().unwrap(), vec!["/health"]);
    }
}
