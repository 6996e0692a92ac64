//! The cluster's run lease (`/admin/lease`): at most one mutating run per cluster. Any node answers for
//! the whole cluster. A lease expires `ttl_secs` after its last renewal unless renewed; the TTL counts
//! the holder's real seconds, measured on the simulator's clock scaled by its speed, so a holder renewing
//! in real time keeps its lease at any speed. Acquisitions, releases, expiries and requests go to the
//! event log as kind `lease`.

pub(crate) mod state;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use self::state::{Lease, LeaseState};
use super::http::json_error;
use super::shared::Shared;

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
            history: map.get("history").filter(|h| h.is_array()).cloned(),
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
