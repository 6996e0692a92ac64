//! `raft::` — consensus state and leadership transfer.

use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, ImmutableString, Map, Module};

use super::builder::{Builder, FnDoc};
use super::calls::{force_option, waiting};
use crate::cluster::{Force, Guarded};
use crate::model::RaftStatus;
use crate::model::RhaiResult;
use crate::script::args::secs;
use crate::script::ctx::{throw, Ctx};
use crate::script::stop::refused_rule;

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const STATUS: &str = "Raft state: leader, term, commit_index, nodes (array of #{id, role, \
        commit_index, applied_index, match_index}).";
    pub const LEADER: &str = "The id of the current leader; throws when there is none (same as \
        `cluster::leader()`).";
    pub const TRANSFER_LEADERSHIP: &str =
        "Asks the leader to hand over to `to` and returns once `to` \
        leads (waits up to 30 s). Throws when `to` is unknown, down or draining; a `to` older than \
        the leader or behind it is refused (exit 3) before the cluster is asked.";
    pub const TRANSFER_LEADERSHIP_2: &str =
        "As `transfer_leadership(to)`, waiting up to `timeout` \
        seconds for `to` to lead.";
    pub const TRANSFER_FORCED: &str =
        "As above, with `options` as the last argument: `#{force: true}` \
        goes past the interlock that refuses an older or lagging target (`#{force: \"transfer target\"}` \
        names it alone), loudly and journaled. For emergencies only: see docs/SAFETY.md.";
}

/// How long `transfer_leadership(to)` waits for `to` to lead.
const TRANSFER_WAIT: Duration = Duration::from_secs(30);

fn transfer(c: &Ctx, to: &str, wait: Duration, force: &Force) -> RhaiResult<RaftStatus> {
    let cl = c.cluster()?;
    c.hold_lease()?;
    let mut args = serde_json::json!({ "to": to, "wait_secs": wait.as_secs_f64() });
    if force.any() {
        args["force"] = force.to_json();
    }
    let op = "raft::transfer_leadership";
    let overrode = match c.gate(&cl, &Guarded::Transfer { to }, force) {
        Ok(o) => o,
        // Refused before the cluster is asked: journaled, and no wait is shown.
        Err(e) if refused_rule(&e).is_some() => return c.mutate(op, Some(to), args, || Err(e)),
        Err(e) => return Err(e),
    };
    c.out.info(&format!("transfer leadership to {to}"));
    c.mutate_overriding(op, Some(to), args, &overrode, || {
        waiting(c, &format!("{to} to lead"), |progress| {
            // The interlock was asked just above (`gate`).
            c.block_on(cl.transfer_leadership(to, wait, &Force::All, progress))
        })
    })
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("raft", ctx, docs);
    b.add("status", &[], "RaftStatus", doc::STATUS, |c| {
        move || -> RhaiResult<RaftStatus> { c.block_on(c.cluster()?.raft_status()).map_err(throw) }
    });
    b.add("leader", &[], "String", doc::LEADER, |c| {
        move || -> RhaiResult<String> { c.block_on(c.cluster()?.leader()).map_err(throw) }
    });
    b.add(
        "transfer_leadership",
        &["to: String"],
        "RaftStatus",
        doc::TRANSFER_LEADERSHIP,
        |c| {
            move |to: ImmutableString| -> RhaiResult<RaftStatus> {
                transfer(&c, &to, TRANSFER_WAIT, &Force::No)
            }
        },
    );
    b.add(
        "transfer_leadership",
        &["to: String", "options: Map"],
        "RaftStatus",
        doc::TRANSFER_FORCED,
        |c| {
            move |to: ImmutableString, options: Map| -> RhaiResult<RaftStatus> {
                let force = &force_option(&options, "raft::transfer_leadership")?;
                transfer(&c, &to, TRANSFER_WAIT, force)
            }
        },
    );
    b.add(
        "transfer_leadership",
        &["to: String", "timeout: float"],
        "RaftStatus",
        doc::TRANSFER_LEADERSHIP_2,
        |c| {
            move |to: ImmutableString, timeout: Dynamic| -> RhaiResult<RaftStatus> {
                transfer(&c, &to, secs(&timeout, "timeout")?, &Force::No)
            }
        },
    );
    b.add(
        "transfer_leadership",
        &["to: String", "timeout: float", "options: Map"],
        "RaftStatus",
        doc::TRANSFER_FORCED,
        |c| {
            move |to: ImmutableString, timeout: Dynamic, options: Map| -> RhaiResult<RaftStatus> {
                let force = &force_option(&options, "raft::transfer_leadership")?;
                transfer(&c, &to, secs(&timeout, "timeout")?, force)
            }
        },
    );
    b.build()
}
