//! The cluster's run lease (`/admin/lease`): at most one mutating run per cluster. Any node answers for
//! the whole cluster. A lease expires `ttl_secs` after its last renewal unless renewed; the TTL counts
//! the holder's real seconds, measured on the simulator's clock scaled by its speed, so a holder renewing
//! in real time keeps its lease at any speed. Acquisitions, releases, expiries and requests go to the
//! event log as kind `lease`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::server::json_error;
use super::Shared;

/// The lease as `GET /admin/lease` shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Lease {
    run_id: String,
    holder: String,
    script: String,
    args: Vec<String>,
    /// Unix seconds (the wall clock, not the simulated one): "since when" for the operator.
    acquired_at: f64,
    ttl_secs: f64,
    step: Option<String>,
    request: Option<Value>,
    /// `{by, reason, since, at}` while the holder is paused, as its last renewal said.
    paused: Option<Value>,
    /// Real seconds left before it expires unless renewed.
    expires_in_secs: f64,
    #[serde(skip)]
    expires_at: f64,
}

/// The lease state beside the model; lock it before the model, never the other way round.
#[derive(Default)]
pub(crate) struct LeaseState {
    held: Option<Lease>,
    /// The last request id handed out: ids are never reused, so an acknowledgement names one request.
    requests: u64,
}

impl LeaseState {
    /// Moves the lease's expiry `secs` simulated seconds on: time fast-forwarded is not its holder's.
    pub(crate) fn postpone(&mut self, secs: f64) {
        if let Some(l) = self.held.as_mut() {
            l.expires_at += secs;
        }
    }
}

const EXPECTED: &str = r#"{"run_id": "...", "holder": "user@host pid N", "script": "...", "args": [], "ttl_secs": 30, "step": null}"#;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Shared {
    /// The unexpired lease, with its time left; an expired one is dropped and logged here.
    fn current(&self, state: &mut LeaseState) -> Option<Lease> {
        let mut m = self.lock();
        let lease = state.held.as_mut()?;
        if lease.expires_at <= m.now {
            let gone = state.held.take()?;
            m.event(
                None,
                "lease",
                format!(
                    "expired: {} ({}) not renewed within {} s",
                    gone.holder,
                    command(&gone),
                    gone.ttl_secs
                ),
            );
            return None;
        }
        lease.expires_in_secs = (lease.expires_at - m.now) / self.speed;
        Some(lease.clone())
    }

    fn lease_state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.lease.lock().expect("simulator lease mutex poisoned")
    }
}

/// The script and its arguments, as typed.
fn command(l: &Lease) -> String {
    std::iter::once(l.script.as_str())
        .chain(l.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn lease_json(lease: Option<&Lease>) -> Value {
    json!({ "lease": lease })
}

pub(crate) fn get(shared: &Shared) -> Response {
    let mut state = shared.lease_state();
    Json(lease_json(shared.current(&mut state).as_ref())).into_response()
}

/// A refusal as (HTTP status, message), turned into a response at the handler's edge.
type Refusal = (u16, String);

fn field<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Result<&'a str, Refusal> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            (
                400,
                format!("missing string field `{key}`; expected {EXPECTED}"),
            )
        })
}

fn object(body: &[u8], expected: &str) -> Result<serde_json::Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err((400, format!("body must be a JSON object like {expected}"))),
    }
}

/// `POST /admin/lease`: acquires a free or expired lease, or renews the caller's own.
pub(crate) fn post(shared: &Shared, body: &[u8]) -> Response {
    let parsed = (|| {
        let map = object(body, EXPECTED)?;
        let ttl = map
            .get("ttl_secs")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0 && *t <= 3600.0)
            .ok_or_else(|| {
                (
                    400,
                    "`ttl_secs` must be a number of seconds above 0 and at most 3600".to_string(),
                )
            })?;
        let args = match map.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| (400, "`args` must be an array of strings".to_string()))?,
            Some(_) => return Err((400, "`args` must be an array of strings".to_string())),
        };
        Ok(Lease {
            run_id: field(&map, "run_id")?.to_string(),
            holder: field(&map, "holder")?.to_string(),
            script: field(&map, "script")?.to_string(),
            args,
            acquired_at: unix_now(),
            ttl_secs: ttl,
            step: map.get("step").and_then(Value::as_str).map(str::to_string),
            request: None,
            paused: map.get("paused").filter(|p| p.is_object()).cloned(),
            expires_in_secs: ttl,
            expires_at: 0.0,
        })
    })();
    let mut asked = match parsed {
        Ok(l) => l,
        Err((status, message)) => return json_error(status, &message),
    };
    let mut state = shared.lease_state();
    let current = shared.current(&mut state);
    let mut m = shared.lock();
    asked.expires_at = m.now + asked.ttl_secs * shared.speed;
    match current {
        Some(held) if held.run_id != asked.run_id => {
            let since = (unix_now() - held.acquired_at).max(0.0).round();
            (
                axum::http::StatusCode::CONFLICT,
                Json(json!({
                    "error": format!(
                        "the lease is held by {} ({}) since {since} s ago",
                        held.holder,
                        command(&held)
                    ),
                    "lease": held,
                })),
            )
                .into_response()
        }
        Some(held) => {
            // A renewal keeps when it was acquired and any request waiting for its holder, unless it
            // acknowledges that very request (`"ack": ID`): the holder has acted on it.
            asked.acquired_at = held.acquired_at;
            let ack = body_ack(body);
            asked.request = held
                .request
                .clone()
                .filter(|r| ack.is_none() || r.get("id").and_then(Value::as_u64) != ack);
            if asked.request.is_none() {
                if let Some(r) = held_request_acked(&held, ack) {
                    m.event(None, "lease", format!("{}: acted on {r}", asked.holder));
                }
            }
            if asked.paused.is_some() != held.paused.is_some() {
                let what = if asked.paused.is_some() {
                    "paused"
                } else {
                    "resumed"
                };
                m.event(None, "lease", format!("{}: {what}", asked.holder));
            }
            if asked.step != held.step {
                if let Some(step) = &asked.step {
                    m.event(None, "lease", format!("{}: step {step}", asked.holder));
                }
            }
            state.held = Some(asked.clone());
            Json(lease_json(Some(&asked))).into_response()
        }
        None => {
            m.event(
                None,
                "lease",
                format!(
                    "acquired by {} ({}), ttl {} s",
                    asked.holder,
                    command(&asked),
                    asked.ttl_secs
                ),
            );
            state.held = Some(asked.clone());
            Json(lease_json(Some(&asked))).into_response()
        }
    }
}

/// The request id a renewal acknowledges, if any.
fn body_ack(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("ack")
        .and_then(Value::as_u64)
}

/// "pause (id 3)" when `ack` names the request `held` carried.
fn held_request_acked(held: &Lease, ack: Option<u64>) -> Option<String> {
    let r = held.request.as_ref()?;
    let id = r.get("id").and_then(Value::as_u64)?;
    (Some(id) == ack).then(|| {
        format!(
            "request {} (id {id})",
            r.get("action").and_then(Value::as_str).unwrap_or("?")
        )
    })
}

/// `DELETE /admin/lease {"run_id", "by"?}`: releases the lease of that run; `by` names who released
/// someone else's (a take-over of a lease whose holder is gone).
pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Response {
    const DELETE: &str = r#"{"run_id": "..."}"#;
    let map = match object(body, DELETE) {
        Ok(m) => m,
        Err((status, message)) => return json_error(status, &message),
    };
    let Some(run_id) = map.get("run_id").and_then(Value::as_str) else {
        return json_error(
            400,
            &format!("missing string field `run_id`; expected {DELETE}"),
        );
    };
    let by = map.get("by").and_then(Value::as_str);
    let mut state = shared.lease_state();
    match shared.current(&mut state) {
        None => Json(lease_json(None)).into_response(),
        Some(held) if held.run_id == run_id => {
            state.held = None;
            let detail = match by {
                Some(by) if by != held.holder => {
                    format!("taken from {} by {by}", held.holder)
                }
                _ => format!("released by {}", held.holder),
            };
            shared.lock().event(None, "lease", detail);
            Json(lease_json(None)).into_response()
        }
        Some(held) => json_error(
            409,
            &format!(
                "the lease is held by another run ({}, run {}), not run {run_id}",
                held.holder, held.run_id
            ),
        ),
    }
}

/// `POST /admin/lease/request {"action", "by", "reason"}`: recorded on the lease for its holder, with an
/// `id`; a newer request replaces one not yet acknowledged.
pub(crate) fn request(shared: &Shared, body: &[u8]) -> Response {
    const REQUEST: &str =
        r#"{"action": "pause" | "resume" | "abort", "by": "...", "reason": "..."}"#;
    let map = match object(body, REQUEST) {
        Ok(m) => m,
        Err((status, message)) => return json_error(status, &message),
    };
    let action = map.get("action").and_then(Value::as_str).unwrap_or("");
    if !matches!(action, "pause" | "resume" | "abort") {
        return json_error(
            400,
            &format!("`action` must be pause, resume or abort; expected {REQUEST}"),
        );
    }
    let by = map.get("by").and_then(Value::as_str).unwrap_or("unknown");
    let reason = map.get("reason").and_then(Value::as_str).unwrap_or("");
    let mut state = shared.lease_state();
    if shared.current(&mut state).is_none() {
        return json_error(404, "no run holds the lease");
    }
    state.requests += 1;
    let request = json!({
        "id": state.requests, "action": action, "by": by, "reason": reason, "at": unix_now()
    });
    if let Some(held) = state.held.as_mut() {
        held.request = Some(request.clone());
        shared.lock().event(
            None,
            "lease",
            format!("request {action} by {by} for {}: {reason}", held.holder),
        );
    }
    Json(json!({ "request": request })).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use crate::sim::{SimConfig, Simulator};

    async fn call(method: reqwest::Method, url: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn asking(run_id: &str, ttl: f64) -> Value {
        json!({"run_id": run_id, "holder": format!("op@h pid {run_id}"), "script": "up.rhai",
               "args": ["0.11.0"], "ttl_secs": ttl, "step": null})
    }

    #[tokio::test]
    async fn one_holder_at_a_time_any_node_answers_and_an_unrenewed_lease_expires() {
        let sim = Simulator::start(SimConfig {
            speed: 50.0,
            seed: Some(1),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let nodes = sim.nodes();
        let lease = |i: usize, path: &str| format!("{}/admin/lease{path}", nodes[i].1);
        use reqwest::Method as M;

        let (s, v) = call(M::POST, &lease(0, ""), asking("1", 30.0)).await;
        assert_eq!(
            (s, v["lease"]["holder"].as_str()),
            (200, Some("op@h pid 1"))
        );
        // Another run, through another node: refused, naming the holder.
        let (s, v) = call(M::POST, &lease(2, ""), asking("2", 30.0)).await;
        assert_eq!(s, 409);
        assert_eq!(v["lease"]["run_id"], "1");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("op@h pid 1 (up.rhai 0.11.0)"),
            "{v}"
        );

        // A request waits on the lease for its holder, and survives a renewal with a new step.
        let (s, _) = call(
            M::POST,
            &lease(1, "/request"),
            json!({"action": "pause", "by": "b@h", "reason": "r"}),
        )
        .await;
        assert_eq!(s, 200);
        let mut renewal = asking("1", 30.0);
        renewal["step"] = json!("upgrade node2");
        let (s, v) = call(M::POST, &lease(1, ""), renewal).await;
        assert_eq!(s, 200);
        assert_eq!(v["lease"]["request"]["action"], "pause");
        assert_eq!(v["lease"]["step"], "upgrade node2");
        let (s, _) = call(M::POST, &lease(0, "/request"), json!({"action": "explode"})).await;
        assert_eq!(s, 400);

        // Only the holder's run id releases it.
        let (s, _) = call(M::DELETE, &lease(0, ""), json!({"run_id": "2"})).await;
        assert_eq!(s, 409);
        let (s, _) = call(M::DELETE, &lease(0, ""), json!({"run_id": "1"})).await;
        assert_eq!(s, 200);
        let (s, v) = call(M::GET, &lease(2, ""), Value::Null).await;
        assert_eq!((s, &v["lease"]), (200, &Value::Null));
        let (s, _) = call(
            M::POST,
            &lease(0, "/request"),
            json!({"action": "abort", "by": "b", "reason": ""}),
        )
        .await;
        assert_eq!(s, 404);

        // Not renewed: gone after its TTL, and logged.
        let (s, _) = call(M::POST, &lease(0, ""), asking("3", 0.3)).await;
        assert_eq!(s, 200);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !call(M::GET, &lease(1, ""), Value::Null).await.1["lease"].is_null() {
            assert!(Instant::now() < deadline, "the lease never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let details: Vec<String> = sim
            .events()
            .into_iter()
            .filter(|e| e.kind == "lease")
            .map(|e| e.detail)
            .collect();
        assert_eq!(details.len(), 6, "{details:?}");
        assert!(
            details[0].starts_with("acquired by op@h pid 1 (up.rhai 0.11.0)"),
            "{details:?}"
        );
        assert!(
            details[1].starts_with("request pause by b@h"),
            "{details:?}"
        );
        assert_eq!(details[2], "op@h pid 1: step upgrade node2");
        assert_eq!(details[3], "released by op@h pid 1");
        assert!(details[5].starts_with("expired: op@h pid 3"), "{details:?}");
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn a_request_stays_until_its_holder_acknowledges_it_and_paused_is_the_holders_word() {
        let sim = Simulator::start(SimConfig::default()).await.unwrap();
        let url = format!("{}/admin/lease", sim.nodes()[0].1);
        use reqwest::Method as M;
        assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
        let ask = |action: &str| json!({"action": action, "by": "b@h", "reason": "r"});
        let (_, first) = call(M::POST, &format!("{url}/request"), ask("pause")).await;
        let (_, second) = call(M::POST, &format!("{url}/request"), ask("resume")).await;
        let (one, two) = (&first["request"]["id"], &second["request"]["id"]);
        assert!(one.as_u64().unwrap() < two.as_u64().unwrap(), "{one} {two}");

        // The newer request replaced the older; acknowledging the older one does not drop it.
        let mut renewal = asking("1", 30.0);
        renewal["ack"] = one.clone();
        let (_, v) = call(M::POST, &url, renewal.clone()).await;
        assert_eq!(v["lease"]["request"]["action"], "resume", "{v}");
        // A renewal without `ack` keeps it; one naming it drops it, and `paused` is as the holder sent it.
        renewal.as_object_mut().unwrap().remove("ack");
        renewal["paused"] = json!({"by": "b@h", "reason": "r", "at": "checkpoint", "since": 1.0});
        let (_, v) = call(M::POST, &url, renewal.clone()).await;
        assert_eq!(v["lease"]["request"]["id"], *two, "{v}");
        assert_eq!(v["lease"]["paused"]["by"], "b@h", "{v}");
        renewal["ack"] = two.clone();
        renewal["paused"] = Value::Null;
        let (_, v) = call(M::POST, &url, renewal).await;
        assert_eq!(v["lease"]["request"], Value::Null, "{v}");
        assert_eq!(v["lease"]["paused"], Value::Null, "{v}");
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn a_warp_simulates_its_time_flat_out_and_keeps_the_lease_of_a_holder_it_did_not_wait_for(
    ) {
        // At speed 1 an hour of paced time is an hour: only a warp gets through it in a test.
        let sim = Simulator::start(SimConfig {
            seed: Some(1),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let url = format!("{}/admin/lease", sim.nodes()[0].1);
        let control = format!("http://{}", sim.control_addr());
        use reqwest::Method as M;
        assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
        let writes = sim.stats().client_writes_ok;
        // The holder renews as it would, in real time, while the hour is simulated.
        let renewing = {
            let url = url.clone();
            tokio::spawn(async move {
                loop {
                    assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let (s, v) = call(
            M::POST,
            &format!("{control}/sim/sleep"),
            json!({"secs": 3600, "warp": true}),
        )
        .await;
        renewing.abort();
        assert_eq!(s, 200, "{v}");
        assert!(v["t"].as_f64().unwrap() >= 3600.0, "{v}");
        // The hour was simulated, clients included (300 writes a second), not skipped.
        let done = sim.stats().client_writes_ok - writes;
        assert!(done > 1_000_000, "{done} writes in a warped hour");
        // 3600 s past a 30 s TTL, and past every renewal made during the warp, the lease still stands: its
        // holder's real seconds did not pass. (A lease whose expiry the model's time has passed is
        // dropped: the test above sees one go.)
        let (_, v) = call(M::GET, &url, Value::Null).await;
        assert_eq!(v["lease"]["run_id"], "1", "{v}");
        // Paced time goes on from where the warp left it, not back.
        let (_, c) = call(M::GET, &format!("{control}/sim/clock"), Value::Null).await;
        assert!(c["t"].as_f64().unwrap() >= 3600.0, "{c}");
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn without_the_lease_api_the_paths_are_404() {
        let sim = Simulator::start(SimConfig {
            lease_api: false,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let url = format!("{}/admin/lease", sim.nodes()[0].1);
        let (s, v) = call(reqwest::Method::POST, &url, asking("1", 30.0)).await;
        assert_eq!(s, 404);
        assert_eq!(v["error"], "no such endpoint: POST /admin/lease");
        sim.shutdown().await;
    }
}
