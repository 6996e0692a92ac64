//! How `status` shows one look at the cluster: the text page (the cluster, a table of its nodes, the run
//! holding the lease with its steps) and the JSON document. `status` prints it once; `status --watch`
//! redraws it.

use std::time::Duration;

use serde_json::{json, Value};

use super::read::Snapshot;
use crate::inventory::Inventory;
use crate::lease;
use crate::model::policy::parse_version;
use crate::model::ClusterHealth;
use crate::output::human_duration;
use crate::transport::admin::LeaseRecord;

/// How many of the run's latest steps the page lists (`-o wide`: every one the lease carries).
const STEPS_SHOWN: usize = 10;

/// What one page is drawn from.
pub(super) struct Look<'a> {
    /// The cluster as the journal names it: its inventory's absolute path.
    pub(super) name: &'a str,
    pub(super) snap: &'a Snapshot,
    pub(super) inventory: &'a Inventory,
    /// More columns and every step carried.
    pub(super) wide: bool,
}

/// How a command line names the cluster called `name` (its inventory's absolute path).
pub(super) fn cluster_flag(name: &str) -> String {
    format!(
        "--cluster {}",
        shlex::try_quote(name).map_or_else(|_| name.to_string(), |q| q.into_owned())
    )
}

/// Nodes done and left: when the run's first argument is a version, the members on it now are done.
pub(super) fn progress(
    l: &LeaseRecord,
    h: &ClusterHealth,
) -> Option<(String, Vec<String>, Vec<String>)> {
    let target = parse_version(l.args.first()?).ok()?.to_string();
    let (done, left): (Vec<_>, Vec<_>) = h.members.iter().partition(|m| m.version == target);
    Some((
        target,
        done.into_iter().map(|m| m.id.clone()).collect(),
        left.into_iter().map(|m| m.id.clone()).collect(),
    ))
}

/// "on 0.11.0: 1 of 3 (node2); left: node3, node1"
pub(super) fn progress_line(target: &str, done: &[String], left: &[String]) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "on {target}: {} of {} ({}); left: {}",
        done.len(),
        done.len() + left.len(),
        list(done),
        list(left)
    )
}

fn text_of(v: Option<&Value>, key: &str) -> String {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `PAUSED by op@desk: p99 up (after step "x", for 12 s)`, the run's `paused` as of `now`.
pub(super) fn paused_line(p: &Value, now: f64) -> String {
    let by = text_of(Some(p), "by");
    let reason = text_of(Some(p), "reason");
    let at = text_of(Some(p), "at");
    let since = p
        .get("since")
        .and_then(Value::as_f64)
        .map(|s| {
            let ago = (now - s).max(0.0);
            format!(" for {}", secs(ago))
        })
        .unwrap_or_default();
    let who = if by == "gate" {
        "at a gate".to_string()
    } else {
        format!("by {by}")
    };
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    format!("PAUSED {who}{reason} ({at}{since})")
}

/// One step of the run's course, as its lease carries it (`lease::Course`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Past {
    pub(super) n: u64,
    pub(super) name: String,
    pub(super) depth: usize,
    pub(super) at: f64,
    pub(super) took: Option<f64>,
    pub(super) ok: Option<bool>,
}

/// The steps the lease carries, oldest first; what does not read as a step is left out.
pub(super) fn course(l: &LeaseRecord) -> Vec<Past> {
    let Some(Value::Array(steps)) = &l.history else {
        return Vec::new();
    };
    steps
        .iter()
        .filter_map(|s| {
            Some(Past {
                n: s.get("n")?.as_u64()?,
                name: s.get("name")?.as_str()?.to_string(),
                depth: s.get("depth").and_then(Value::as_u64).unwrap_or(0) as usize,
                at: s.get("at").and_then(Value::as_f64).unwrap_or(0.0),
                took: s.get("took_secs").and_then(Value::as_f64),
                ok: s.get("ok").and_then(Value::as_bool),
            })
        })
        .collect()
}

/// A duration the lease reports; another process wrote it, so a huge or odd figure must not panic.
fn secs(s: f64) -> String {
    let d = Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
    human_duration(d)
}

/// "step 4: upgrade follower node3 (2/3), for 12 s", or where the run is between steps.
fn step_line(l: &LeaseRecord, steps: &[Past], now: f64) -> String {
    let current = l.step.as_deref().and_then(|name| {
        steps
            .iter()
            .rev()
            .find(|s| s.ok.is_none() && s.name == name)
    });
    match (&l.step, current) {
        (Some(_), Some(s)) => format!("step {}: {}, for {}", s.n, s.name, secs(now - s.at)),
        (Some(name), None) => format!("step: {name}"),
        (None, _) => match steps.iter().map(|s| s.n).max() {
            Some(n) => format!("between steps ({n} begun so far)"),
            None => "not in a step yet".to_string(),
        },
    }
}

/// The run's latest steps, nested steps indented: `✔ 3 upgrade follower node2 (1/3) (8 s)`.
fn step_lines(steps: &[Past], shown: usize, now: f64) -> Vec<String> {
    let from = steps.len().saturating_sub(shown);
    let mut out = Vec::new();
    if let Some(first) = steps.get(from).filter(|s| s.n > 1) {
        out.push(format!(
            "… {} earlier step{}",
            first.n - 1,
            if first.n == 2 { "" } else { "s" }
        ));
    }
    for s in &steps[from..] {
        let (mark, took) = match (s.ok, s.took) {
            (Some(true), Some(t)) => ("✔", secs(t)),
            (Some(false), Some(t)) => ("✘", format!("failed after {}", secs(t))),
            (Some(true), None) => ("✔", "done".into()),
            (Some(false), None) => ("✘", "failed".into()),
            (None, _) => ("▶", format!("{} so far", secs(now - s.at))),
        };
        out.push(format!(
            "{}{mark} {} {} ({took})",
            "  ".repeat(s.depth),
            s.n,
            s.name
        ));
    }
    out
}

/// Rows of text columns, each as wide as its widest cell, two spaces apart.
pub(super) fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| console::measure_text_width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                line.push_str(cell);
                let pad = widths[c] - console::measure_text_width(cell);
                if c + 1 < r.len() {
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line
        })
        .collect()
}

/// The node table: NODE ROLE STATE VERSION HEALTHY LAG, and with `wide` COMMIT APPLIED ADDRESS LABELS.
fn nodes(look: &Look) -> Vec<String> {
    let mut head = vec!["NODE", "ROLE", "STATE", "VERSION", "HEALTHY", "LAG"];
    if look.wide {
        head.extend(["COMMIT", "APPLIED", "ADDRESS", "LABELS"]);
    }
    let mut rows = vec![head.into_iter().map(str::to_string).collect::<Vec<_>>()];
    for m in &look.snap.health.members {
        let mut row = vec![
            m.id.clone(),
            m.role.clone(),
            m.state.clone(),
            m.version.clone(),
            if m.healthy { "yes" } else { "no" }.to_string(),
            human_duration(Duration::from_millis(m.replication_lag_ms.max(0) as u64)),
        ];
        if look.wide {
            let labels = look
                .inventory
                .nodes
                .iter()
                .find(|n| n.id == m.id)
                .map(|n| {
                    n.labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            row.extend([
                m.commit_index.to_string(),
                m.applied_index.to_string(),
                m.address.clone(),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels
                },
            ]);
        }
        rows.push(row);
    }
    table(&rows)
}

/// The page: the cluster's line and its problems, the run holding the lease (or, with `waiting`, that a
/// watch waits for one), then the table of its nodes, which can be long and so comes last.
/// `cluster_flag` is how a command line names this cluster (`--cluster /abs/c.toml`), for the commands it
/// suggests.
pub(super) fn text(look: &Look, cluster_flag: &str, waiting: bool) -> Vec<String> {
    let h = &look.snap.health;
    let mut out = vec![format!(
        "cluster {}: {}, {}/{} members healthy (quorum {}), leader {}, term {}{}",
        look.name,
        h.status,
        h.healthy_members,
        h.members.len(),
        h.quorum,
        h.leader.as_deref().unwrap_or("none"),
        h.term,
        if h.paused {
            ", client requests PAUSED"
        } else {
            ""
        }
    )];
    for p in &h.problems {
        out.push(format!("  problem: {p}"));
    }
    out.push(String::new());
    out.extend(run_lines(look, cluster_flag));
    if waiting {
        out.push(
            "  watching for a run to take the lease (a run takes it at its first change)".into(),
        );
    }
    out.push(String::new());
    out.extend(nodes(look));
    out
}

/// The run holding the lease: who, what, since when, paused or not, a request waiting, the nodes done and
/// left, its step and the steps before it.
fn run_lines(look: &Look, cluster_flag: &str) -> Vec<String> {
    let h = &look.snap.health;
    let now = look.snap.at;
    let mut out = Vec::new();
    let (record, local) = look.snap.lease.record();
    let Some(l) = record else {
        out.push(if local {
            "run: none from this machine (the cluster serves no run lease: runs on other machines are not shown)".into()
        } else {
            "run: none in progress (nobody holds the cluster's run lease)".into()
        });
        return out;
    };
    out.push(format!("run: {}", lease::describe(l)));
    out.push(format!("  run id {}", l.run_id));
    if lease::alive_here(&l.holder) == Some(false) {
        out.push(
            "  its process is no longer running on this machine: the run ended without giving the lease back (killed, or the machine restarted). The next run from this machine that changes the cluster takes the lease over and first finishes what that run left (docs/SAFETY.md)".into(),
        );
    }
    if local {
        out.push("  (from this machine's lock file: the cluster serves no run lease)".into());
    }
    match &l.paused {
        Some(p) => {
            out.push(format!("  {}", paused_line(p, now)));
            out.push(format!(
                "  resume it with: neumann-script {cluster_flag} resume   (or abort: neumann-script {cluster_flag} abort)"
            ));
        }
        None => out.push("  not paused".into()),
    }
    if let Some(r) = &l.request {
        out.push(format!(
            "  request waiting: {} by {}{} (taken at the run's next safe point)",
            text_of(Some(r), "action"),
            text_of(Some(r), "by"),
            match text_of(Some(r), "reason") {
                t if t.is_empty() => String::new(),
                t => format!(": {t}"),
            }
        ));
    }
    if let Some((target, done, left)) = progress(l, h) {
        out.push(format!("  {}", progress_line(&target, &done, &left)));
    }
    let steps = course(l);
    out.push(format!("  {}", step_line(l, &steps, now)));
    if !steps.is_empty() {
        let shown = if look.wide { steps.len() } else { STEPS_SHOWN };
        out.push("  steps:".into());
        out.extend(
            step_lines(&steps, shown, now)
                .into_iter()
                .map(|s| format!("    {s}")),
        );
    }
    out
}

/// The JSON document: `{cluster, health, lease_api, run}`, `run` being the lease record plus
/// `holder_running` and, when the first argument is a version, `target`, `done` and `left`.
pub(super) fn json(look: &Look) -> Value {
    let (record, local) = look.snap.lease.record();
    let run = record.map(|l| {
        let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
        // Known only for a holder on this machine: `null` elsewhere.
        v["holder_running"] = json!(lease::alive_here(&l.holder));
        if let Some((target, done, left)) = progress(l, &look.snap.health) {
            v["target"] = json!(target);
            v["done"] = json!(done);
            v["left"] = json!(left);
        }
        v
    });
    json!({
        "cluster": look.name,
        "health": look.snap.health,
        "lease_api": !local,
        "run": run,
    })
}

/// What tells one look from the next: the document without what moves on its own while nothing happens
/// (the lease's time left, the commit and applied indexes of a cluster taking writes), a lag only as
/// caught up (100 ms or less) or its whole seconds.
pub(super) fn change_key(doc: &Value) -> Value {
    let mut key = doc.clone();
    if let Some(o) = key.as_object_mut() {
        o.remove("at");
    }
    if let Some(run) = key.get_mut("run").and_then(Value::as_object_mut) {
        run.remove("expires_in_secs");
    }
    if let Some(h) = key.get_mut("health").and_then(Value::as_object_mut) {
        h.remove("commit_index");
        if let Some(Value::Array(members)) = h.get_mut("members") {
            for m in members.iter_mut().filter_map(Value::as_object_mut) {
                m.remove("commit_index");
                m.remove("applied_index");
                if let Some(lag) = m.get("replication_lag_ms").and_then(Value::as_i64) {
                    let bucket = if lag <= 100 { 0 } else { 1 + lag / 1000 };
                    m.insert("replication_lag_ms".into(), json!(bucket));
                }
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(n: u64, name: &str, depth: usize, took: Option<f64>, ok: Option<bool>) -> Past {
        Past {
            n,
            name: name.into(),
            depth,
            at: 100.0,
            took,
            ok,
        }
    }

    #[test]
    fn columns_line_up_under_their_header() {
        let t = table(&[
            vec!["NODE".into(), "LAG".into()],
            vec!["node10".into(), "7 min 19 s".into()],
            vec!["n1".into(), "0 ms".into()],
        ]);
        assert_eq!(t, ["NODE    LAG", "node10  7 min 19 s", "n1      0 ms"]);
    }

    #[test]
    fn steps_show_their_outcome_nesting_and_what_came_before() {
        let steps = vec![
            past(4, "group zone=a", 0, None, None),
            past(5, "upgrade follower node2 (1/3)", 1, Some(8.0), Some(true)),
            past(6, "hook after_node(node2)", 1, Some(0.2), Some(false)),
            past(7, "upgrade follower node3 (2/3)", 1, None, None),
        ];
        let lines = step_lines(&steps, 10, 112.0);
        assert_eq!(
            lines,
            [
                "… 3 earlier steps",
                "▶ 4 group zone=a (12 s so far)",
                "  ✔ 5 upgrade follower node2 (1/3) (8 s)",
                "  ✘ 6 hook after_node(node2) (failed after 200 ms)",
                "  ▶ 7 upgrade follower node3 (2/3) (12 s so far)",
            ]
        );
        assert_eq!(step_lines(&steps, 1, 112.0)[0], "… 6 earlier steps");
    }

    #[test]
    fn the_step_line_numbers_the_current_step_from_the_course() {
        let mut l = LeaseRecord {
            run_id: "r".into(),
            holder: "op@elsewhere pid 1".into(),
            script: "s.rhai".into(),
            args: vec![],
            acquired_at: 0.0,
            ttl_secs: 30.0,
            step: Some("stage".into()),
            request: None,
            paused: None,
            expires_in_secs: None,
            history: Some(json!([
                {"n": 1, "name": "checks", "depth": 0, "at": 90.0, "took_secs": 1.0, "ok": true},
                {"n": 2, "name": "stage", "depth": 0, "at": 95.0},
                {"name": "no number"},
            ])),
        };
        let steps = course(&l);
        assert_eq!(steps.len(), 2, "the entry without a number is left out");
        assert_eq!(step_line(&l, &steps, 107.0), "step 2: stage, for 12 s");
        l.step = None;
        assert_eq!(
            step_line(&l, &steps, 107.0),
            "between steps (2 begun so far)"
        );
        l.step = Some("other".into());
        assert_eq!(step_line(&l, &steps, 107.0), "step: other");
    }

    #[test]
    fn the_change_key_ignores_what_moves_on_its_own() {
        let doc = |at: f64, left: f64, step: &str, commit: i64, lag: i64| {
            json!({"at": at, "run": {"expires_in_secs": left, "step": step},
                "health": {"commit_index": commit, "members": [
                    {"id": "node1", "commit_index": commit, "applied_index": commit,
                     "replication_lag_ms": lag}]}})
        };
        let a = doc(1.0, 29.0, "x", 10, 0);
        assert_eq!(change_key(&a), change_key(&doc(2.0, 27.5, "x", 57, 80)));
        assert_ne!(change_key(&a), change_key(&doc(2.0, 27.5, "y", 57, 80)));
        assert_ne!(
            change_key(&a),
            change_key(&doc(2.0, 27.5, "x", 57, 438_913))
        );
    }
}
