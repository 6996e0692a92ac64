//! `node::` — one node: its status, drain, service control, installs and staged builds on its host, and the waits of
//! the runbook's per-node procedure.

use std::rc::Rc;

use rhai::{Dynamic, ImmutableString, Map, Module};

use super::builder::{Builder, FnDoc};
use super::calls::{force_option, waiting};
use crate::cluster::{Force, Guarded};
use crate::model::Member;
use crate::model::RhaiResult;
use crate::script::args::{number, secs};
use crate::script::ctx::{throw, Ctx};
use crate::script::stop::{fail, refused_rule, ScriptStop};
use crate::transport::host::HostOp;

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const STATUS: &str =
        "The node's own report as a `Member`; the cluster's view of it when the \
        node cannot be reached.";
    pub const DRAIN: &str =
        "Marks the node draining: the load balancer stops sending it new requests \
        and in-flight ones finish. Refused (exit 3, nothing changed) when afterwards fewer members \
        than the quorum would be up, healthy, joined and caught up.";
    pub const UNDRAIN: &str = "Lets the node take new requests again.";
    pub const WAIT_DRAINED: &str =
        "Returns when the draining node reports no in-flight requests; throws \
        on timeout or when the node is not draining.";
    pub const STOP: &str =
        "Stops the service on the node's host (inventory template, default `systemctl \
        stop neumann`); throws when the command fails. Refused (exit 3, nothing changed) when \
        afterwards fewer members than the quorum would be up, healthy, joined and caught up, and \
        when the node leads the cluster (hand leadership over first).";
    pub const START: &str =
        "Starts the service on the node's host (default `systemctl start neumann`); \
        follow with `node::wait_rejoined`.";
    pub const RESTART: &str =
        "Restarts the service on the node's host (default `systemctl restart \
        neumann`). Held to the quorum and the leader like `stop`.";
    pub const INSTALL: &str =
        "Installs `version` on the node's host (default `cargo install neumann \
        --version {version}`). The version must parse as semver before anything runs; throws when \
        the install fails. Refused (exit 3, nothing changed) when `version` is more than one minor \
        version from a running member (the skew policy).";
    pub const STAGE: &str =
        "Installs `version` beside the running one while the node keeps serving (default `cargo install \
        neumann --version {version} --root /opt/neumann/{version}`); throws when it fails. Refused (exit \
        3, nothing changed) when `version` is more than one minor version from a running member.";
    pub const STAGE_ALL: &str =
        "Stages `version` on every node of `ids`, at most `parallel` at a time; returns when all are \
        staged. Every node's interlock is checked before any staging starts; when one fails the others \
        finish and the call throws naming each failed node. Nothing is stopped.";
    pub const ACTIVATE: &str =
        "Points the stopped node's service at a staged `version` (default `ln -sfn \
        /opt/neumann/{version}/bin/neumann /usr/local/bin/neumann`): the version it runs at its next \
        start. Throws when the command fails (in the simulator, when `version` was not staged). Held to \
        the skew policy like `install`.";
    pub const LABELS: &str =
        "The node's inventory labels (`labels = { zone = \"eu-1a\" }`) as a map of strings; empty when \
        it has none. Read from the inventory: nothing is asked of the cluster.";
    pub const INSTALL_ALL: &str =
        "Installs `version` on every node of `ids` at once (the nodes of one batch, stopped); returns \
        when every install has ended. Every node's skew interlock is checked before any install starts; \
        when one fails the others finish and the call throws naming each failed node.";
    pub const EXEC: &str =
        "Runs an ad-hoc shell command on the node's host: #{status, stdout, stderr}. \
        A non-zero exit is a result, not an error.";
    pub const WAIT_REJOINED: &str =
        "Returns when the node answers on its admin API as a healthy member \
        that knows the leader; throws at once if it refused to join (version skew), or on timeout.";
    pub const WAIT_CAUGHT_UP: &str = "Returns when the node's replication lag is at or below \
        `max_lag_ms`; throws on timeout with the lag last seen.";
    pub const FORCED: &str = "As above, with `options` as the last argument: `#{force: true}` goes \
        past every interlock that would refuse the call (quorum, leader, version skew), loudly and \
        journaled; `#{force: \"leader\"}` (a rule's name, or an array of names) goes past only that one. \
        For emergencies only: see docs/SAFETY.md.";
}

/// Runs a host operation, journaled, behind its interlock (`force` goes past it). Between `stop` and
/// `start` a node is in a critical section: Ctrl-C waits for the start rather than leave the node down.
pub(crate) fn host_op(
    c: &Ctx,
    id: &str,
    op: HostOp,
    force: &Force,
) -> RhaiResult<crate::transport::host::ExecOutput> {
    let cl = c.cluster()?;
    let spec = cl.node(id).map_err(throw)?;
    let command = op.command(spec);
    c.hold_lease()?;
    let mut args = match &op {
        HostOp::Install(v) | HostOp::Stage(v) | HostOp::Activate(v) => {
            serde_json::json!({ "id": id, "version": v.to_string(), "command": command })
        }
        _ => serde_json::json!({ "id": id, "command": command }),
    };
    if force.any() {
        args["force"] = force.to_json();
    }
    let name = format!("node::{}", op.name());
    let overrode = match Guarded::of_host(id, &op).map(|g| c.gate(&cl, &g, force)) {
        Some(Ok(o)) => o,
        // Refused: journaled as such, and never announced as if it ran.
        Some(Err(e)) if refused_rule(&e).is_some() => {
            return c.mutate(&name, Some(id), args, || Err(e))
        }
        // The cluster could not be asked: nothing was attempted.
        Some(Err(e)) => return Err(e),
        None => Vec::new(),
    };
    c.out.info(&format!("{id}: {} (`{command}`)", op.name()));
    let leaves = matches!(op, HostOp::Start | HostOp::Restart);
    if c.settings.rehearsal {
        if let HostOp::Exec(_) = op {
            // The twin's host is simulated: its answer would stand in for the live node's.
            return c.mutate("node::exec", Some(id), args, || {
                Ok(crate::transport::host::ExecOutput::not_run())
            });
        }
    }
    let takes_down = matches!(op, HostOp::Stop | HostOp::Restart);
    let result = c.mutate_overriding(&name, Some(id), args, &overrode, || {
        let stop = op == HostOp::Stop;
        if stop {
            c.interrupt.enter(id);
        }
        // The interlock was asked just above (`gate`); asking again would survey the whole cluster a
        // second time for every operation, milliseconds apart.
        c.block_on(cl.host(id, op, &Force::All)).map_err(throw)
    });
    if leaves {
        c.interrupt.leave(id);
    }
    if takes_down && result.is_ok() {
        // Stopped or restarted: the drain is the service's to clear now, not the interrupt's.
        c.drained.borrow_mut().remove(id);
    }
    result
}

/// Installs `version` behind the skew interlock; the version must parse before anything runs.
fn install(c: &Ctx, id: &str, version: &Dynamic, force: &Force) -> RhaiResult<()> {
    let v = super::version::to_semver(version)
        .map_err(|e| ScriptStop::usage(format!("{id}: install: {e}")))?;
    host_op(c, id, HostOp::Install(v), force).map(|_| ())
}

/// A version-changing host operation (`install`, `stage`, `activate`) behind the skew interlock; the
/// version must parse before anything runs.
fn put_version(
    c: &Ctx,
    id: &str,
    version: &Dynamic,
    force: &Force,
    op: fn(semver::Version) -> HostOp,
    name: &str,
) -> RhaiResult<()> {
    let v = super::version::to_semver(version)
        .map_err(|e| ScriptStop::usage(format!("{id}: {name}: {e}")))?;
    host_op(c, id, op(v), force).map(|_| ())
}

/// Stages `version` on every node of `ids`, at most `parallel` at once. All interlocks are asked first,
/// so a refusal changes nothing anywhere; a failed staging lets the others finish (a half-built tree
/// helps nobody) and then throws naming every node that failed.
fn stage_all(
    c: &Ctx,
    ids: &rhai::Array,
    version: &Dynamic,
    parallel: &Dynamic,
    force: &Force,
) -> RhaiResult<()> {
    let p = number(parallel, "node::stage_all: parallel")?;
    if !(p >= 1.0 && p.fract() == 0.0) {
        return Err(ScriptStop::usage(format!(
            "node::stage_all: parallel must be a whole number of at least 1, not {p}"
        )));
    }
    on_all(c, ids, version, p as usize, force, HostOp::Stage)
}

/// Installs `version` on every node of `ids` at once: a batch's installs overlap, as its nodes' restarts
/// do, so a batch of K is not K installs long.
fn install_all(c: &Ctx, ids: &rhai::Array, version: &Dynamic, force: &Force) -> RhaiResult<()> {
    on_all(c, ids, version, ids.len().max(1), force, HostOp::Install)
}

/// A version-changing host operation on every node of `ids`, at most `parallel` at once, behind every
/// node's skew interlock asked before any starts.
fn on_all(
    c: &Ctx,
    ids: &rhai::Array,
    version: &Dynamic,
    parallel: usize,
    force: &Force,
    op: fn(semver::Version) -> HostOp,
) -> RhaiResult<()> {
    let name = op(semver::Version::new(0, 0, 0)).name();
    let call = format!("node::{name}_all");
    let ids: Vec<String> = ids
        .iter()
        .map(|d| {
            d.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|t| ScriptStop::usage(format!("{call}: ids must be strings, not {t}")))
        })
        .collect::<Result<_, _>>()?;
    let v = super::version::to_semver(version)
        .map_err(|e| ScriptStop::usage(format!("{call}: {e}")))?;
    let cl = c.cluster()?;
    c.hold_lease()?;
    let mut commands = Vec::new();
    for id in &ids {
        commands.push(op(v.clone()).command(cl.node(id).map_err(throw)?));
    }
    let mut args = serde_json::json!({
        "ids": ids, "version": v.to_string(), "parallel": parallel, "commands": commands
    });
    if force.any() {
        args["force"] = force.to_json();
    }
    // Every node's interlock before any compile starts: a refusal for one changes nothing on any.
    let mut overrides = Vec::new();
    for id in &ids {
        let g = Guarded::Version {
            id,
            op: name,
            version: &v,
        };
        match c.gate(&cl, &g, force) {
            Ok(o) => overrides.extend(o),
            Err(e) if refused_rule(&e).is_some() => return c.mutate(&call, None, args, || Err(e)),
            Err(e) => return Err(e),
        }
    }
    let doing = if name == "stage" {
        "staging"
    } else {
        "installing"
    };
    c.out.info(&format!(
        "{doing} {v} on {} ({} at a time)",
        ids.join(", "),
        parallel.min(ids.len()).max(1)
    ));
    c.mutate_overriding(&call, None, args, &overrides, || {
        use futures_util::stream::StreamExt;
        let cl = cl.clone();
        let results = c
            .block_on(async {
                let runs = futures_util::stream::iter(ids.iter().map(|id| {
                    let cl = cl.clone();
                    let op = op(v.clone());
                    // force: the interlocks were all asked above, for the cluster as it was then.
                    async move { (id.clone(), cl.host(id, op, &Force::All).await) }
                }))
                .buffer_unordered(parallel)
                .collect::<Vec<_>>()
                .await;
                Ok(runs)
            })
            .map_err(throw)?;
        // An install changes what the node runs next; a staged build changes nothing that runs.
        if name == "install" {
            c.touched.borrow_mut().extend(ids.iter().cloned());
        }
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|(_, r)| r.err().map(|e| e.to_string()))
            .collect();
        match failed.is_empty() {
            true => Ok(()),
            false => Err(fail(format!(
                "{doing} {v} failed on {} of {} node(s): {}",
                failed.len(),
                ids.len(),
                failed.join("; ")
            ))),
        }
    })
}

/// Drains a node behind the quorum interlock; remembered so an interrupted run undrains it.
fn drain(c: &Ctx, id: &str, force: &Force) -> RhaiResult<()> {
    c.hold_lease()?;
    let cl = c.cluster()?;
    let mut args = serde_json::json!({ "id": id });
    if force.any() {
        args["force"] = force.to_json();
    }
    let overrode = match c.gate(&cl, &Guarded::TakeDown { id, op: "drain" }, force) {
        Ok(o) => o,
        Err(e) if refused_rule(&e).is_some() => {
            return c.mutate("node::drain", Some(id), args, || Err(e))
        }
        Err(e) => return Err(e),
    };
    c.out.info(&format!("{id}: drain"));
    c.mutate_overriding("node::drain", Some(id), args, &overrode, || {
        // Before the call: Ctrl-C may abandon it after the node has already taken the drain.
        c.drained.borrow_mut().insert(id.to_string());
        // The interlock was asked just above (`gate`), for the cluster as it is now.
        c.block_on(cl.drain(id, true, &Force::All)).map_err(throw)
    })
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("node", ctx, docs);
    b.add("status", &["id: String"], "Member", doc::STATUS, |c| {
        move |id: ImmutableString| -> RhaiResult<Member> {
            c.block_on(c.cluster()?.node_status(&id)).map_err(throw)
        }
    });
    b.add("drain", &["id: String"], "", doc::DRAIN, |c| {
        move |id: ImmutableString| -> RhaiResult<()> { drain(&c, &id, &Force::No) }
    });
    b.add(
        "drain",
        &["id: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, options: Map| -> RhaiResult<()> {
                drain(&c, &id, &force_option(&options, "node::drain")?)
            }
        },
    );
    b.add("undrain", &["id: String"], "", doc::UNDRAIN, |c| {
        move |id: ImmutableString| -> RhaiResult<()> {
            c.hold_lease()?;
            c.out.info(&format!("{id}: undrain"));
            let cl = c.cluster()?;
            let r = c.mutate(
                "node::undrain",
                Some(&id),
                serde_json::json!({ "id": id.as_str() }),
                || c.block_on(cl.drain(&id, false, &Force::No)).map_err(throw),
            );
            if r.is_ok() {
                c.drained.borrow_mut().remove(id.as_str());
            }
            r
        }
    });
    b.add(
        "wait_drained",
        &["id: String", "timeout: float"],
        "",
        doc::WAIT_DRAINED,
        |c| {
            move |id: ImmutableString, timeout: Dynamic| -> RhaiResult<()> {
                let t = secs(&timeout, "timeout")?;
                let cl = c.cluster()?;
                waiting(&c, &format!("{id} to drain"), |progress| {
                    c.block_on(cl.wait_drained(&id, t, progress))
                })
            }
        },
    );
    b.add("stop", &["id: String"], "", doc::STOP, |c| {
        move |id: ImmutableString| -> RhaiResult<()> {
            host_op(&c, &id, HostOp::Stop, &Force::No).map(|_| ())
        }
    });
    b.add(
        "stop",
        &["id: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::stop")?;
                host_op(&c, &id, HostOp::Stop, force).map(|_| ())
            }
        },
    );
    b.add("start", &["id: String"], "", doc::START, |c| {
        move |id: ImmutableString| -> RhaiResult<()> {
            host_op(&c, &id, HostOp::Start, &Force::No).map(|_| ())
        }
    });
    b.add("restart", &["id: String"], "", doc::RESTART, |c| {
        move |id: ImmutableString| -> RhaiResult<()> {
            host_op(&c, &id, HostOp::Restart, &Force::No).map(|_| ())
        }
    });
    b.add(
        "restart",
        &["id: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::restart")?;
                host_op(&c, &id, HostOp::Restart, force).map(|_| ())
            }
        },
    );
    b.add(
        "install",
        &["id: String", "version: String"],
        "",
        doc::INSTALL,
        |c| {
            move |id: ImmutableString, version: Dynamic| -> RhaiResult<()> {
                install(&c, &id, &version, &Force::No)
            }
        },
    );
    b.add(
        "install",
        &["id: String", "version: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, version: Dynamic, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::install")?;
                install(&c, &id, &version, force)
            }
        },
    );
    b.add(
        "stage",
        &["id: String", "version: String"],
        "",
        doc::STAGE,
        |c| {
            move |id: ImmutableString, version: Dynamic| -> RhaiResult<()> {
                put_version(&c, &id, &version, &Force::No, HostOp::Stage, "stage")
            }
        },
    );
    b.add(
        "stage",
        &["id: String", "version: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, version: Dynamic, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::stage")?;
                put_version(&c, &id, &version, force, HostOp::Stage, "stage")
            }
        },
    );
    b.add(
        "activate",
        &["id: String", "version: String"],
        "",
        doc::ACTIVATE,
        |c| {
            move |id: ImmutableString, version: Dynamic| -> RhaiResult<()> {
                put_version(&c, &id, &version, &Force::No, HostOp::Activate, "activate")
            }
        },
    );
    b.add(
        "activate",
        &["id: String", "version: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |id: ImmutableString, version: Dynamic, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::activate")?;
                put_version(&c, &id, &version, force, HostOp::Activate, "activate")
            }
        },
    );
    b.add(
        "stage_all",
        &["ids: Array", "version: String", "parallel: int"],
        "",
        doc::STAGE_ALL,
        |c| {
            move |ids: rhai::Array, version: Dynamic, parallel: Dynamic| -> RhaiResult<()> {
                stage_all(&c, &ids, &version, &parallel, &Force::No)
            }
        },
    );
    b.add(
        "stage_all",
        &[
            "ids: Array",
            "version: String",
            "parallel: int",
            "options: Map",
        ],
        "",
        doc::FORCED,
        |c| {
            move |ids: rhai::Array,
                  version: Dynamic,
                  parallel: Dynamic,
                  options: Map|
                  -> RhaiResult<()> {
                let force = &force_option(&options, "node::stage_all")?;
                stage_all(&c, &ids, &version, &parallel, force)
            }
        },
    );
    b.add(
        "install_all",
        &["ids: Array", "version: String"],
        "",
        doc::INSTALL_ALL,
        |c| {
            move |ids: rhai::Array, version: Dynamic| -> RhaiResult<()> {
                install_all(&c, &ids, &version, &Force::No)
            }
        },
    );
    b.add(
        "install_all",
        &["ids: Array", "version: String", "options: Map"],
        "",
        doc::FORCED,
        |c| {
            move |ids: rhai::Array, version: Dynamic, options: Map| -> RhaiResult<()> {
                let force = &force_option(&options, "node::install_all")?;
                install_all(&c, &ids, &version, force)
            }
        },
    );
    b.add("labels", &["id: String"], "Map", doc::LABELS, |c| {
        move |id: ImmutableString| -> RhaiResult<Map> {
            let cl = c.cluster()?;
            let spec = cl.node(&id).map_err(throw)?;
            Ok(spec
                .labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
                .collect())
        }
    });
    b.add(
        "exec",
        &["id: String", "command: String"],
        "Map",
        doc::EXEC,
        |c| {
            move |id: ImmutableString, command: ImmutableString| -> RhaiResult<Map> {
                let out = host_op(&c, &id, HostOp::Exec(command.to_string()), &Force::No)?;
                Ok(out.to_map())
            }
        },
    );
    b.add(
        "wait_rejoined",
        &["id: String", "timeout: float"],
        "Member",
        doc::WAIT_REJOINED,
        |c| {
            move |id: ImmutableString, timeout: Dynamic| -> RhaiResult<Member> {
                let t = secs(&timeout, "timeout")?;
                let cl = c.cluster()?;
                let started = std::time::Instant::now();
                let r = waiting(&c, &format!("{id} to rejoin"), |progress| {
                    c.block_on(cl.wait_rejoined(&id, t, progress))
                });
                super::calls::waited(&c, "rejoined", Some(&id), started, r)
            }
        },
    );
    b.add(
        "wait_caught_up",
        &["id: String", "max_lag_ms: float", "timeout: float"],
        "Member",
        doc::WAIT_CAUGHT_UP,
        |c| {
            move |id: ImmutableString, max_lag: Dynamic, timeout: Dynamic| -> RhaiResult<Member> {
                let t = secs(&timeout, "timeout")?;
                let max_lag_ms = number(&max_lag, "max_lag_ms")?;
                if !(0.0..=86_400_000.0).contains(&max_lag_ms) {
                    return Err(fail(format!(
                        "max_lag_ms must be between 0 and a day in milliseconds, not {max_lag_ms}"
                    )));
                }
                // Lag is reported in whole milliseconds: a bound of 99.5 admits what 99 admits.
                let max_lag_ms = max_lag_ms.floor() as i64;
                let cl = c.cluster()?;
                let started = std::time::Instant::now();
                let r = waiting(
                    &c,
                    &format!("{id} to catch up (lag <= {max_lag_ms} ms)"),
                    |progress| c.block_on(cl.wait_caught_up(&id, max_lag_ms, t, progress)),
                );
                super::calls::waited(&c, "caught_up", Some(&id), started, r)
            }
        },
    );
    b.build()
}
