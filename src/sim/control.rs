//! The simulator's control server (`/sim/...`): stats, the event log, fault injection, and the
//! host-side commands (stop/start/restart/install/stage/activate, and a few read-only ones through exec) a runbook would
//! run over SSH. Each host call returns when the real command would, in simulated time.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use serde_json::{json, Value};

use super::config::{FaultKind, SimError};
use super::http::{json_error, method_not_allowed, not_found};
use super::net::KillableListener;
use super::shared::Shared;
use super::world::host::{CommandOutput, StartOutcome};
use super::world::node::{Node, ProcessState};
use super::world::{FaultSpec, RollbackLimit, When, World};

pub async fn serve(shared: Shared, listener: KillableListener) {
    let app = Router::new()
        .route("/sim/stats", get(stats))
        .route("/sim/events", get(events))
        .route("/sim/clock", get(clock))
        .route("/sim/sleep", post(sleep))
        .route("/sim/traffic", post(traffic))
        .route("/sim/fault", post(fault))
        .route("/sim/rollback_limit", post(rollback_limit))
        .route("/sim/host/{node}/{action}", post(host))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared);
    let _ = axum::serve(listener, app).await;
}

async fn stats(State(shared): State<Shared>) -> Response {
    Json(shared.lock().stats()).into_response()
}

/// `since` and `until` (simulated seconds, inclusive) from the query; other keys are ignored.
fn parse_window(query: Option<&str>) -> Result<(Option<f64>, Option<f64>), String> {
    let mut window = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "since" => &mut window.0,
            "until" => &mut window.1,
            _ => continue,
        };
        let t = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("bad `{key}`: {value:?} is not a number of seconds"))?;
        *slot = Some(t);
    }
    Ok(window)
}

async fn events(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    match parse_window(query.as_deref()) {
        Ok((since, until)) => {
            let mut events = shared.lock().events(since);
            if let Some(until) = until {
                events.retain(|e| e.t <= until);
            }
            Json(events).into_response()
        }
        Err(e) => json_error(400, &e),
    }
}

/// A refusal as (HTTP status, message); turned into a JSON response at the handler's edge.
type Refusal = (u16, String);

fn refuse((status, message): Refusal) -> Response {
    json_error(status, &message)
}

fn parse_object(body: &[u8], expected: &str) -> Result<serde_json::Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((400, format!("body must be a JSON object like {expected}"))),
        Err(e) => Err((400, format!("body is not JSON ({e}); expected {expected}"))),
    }
}

fn string_field<'a>(
    map: &'a serde_json::Map<String, Value>,
    key: &str,
    expected: &str,
) -> Result<&'a str, Refusal> {
    map.get(key).and_then(Value::as_str).ok_or_else(|| {
        (
            400,
            format!("missing string field `{key}`; expected {expected}"),
        )
    })
}

fn node_index(m: &World, id: &str) -> Result<usize, Refusal> {
    m.index_of(id)
        .ok_or_else(|| (404, format!("unknown node `{id}`")))
}

/// `{"node", "kind"}`, or `{"kind": "partition", "groups": [[ids], ...]}`; either with
/// `"when": {"event": KIND, "node": ID}` to fire inside the simulator when it logs that event, or
/// `"when": {"at": T}` to fire once simulated time reaches T seconds.
fn inject_fault(shared: &Shared, body: &[u8]) -> Result<(), Refusal> {
    const EXPECTED: &str = r#"{"node": "node2", "kind": "crash"} or {"kind": "partition", "groups": [["node1"], ["node2", "node3"]]}, optionally with "when": {"event": "stop", "node": "node2"} or "when": {"at": 12.5}"#;
    let map = parse_object(body, EXPECTED)?;
    let kind: FaultKind = string_field(&map, "kind", EXPECTED)?
        .parse()
        .map_err(|e: SimError| (400, e.to_string()))?;
    let mut m = shared.lock();
    let fault = match map.get("groups") {
        Some(groups) => {
            if kind != FaultKind::Partition {
                return Err((400, "`groups` goes with kind `partition`".to_string()));
            }
            let groups = groups.as_array().ok_or_else(|| {
                (
                    400,
                    format!("`groups` must be an array of arrays; expected {EXPECTED}"),
                )
            })?;
            let mut parsed = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for g in groups {
                let ids = g.as_array().ok_or_else(|| {
                    (
                        400,
                        format!("each group must be an array of node ids; expected {EXPECTED}"),
                    )
                })?;
                let mut group = Vec::new();
                for id in ids {
                    let id = id.as_str().ok_or_else(|| {
                        (400, format!("node ids are strings; expected {EXPECTED}"))
                    })?;
                    let i = node_index(&m, id)?;
                    if !seen.insert(i) {
                        return Err((400, format!("`{id}` is in two groups")));
                    }
                    group.push(i);
                }
                parsed.push(group);
            }
            FaultSpec::Groups(parsed)
        }
        None => {
            let node = string_field(&map, "node", EXPECTED)?;
            FaultSpec::Node(node_index(&m, node)?, kind)
        }
    };
    match map.get("when") {
        None => m.apply_fault(&fault),
        Some(Value::Object(when)) if when.contains_key("at") => {
            let at = when
                .get("at")
                .and_then(Value::as_f64)
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| {
                    (
                        400,
                        format!("`at` is simulated seconds since start, a number >= 0; expected {EXPECTED}"),
                    )
                })?;
            m.arm_when(When::At(at), fault);
        }
        Some(Value::Object(when)) => {
            let event = string_field(when, "event", EXPECTED)?;
            let on = node_index(&m, string_field(when, "node", EXPECTED)?)?;
            m.arm(event, on, fault);
        }
        Some(_) => {
            return Err((
                400,
                format!("`when` must be an object; expected {EXPECTED}"),
            ))
        }
    }
    Ok(())
}

async fn clock(State(shared): State<Shared>) -> Response {
    Json(json!({ "t": shared.lock().now, "speed": shared.speed })).into_response()
}

/// `POST /sim/traffic {"to": "green" | "blue"}`: a blue-green switch of a simulated cluster's clients,
/// recorded as a `traffic` event; answered like the switch command it stands in for.
async fn traffic(State(shared): State<Shared>, body: Bytes) -> Response {
    const EXPECTED: &str = r#"{"to": "green"}"#;
    let to = match parse_object(&body, EXPECTED)
        .and_then(|m| string_field(&m, "to", EXPECTED).map(str::to_string))
    {
        Ok(to) => to,
        Err(r) => return refuse(r),
    };
    if to != "green" && to != "blue" {
        return json_error(400, &format!("`to` is \"green\" or \"blue\", not {to:?}"));
    }
    shared.lock().event(None, "traffic", to.clone());
    Json(json!({ "status": 0, "stdout": format!("client traffic now goes to {to}\n"), "stderr": "" }))
        .into_response()
}

/// `POST /sim/sleep {"secs": N}`: answers once simulated time has moved on by N seconds (at most an hour a
/// call), so a script's waits on a simulated cluster run on its clock, compressed by `--speed`. With
/// `"warp": true` (a rehearsal's twin) the N seconds are simulated flat out instead.
async fn sleep(State(shared): State<Shared>, body: Bytes) -> Response {
    const EXPECTED: &str = r#"{"secs": 60}"#;
    let (secs, warp) = match parse_object(&body, EXPECTED) {
        Ok(map) => (
            map.get("secs").and_then(Value::as_f64),
            map.get("warp").and_then(Value::as_bool).unwrap_or(false),
        ),
        Err(r) => return refuse(r),
    };
    let Some(secs) = secs.filter(|s| s.is_finite() && (0.0..=3600.0).contains(s)) else {
        return json_error(
            400,
            &format!("`secs` must be a number from 0 to 3600; expected {EXPECTED}"),
        );
    };
    if warp {
        return Json(json!({ "t": shared.warp(secs).await })).into_response();
    }
    let until = shared.lock().now + secs;
    if !shared.wait_until(until, |_| true).await {
        return json_error(503, "the simulator's clock has stopped");
    }
    Json(json!({ "t": shared.lock().now })).into_response()
}

/// `POST /sim/rollback_limit {"kind": "schema" | "feature", "detail": "...", "since": "0.11.0"}`.
async fn rollback_limit(State(shared): State<Shared>, body: Bytes) -> Response {
    const EXPECTED: &str = r#"{"kind": "schema", "detail": "table v2", "since": "0.11.0"}"#;
    let parsed = (|| -> Result<RollbackLimit, Refusal> {
        let map = parse_object(&body, EXPECTED)?;
        let kind = string_field(&map, "kind", EXPECTED)?;
        if kind != "schema" && kind != "feature" {
            return Err((
                400,
                format!("unknown kind `{kind}`: expected schema or feature"),
            ));
        }
        let detail = string_field(&map, "detail", EXPECTED)?;
        let since = string_field(&map, "since", EXPECTED)?;
        semver::Version::parse(since.trim())
            .map_err(|e| (400, format!("`{since}` is not a semver version: {e}")))?;
        Ok(RollbackLimit {
            kind: kind.to_string(),
            detail: detail.to_string(),
            since: since.trim().to_string(),
        })
    })();
    match parsed {
        Ok(limit) => {
            shared.lock().add_rollback_limit(limit);
            Json(json!({ "ok": true })).into_response()
        }
        Err(r) => refuse(r),
    }
}

async fn fault(State(shared): State<Shared>, body: Bytes) -> Response {
    match inject_fault(&shared, &body) {
        Ok(()) => Json(json!({ "ok": true })).into_response(),
        Err(r) => refuse(r),
    }
}

fn parse_version(body: &[u8]) -> Result<semver::Version, Refusal> {
    const EXPECTED: &str = r#"{"version": "0.11.0"}"#;
    let map = parse_object(body, EXPECTED)?;
    let version = string_field(&map, "version", EXPECTED)?;
    semver::Version::parse(version.trim())
        .map_err(|e| (400, format!("`{version}` is not a semver version: {e}")))
}

async fn host(
    State(shared): State<Shared>,
    Path((node, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(i) = shared.lock().index_of(&node) else {
        return json_error(404, &format!("unknown node `{node}`"));
    };
    let out = match action.as_str() {
        "stop" => stop(&shared, i).await,
        "start" => start(&shared, i).await,
        "restart" => restart(&shared, i).await,
        "install" => {
            let version = match parse_version(&body) {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            let (done_at, out) = shared.lock().host_install(i, &version);
            shared.wait_until(done_at, |_| true).await;
            out
        }
        "stage" => {
            let version = match parse_version(&body) {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            // Answers once the staged build is in place, as `cargo install --root` returns then.
            let (done_at, out) = shared.lock().host_stage(i, &version);
            shared.wait_until(done_at, |_| true).await;
            out
        }
        "activate" => {
            let version = match parse_version(&body) {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            shared.lock().host_activate(i, &version)
        }
        "exec" => {
            const EXPECTED: &str = r#"{"command": "systemctl is-active neumann"}"#;
            let command = match parse_object(&body, EXPECTED)
                .and_then(|map| string_field(&map, "command", EXPECTED).map(str::to_string))
            {
                Ok(c) => c,
                Err(r) => return refuse(r),
            };
            exec(&shared.lock().nodes[i], &command)
        }
        other => {
            return json_error(
                404,
                &format!(
                    "unknown host action `{other}` (expected stop, start, restart, install, stage, activate, exec)"
                ),
            );
        }
    };
    Json(out).into_response()
}

/// A command on a simulated node's host, answered from a small simulated environment: the commands a
/// runbook asks a node about. Nothing is run on this machine; anything else is "not available".
fn exec(node: &Node, command: &str) -> CommandOutput {
    let words: Vec<&str> = command.split_whitespace().collect();
    let answer = |status: i32, stdout: String| CommandOutput {
        status,
        stdout,
        stderr: String::new(),
    };
    match words.as_slice() {
        // The binary on disk answers, as on a real host: after an install and before the restart it is
        // the new version while the process still runs the old one.
        ["neumann", "--version" | "-V"] => answer(0, format!("neumann {}\n", node.host.installed)),
        ["systemctl", "is-active", "neumann" | "neumann.service"] => {
            let state = match node.host.process {
                _ if node.is_stopping() => "deactivating",
                ProcessState::Running => "active",
                ProcessState::Starting { .. } => "activating",
                ProcessState::Stopping { .. } => "deactivating",
                ProcessState::Stopped => "inactive",
                ProcessState::Crashed => "failed",
            };
            // systemctl's documented status: 0 when active, 3 when not running.
            answer(if state == "active" { 0 } else { 3 }, format!("{state}\n"))
        }
        _ => CommandOutput {
            status: 127,
            stdout: String::new(),
            stderr: format!(
                "{}: `{command}`: not available in the simulator (it answers `neumann --version` and `systemctl is-active neumann`)\n",
                node.id
            ),
        },
    }
}

fn timed_out(what: &str) -> CommandOutput {
    CommandOutput {
        status: 1,
        stdout: String::new(),
        stderr: format!("Job for neumann.service timed out while {what}.\n"),
    }
}

/// `systemctl stop`: returns once the process is gone (a leader's hand-over included) and its port closed.
async fn stop(shared: &Shared, i: usize) -> CommandOutput {
    let until = shared.lock().host_stop(i);
    if let Some(until) = until {
        let done = shared
            .wait_until(until, |m| {
                let n = &m.nodes[i];
                !n.is_stopping() && !n.host.listening
            })
            .await;
        if !done {
            return timed_out("stopping");
        }
    }
    CommandOutput::ok()
}

/// `systemctl start`: returns once the process is launched, before it serves anything.
async fn start(shared: &Shared, i: usize) -> CommandOutput {
    loop {
        let (outcome, now) = {
            let mut m = shared.lock();
            (m.host_start(i), m.now)
        };
        match outcome {
            StartOutcome::Launched | StartOutcome::AlreadyUp => return CommandOutput::ok(),
            StartOutcome::WaitStopped => {
                let stopped = shared.wait_until(now, |m| !m.nodes[i].is_stopping()).await;
                if !stopped {
                    return timed_out("waiting for the previous stop");
                }
            }
        }
    }
}

/// `systemctl restart`: the stop and the start are both the simulator's (`host_restart`), so the start
/// lands when the stop completes whatever the speed; returns once the new process is launched and the
/// old one's port closed.
async fn restart(shared: &Shared, i: usize) -> CommandOutput {
    let launch = shared.lock().host_restart(i);
    let done = shared
        .wait_until(launch, |m| {
            let n = &m.nodes[i];
            // The old process's port still open while the new one starts: not done yet.
            let old_listening =
                matches!(n.host.process, ProcessState::Starting { .. }) && n.host.listening;
            !(n.restart_pending() || n.is_stopping() || old_listening)
        })
        .await;
    if done {
        CommandOutput::ok()
    } else {
        timed_out("restarting")
    }
}
