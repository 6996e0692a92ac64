//! `cluster::` — the cluster as a whole.

use std::rc::Rc;

use std::sync::Arc;

use rhai::{Array, Dynamic, ImmutableString, Map, Module};

use super::builder::{Builder, FnDoc};
use super::calls::{json_to_dynamic, waiting};
use crate::model::RhaiResult;
use crate::model::{ClusterHealth, Member};
use crate::script::args::secs;
use crate::script::ctx::{throw, Ctx};
use crate::script::stop::{fail, ScriptStop};

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const HEALTH: &str = "The cluster's health: status (\"healthy\" | \"degraded\" | \
        \"unavailable\"), healthy, leader, term, commit_index, members, healthy_members, quorum, \
        paused, problems.";
    pub const MEMBERS: &str =
        "Every member as a `Member`: id, address, role, state (\"up\" | \"down\" | \
        \"draining\" | \"drained\"), healthy, version, commit_index, applied_index, \
        replication_lag_ms.";
    pub const VERSIONS: &str = "The version each member runs: a map of id -> version string.";
    pub const LEADER: &str = "The id of the current leader; throws when there is none.";
    pub const FOLLOWERS: &str = "The ids of every member that is not the leader.";
    pub const PAUSE: &str =
        "Stops the cluster accepting new client requests (cluster-wide, via any \
        node).";
    pub const RESUME: &str = "Lets the cluster accept client requests again.";
    pub const WAIT_HEALTHY: &str =
        "Returns when every member is up, healthy and caught up (lag within \
        100 ms) and there is a leader; on timeout throws naming each unhealthy member and why. \
        Throws at once when the cluster's member list and the inventory disagree, naming the \
        members on one side only: waiting cannot fix that.";
    pub const TEST_TRANSACTION: &str =
        "Writes and reads back a probe key through the leader: #{ok, \
        latency_ms, leader}; throws when the write fails.";
    pub const SWITCH_TRAFFIC: &str =
        "Moves client traffic with the inventory's [blue_green] switch \
        command, `{to}` replaced by `to` (\"green\" or \"blue\"), run on this machine: #{status, \
        stdout, stderr}; throws when it exits non-zero.";
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("cluster", ctx, docs);
    b.add("health", &[], "ClusterHealth", doc::HEALTH, |c| {
        move || -> RhaiResult<ClusterHealth> { c.block_on(c.cluster()?.health()).map_err(throw) }
    });
    b.add("members", &[], "Array", doc::MEMBERS, |c| {
        move || -> RhaiResult<Array> {
            let members: Vec<Member> = c.block_on(c.cluster()?.members()).map_err(throw)?;
            Ok(members.into_iter().map(Dynamic::from).collect())
        }
    });
    b.add("versions", &[], "Map", doc::VERSIONS, |c| {
        move || -> RhaiResult<Map> {
            let v = c.block_on(c.cluster()?.versions()).map_err(throw)?;
            Ok(v.into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v)))
                .collect())
        }
    });
    b.add("leader", &[], "String", doc::LEADER, |c| {
        move || -> RhaiResult<String> { c.block_on(c.cluster()?.leader()).map_err(throw) }
    });
    b.add("followers", &[], "Array", doc::FOLLOWERS, |c| {
        move || -> RhaiResult<Array> {
            let f = c.block_on(c.cluster()?.followers()).map_err(throw)?;
            Ok(f.into_iter().map(Dynamic::from).collect())
        }
    });
    b.add("pause", &[], "", doc::PAUSE, |c| {
        move || -> RhaiResult<()> {
            c.hold_lease()?;
            c.out
                .info("pause the cluster: new client requests are rejected until resume");
            let cl = c.cluster()?;
            // Remembered before it is sent: a pause cut short may still have landed, and a run that stops
            // early resumes what it paused (`Ctx::resume_after_stop`) once it has looked.
            c.paused.borrow_mut().push(cl.clone());
            c.mutate("cluster::pause", None, serde_json::json!({}), || {
                c.block_on(cl.set_paused(true)).map_err(throw)
            })
        }
    });
    b.add("resume", &[], "", doc::RESUME, |c| {
        move || -> RhaiResult<()> {
            c.hold_lease()?;
            c.out.info("resume the cluster");
            let cl = c.cluster()?;
            c.mutate("cluster::resume", None, serde_json::json!({}), || {
                c.block_on(cl.set_paused(false)).map_err(throw)
            })?;
            c.paused.borrow_mut().retain(|p| !Arc::ptr_eq(p, &cl));
            Ok(())
        }
    });
    b.add(
        "wait_healthy",
        &["timeout: float"],
        "ClusterHealth",
        doc::WAIT_HEALTHY,
        |c| {
            move |timeout: Dynamic| -> RhaiResult<ClusterHealth> {
                let t = secs(&timeout, "timeout")?;
                let cl = c.cluster()?;
                let started = std::time::Instant::now();
                let r = waiting(&c, "the cluster to be healthy", |progress| {
                    c.block_on(cl.wait_healthy(t, progress))
                });
                super::calls::waited(&c, "healthy", None, started, r)
            }
        },
    );
    b.add("test_transaction", &[], "Map", doc::TEST_TRANSACTION, |c| {
        move || -> RhaiResult<Dynamic> {
            let v = c.block_on(c.cluster()?.test_transaction()).map_err(throw)?;
            json_to_dynamic(&v)
        }
    });
    b.add(
        "switch_traffic",
        &["to: String"],
        "Map",
        doc::SWITCH_TRAFFIC,
        |c| move |to: ImmutableString| -> RhaiResult<Map> {
            if to != "green" && to != "blue" {
                return Err(ScriptStop::usage(format!(
                    "cluster::switch_traffic: `to` is \"green\" or \"blue\", not \"{to}\""
                )));
            }
            let cl = c.cluster()?;
            let Some(bg) = cl.inventory.blue_green.clone() else {
                return Err(ScriptStop::usage(format!(
                    "cluster::switch_traffic: the inventory `{}` has no [blue_green] section \
                     with a switch command",
                    cl.inventory.source.display()
                )));
            };
            // A simulated cluster without a switch command moves its simulated clients; a real one must
            // say how its traffic moves.
            let command = match (&bg.switch, cl.inventory.sim_control.is_some()) {
                (Some(t), _) => Some(crate::transport::host::substitute(t, "to", &to)),
                (None, true) => None,
                (None, false) => {
                    return Err(ScriptStop::usage(format!(
                        "cluster::switch_traffic: the inventory `{}` has no `switch` command under [blue_green]",
                        cl.inventory.source.display()
                    )))
                }
            };
            let shown = command.clone().unwrap_or_else(|| "the simulator's traffic switch".into());
            c.hold_lease()?;
            c.out.info(&format!("switch traffic to {to} (`{shown}`)"));
            let args = serde_json::json!({ "to": to.as_str(), "command": shown });
            c.mutate("cluster::switch_traffic", None, args, || {
                let out = if c.settings.rehearsal {
                    crate::transport::host::ExecOutput::not_run()
                } else {
                    c.block_on(cl.switch_traffic(&to, command.as_deref()))
                        .map_err(throw)?
                };
                if out.status != 0 {
                    return Err(fail(format!(
                        "switch traffic to {to} failed: `{shown}` exited with status {}: {}",
                        out.status,
                        out.stderr.trim()
                    )));
                }
                Ok(out.to_map())
            })
        },
    );
    b.build()
}
