//! Finishing what earlier runs left (docs/SAFETY.md, "Recovery"). The first time a run is about to change
//! its cluster, with the lease in hand, it reads the journal for runs of this cluster that did not end
//! `done` and left nodes stopped, drains not lifted or the cluster paused, and puts each right before
//! anything else: a stopped node is started on the version its run was putting on it (or the one it
//! ran, when the change had not begun), a drain is lifted, a pause resumed. Every act is checked against
//! the cluster first, announced, and journaled like any other call; the journal then records the run as
//! `recovered`, so the next run does not look at it again.

use std::sync::Arc;
use std::time::Duration;

use rhai::EvalAltResult;

use super::ctx::{throw, Ctx};
use super::modules::calls::waiting;
use super::modules::node::host_op;
use super::stop::ScriptStop;
use crate::cluster::{Cluster, Force};
use crate::journal::leftovers::{self, Unfinished};
use crate::lease;
use crate::model::values::CAUGHT_UP_MS;
use crate::model::Member;
use crate::model::RhaiResult;
use crate::transport::host::HostOp;

/// How long a node started again may take to rejoin and to catch up: the stock runbooks' defaults.
const REJOIN: Duration = Duration::from_secs(300);
const CATCH_UP: Duration = Duration::from_secs(600);

/// Whether an earlier run of this run's cluster left something to finish (and its process is gone): a
/// script run then takes the lease and finishes it before its first line, so its own checks see the
/// cluster as that run should have left it. Snippets and the REPL wait for their first change.
pub fn anything_left(ctx: &Ctx) -> bool {
    let (Some(path), Some(name)) = (ctx.journal.path(), ctx.journal.cluster()) else {
        return false;
    };
    leftovers::read(path, name, ctx.journal.run_id())
        .map(|runs| runs.iter().any(|r| !alive(r)))
        .unwrap_or(false)
}

/// The run's process still runs on this machine.
fn alive(run: &Unfinished) -> bool {
    run.pid
        .is_some_and(|pid| lease::process_alive_here(&run.host, pid) == Some(true))
}

/// Finishes every earlier run of `cluster` that left something undone. `cluster` is the one this run
/// just took the lease of; only the run's own cluster (the one its journal records) is looked at.
pub fn finish_earlier_runs(ctx: &Ctx, cluster: &Arc<Cluster>) -> RhaiResult<()> {
    let (Some(path), Some(name)) = (ctx.journal.path(), ctx.journal.cluster()) else {
        return Ok(());
    };
    if crate::journal::cluster_name(&cluster.inventory.source) != name {
        return Ok(());
    }
    let runs = match leftovers::read(path, name, ctx.journal.run_id()) {
        Ok(r) => r,
        Err(e) => {
            ctx.out.warn(&format!(
                "{e}: whether an earlier run left nodes stopped, drained or the cluster paused cannot be checked"
            ));
            return Ok(());
        }
    };
    for run in runs {
        if alive(&run) {
            ctx.out.warn(&format!(
                "run {} ({}) left {}, but its process is still running on this machine: it is left to finish them itself",
                run.run_id,
                run.holder(),
                left_words(&run)
            ));
            continue;
        }
        finish(ctx, cluster, &run)?;
    }
    Ok(())
}

/// What a run left, in words: `node2 stopped, node3 drained, the cluster paused`.
fn left_words(run: &Unfinished) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (node, begun) in &run.stopped {
        parts.push(match begun {
            Some((op, v)) => format!(
                "{node} stopped in the middle of its {} {v}",
                op.trim_start_matches("node::")
            ),
            None => format!("{node} stopped"),
        });
    }
    parts.extend(run.drained.iter().map(|n| format!("{n} drained")));
    if run.paused {
        parts.push("the cluster paused".into());
    }
    parts.join(", ")
}

fn member<'a>(members: &'a [Member], id: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.id == id)
}

/// A safe stop saying what of `run` is still left, and that this run changed nothing else.
fn cannot(run: &Unfinished, why: String) -> Box<EvalAltResult> {
    ScriptStop::guard(format!(
        "could not finish what run {} left ({}): {why}. This run changed nothing else; fix that, then run it again",
        run.run_id,
        left_words(run)
    ))
}

fn finish(ctx: &Ctx, cluster: &Arc<Cluster>, run: &Unfinished) -> RhaiResult<()> {
    // Every call made for it is journaled as such (`"recovering": RUN`).
    *ctx.recovering.borrow_mut() = Some(run.run_id.clone());
    let r = finish_one(ctx, cluster, run);
    *ctx.recovering.borrow_mut() = None;
    r
}

fn finish_one(ctx: &Ctx, cluster: &Arc<Cluster>, run: &Unfinished) -> RhaiResult<()> {
    let survey = |ctx: &Ctx| {
        ctx.block_on(cluster.members())
            .map_err(|e| cannot(run, format!("the cluster could not be read: {e}")))
    };
    let members = survey(ctx)?;
    ctx.out.info(&format!(
        "resuming run {}: {} left by {} (`{}`, which {})",
        run.run_id,
        left_words(run),
        run.holder(),
        run.command,
        run.how_it_ended()
    ));
    for (id, begun) in &run.stopped {
        let Some(m) = member(&members, id) else {
            ctx.out.warn(&format!(
                "{id} is no longer in the inventory: not started again"
            ));
            continue;
        };
        if m.state != "down" {
            ctx.out
                .info(&format!("{id}: already {} on {}", m.state, m.version));
            continue;
        }
        start_again(ctx, cluster, run, id, begun.as_ref())?;
    }
    for id in &run.drained {
        let drained =
            member(&members, id).is_some_and(|m| m.state == "draining" || m.state == "drained");
        if !drained {
            continue;
        }
        ctx.out
            .info(&format!("{id}: undrain (left drained by {})", run.holder()));
        let cl = cluster.clone();
        ctx.mutate(
            "node::undrain",
            Some(id),
            serde_json::json!({ "id": id }),
            || ctx.block_on(cl.drain(id, false, &Force::No)).map_err(throw),
        )?;
    }
    if run.paused {
        let health = ctx
            .block_on(cluster.health())
            .map_err(|e| cannot(run, format!("the cluster could not be read: {e}")))?;
        if health.paused {
            // The runbook's rollback pauses the cluster so that no request meets a node on a version
            // half put back; while one it changed is down, that still holds.
            let members = survey(ctx)?;
            let down: Vec<String> = run
                .changed
                .iter()
                .filter(|(id, _)| member(&members, id).is_some_and(|m| m.state == "down"))
                .map(|(id, v)| format!("{id} is down on {v}, which that run put on it"))
                .collect();
            if !down.is_empty() {
                return Err(cannot(
                    run,
                    format!(
                        "the cluster stays PAUSED (client requests are rejected): {}. Once it runs, resume with: {}",
                        down.join("; "),
                        ctx.command_for("cluster::resume()")
                    ),
                ));
            }
            ctx.out.info(&format!(
                "resume the cluster (left paused by {})",
                run.holder()
            ));
            let cl = cluster.clone();
            ctx.mutate("cluster::resume", None, serde_json::json!({}), || {
                ctx.block_on(cl.set_paused(false)).map_err(throw)
            })?;
        }
    }
    ctx.event(
        "recovered",
        serde_json::json!({ "runs": [run.run_id], "left": left_words(run) }),
    );
    ctx.out.info(&format!(
        "finished what run {} left; this run goes on",
        run.run_id
    ));
    Ok(())
}

/// Starts a node an earlier run left stopped: first the version change that run had begun on it (an
/// install or activation cut short is done again, as its run would have), then the start, the rejoin
/// and the catch-up. Between them the node is in a critical section, as in a run's own restart: Ctrl-C
/// finishes the start before it stops.
fn start_again(
    ctx: &Ctx,
    cluster: &Arc<Cluster>,
    run: &Unfinished,
    id: &str,
    begun: Option<&(String, String)>,
) -> RhaiResult<()> {
    ctx.interrupt.enter(id);
    let result = (|| {
        if let Some((op, v)) = begun {
            let version = crate::model::policy::parse_version(v)
                .map_err(|e| cannot(run, format!("{id}: the journal's version `{v}`: {e}")))?;
            let op = if op == "node::activate" {
                HostOp::Activate(version)
            } else {
                HostOp::Install(version)
            };
            host_op(ctx, id, op, &Force::No)
                .map_err(|e| cannot(run, super::diagnostics::short(&e)))?;
        }
        host_op(ctx, id, HostOp::Start, &Force::No)
    })();
    // `host_op` leaves the critical section after a start; after a failure before it, leave it here.
    ctx.interrupt.leave(id);
    result.map_err(|e| cannot(run, super::diagnostics::short(&e)))?;
    waiting(ctx, &format!("{id} to rejoin"), |progress| {
        ctx.block_on(cluster.wait_rejoined(id, REJOIN, progress))
    })
    .map_err(|e| cannot(run, super::diagnostics::short(&e)))?;
    let m = waiting(ctx, &format!("{id} to catch up"), |progress| {
        ctx.block_on(cluster.wait_caught_up(id, CAUGHT_UP_MS, CATCH_UP, progress))
    })
    .map_err(|e| cannot(run, super::diagnostics::short(&e)))?;
    ctx.out.info(&format!(
        "{id}: on {}, rejoined, lag {} ms",
        m.version, m.replication_lag_ms
    ));
    Ok(())
}
