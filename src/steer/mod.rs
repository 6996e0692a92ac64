//! The operator's side of a running rollout (docs/CONTROL.md): `status` shows the cluster and the run
//! holding its lease; `pause`, `resume` and `abort` leave a request on that lease
//! (`POST /admin/lease/request`) for the run to act on at its next safe point. Any machine that can reach
//! the cluster can ask: the request travels through the cluster, not through this process.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::{Cluster, OpError};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::journal;
use crate::lease;
use crate::lease::Action;
use crate::model::policy::parse_version;
use crate::model::ClusterHealth;
use crate::output::{human_duration, outln, Format};
use crate::session::{tokio_runtime, RunOptions, Target};
use crate::transport::admin::{AdminError, LeaseRecord};

/// The cluster the options name; `status` and the requests never start a simulator.
fn open(run: &RunOptions) -> Result<(Arc<Cluster>, String), Error> {
    let path = match &run.target {
        Target::Inventory(p) => p.clone(),
        Target::Sim { .. } => {
            return Err(Error::Usage(
                "name the cluster with --cluster FILE: --sim would start a new one".into(),
            ))
        }
    };
    let inv = Inventory::locate(path.as_deref())?.ok_or_else(|| {
        Error::Usage(
            "no cluster named: pass --cluster FILE, set NEUMANN_CLUSTER, or create ./neumann-cluster.toml"
                .into(),
        )
    })?;
    let name = journal::cluster_name(&inv.source);
    Ok((Arc::new(Cluster::new(inv).map_err(Error::Tool)?), name))
}

/// Who asks: `user@host`, as the run shows it ("paused by op@desk: ...").
fn asker() -> String {
    let (user, host) = journal::whoami();
    format!("{user}@{host}")
}

/// The lease, or what a cluster without one means for the operator.
enum LeaseView {
    Held(LeaseRecord),
    Free,
    /// The cluster serves no lease: runs take a lock file on their own machine (`Some` when one is held
    /// here).
    NoApi(Option<LeaseRecord>),
}

async fn read_lease(cluster: &Cluster) -> Result<LeaseView, Error> {
    match cluster.admin.lease().await {
        Ok(Some(l)) => Ok(LeaseView::Held(l)),
        Ok(None) => Ok(LeaseView::Free),
        Err(e) if e.status() == Some(404) => {
            let text = std::fs::read_to_string(lease::lock_path(cluster)).unwrap_or_default();
            Ok(LeaseView::NoApi(serde_json::from_str(&text).ok()))
        }
        Err(e) => Err(tool_or_inventory(e, "cannot read the run lease")),
    }
}

/// An admin call's failure as the command's error: an inventory that names the wrong node is the
/// operator's to correct (exit 2); anything else is the tool's failure, after `context`.
fn tool_or_inventory(e: AdminError, context: &str) -> Error {
    if e.wrong_node() {
        Error::Usage(e.to_string())
    } else {
        Error::Tool(format!("{context}: {e}"))
    }
}

/// Nodes done and left: when the run's first argument is a version, the members on it now are done.
fn progress(l: &LeaseRecord, h: &ClusterHealth) -> Option<(String, Vec<String>, Vec<String>)> {
    let target = parse_version(l.args.first()?).ok()?.to_string();
    let (done, left): (Vec<_>, Vec<_>) = h.members.iter().partition(|m| m.version == target);
    Some((
        target,
        done.into_iter().map(|m| m.id.clone()).collect(),
        left.into_iter().map(|m| m.id.clone()).collect(),
    ))
}

fn text(v: Option<&Value>, key: &str) -> String {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn paused_line(p: &Value) -> String {
    let by = text(Some(p), "by");
    let reason = text(Some(p), "reason");
    let at = text(Some(p), "at");
    let since = p
        .get("since")
        .and_then(Value::as_f64)
        .map(|s| {
            let ago = (now() - s).max(0.0);
            format!(" for {}", human_duration(Duration::from_secs_f64(ago)))
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

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `neumann-script status`.
pub fn status(run: &RunOptions) -> Result<(), Error> {
    let (cluster, name) = open(run)?;
    let tokio = tokio_runtime()?;
    let (health, lease) =
        tokio.block_on(async { tokio::join!(cluster.health(), read_lease(&cluster)) });
    let health = health.map_err(|e| match e {
        OpError::Usage(m) => Error::Usage(m),
        e => Error::Tool(format!("cluster `{name}`: cannot read its state: {e}")),
    })?;
    let lease = lease?;
    let (record, local) = match &lease {
        LeaseView::Held(l) => (Some(l), false),
        LeaseView::Free => (None, false),
        LeaseView::NoApi(l) => (l.as_ref(), true),
    };
    let prog = record.and_then(|l| progress(l, &health));
    if run.format == Format::Json {
        let run_json = record.map(|l| {
            let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
            // Known only for a holder on this machine: `null` elsewhere.
            v["holder_running"] = json!(lease::alive_here(&l.holder));
            if let Some((target, done, left)) = &prog {
                v["target"] = json!(target);
                v["done"] = json!(done);
                v["left"] = json!(left);
            }
            v
        });
        let doc = json!({
            "cluster": name,
            "health": health,
            "lease_api": !local,
            "run": run_json,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    outln!(
        "cluster {name}: {}, {}/{} members healthy (quorum {}), leader {}, term {}{}",
        health.status,
        health.healthy_members,
        health.members.len(),
        health.quorum,
        health.leader.as_deref().unwrap_or("none"),
        health.term,
        if health.paused {
            ", client requests PAUSED"
        } else {
            ""
        }
    );
    for m in &health.members {
        outln!(
            "  {:<10} {:<9} {:<8} {:<10} {:<9} lag {} ms",
            m.id,
            m.role,
            m.state,
            m.version,
            if m.healthy { "healthy" } else { "unhealthy" },
            m.replication_lag_ms
        );
    }
    for p in &health.problems {
        outln!("  problem: {p}");
    }
    let Some(l) = record else {
        if local {
            outln!("run: none from this machine (the cluster serves no run lease: runs on other machines are not shown)");
        } else {
            outln!("run: none in progress (nobody holds the cluster's run lease)");
        }
        return Ok(());
    };
    outln!("run: {}", lease::describe(l));
    outln!("  run id {}", l.run_id);
    if lease::alive_here(&l.holder) == Some(false) {
        outln!(
            "  its process is no longer running on this machine: the run ended without giving the lease back (killed, or the machine restarted). The next run from this machine that changes the cluster takes the lease over and first finishes what that run left (docs/SAFETY.md)"
        );
    }
    if local {
        outln!("  (from this machine's lock file: the cluster serves no run lease)");
    }
    match &l.paused {
        Some(p) => outln!("  {}", paused_line(p)),
        None => outln!("  not paused"),
    }
    if let Some(r) = &l.request {
        outln!(
            "  request waiting: {} by {}{} (taken at the run's next safe point)",
            text(Some(r), "action"),
            text(Some(r), "by"),
            match text(Some(r), "reason") {
                t if t.is_empty() => String::new(),
                t => format!(": {t}"),
            }
        );
    }
    if let Some((target, done, left)) = &prog {
        let list = |v: &Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        outln!(
            "  on {target}: {} of {} ({}); left: {}",
            done.len(),
            health.members.len(),
            list(done),
            list(left)
        );
    }
    Ok(())
}

/// `neumann-script pause|resume|abort`: leaves the request on the lease for its holder.
pub fn request(run: &RunOptions, action: Action, reason: &str) -> Result<(), Error> {
    let (cluster, name) = open(run)?;
    let tokio = tokio_runtime()?;
    let no_run = || {
        Error::Usage(format!(
            "no run in progress on cluster `{name}`: nobody holds its run lease, so there is nothing \
             to {action} (a run takes the lease at its first change; check the --cluster FILE)"
        ))
    };
    let held = match tokio.block_on(read_lease(&cluster))? {
        LeaseView::Held(l) => l,
        LeaseView::Free => return Err(no_run()),
        LeaseView::NoApi(_) => {
            return Err(Error::Tool(format!(
                "cluster `{name}` serves no run lease (GET /admin/lease: 404): runs there hold a lock \
                 file on their own machine and cannot be asked to {action}; use Ctrl-C in the run's \
                 terminal"
            )))
        }
    };
    let by = asker();
    let answer = match tokio.block_on(cluster.admin.lease_request(action.as_str(), &by, reason)) {
        Ok(a) => a,
        // The run ended between the two calls.
        Err(e) if e.status() == Some(404) => return Err(no_run()),
        Err(e) => {
            return Err(tool_or_inventory(
                e,
                &format!("cluster `{name}`: the {action} request failed"),
            ))
        }
    };
    if run.format == Format::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cluster": name,
                "request": answer.get("request"),
                "run": held,
            }))
            .unwrap_or_default()
        );
        return Ok(());
    }
    let whose = lease::describe(&held);
    let paused = held.paused.is_some();
    let said = match action {
        Action::Pause if paused => format!(
            "asked {whose} to pause; it is paused already ({})",
            held.paused.as_ref().map(paused_line).unwrap_or_default()
        ),
        Action::Pause => format!(
            "asked {whose} to pause at its next safe point (a step boundary, checkpoint() or gate(); \
             never between a node's stop and its start)"
        ),
        Action::Resume if paused => {
            format!("asked {whose} to resume; it goes on within about a second")
        }
        Action::Resume => format!(
            "asked {whose} to resume; it is not paused, so the request only cancels a pause it has not \
             taken yet"
        ),
        Action::Abort => format!(
            "asked {whose} to abort at its next safe point: it finishes any node mid-procedure, stops \
             safely (exit 3) and reports the cluster's state"
        ),
    };
    outln!("{said}");
    let flag = format!(
        "--cluster {}",
        shlex::try_quote(&name).map_or_else(|_| name.clone(), |q| q.into_owned())
    );
    outln!("follow it with: neumann-script {flag} status");
    Ok(())
}
