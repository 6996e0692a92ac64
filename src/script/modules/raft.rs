//! `raft::` — consensus state and leadership transfer.

use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, ImmutableString, Module};

use super::{secs, waiting, Builder, FnDoc, RhaiResult};
use crate::model::RaftStatus;
use crate::script::ctx::{throw, Ctx};

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const STATUS: &str = "Raft state: leader, term, commit_index, nodes (array of #{id, role, \
        commit_index, applied_index, match_index}).";
    pub const LEADER: &str = "The id of the current leader; throws when there is none (same as \
        `cluster::leader()`).";
    pub const TRANSFER_LEADERSHIP: &str = "Asks the leader to hand over to `to` and returns once `to` \
        leads (waits up to 30 s). Throws when `to` is unknown, down, draining, behind, or older than \
        the current leader.";
    pub const TRANSFER_LEADERSHIP_2: &str =
        "As `transfer_leadership(to)`, waiting up to `timeout` \
        seconds for `to` to lead.";
}

/// How long `transfer_leadership(to)` waits for `to` to lead.
const TRANSFER_WAIT: Duration = Duration::from_secs(30);

fn transfer(c: &Ctx, to: &str, wait: Duration) -> RhaiResult<RaftStatus> {
    let cl = c.cluster()?;
    c.hold_lease()?;
    c.out.info(&format!("transfer leadership to {to}"));
    let args = serde_json::json!({ "to": to, "wait_secs": wait.as_secs_f64() });
    c.mutate("raft::transfer_leadership", Some(to), args, || {
        waiting(c, &format!("{to} to lead"), |report| {
            c.block_on(cl.transfer_leadership(to, wait, report))
        })
    })
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::new("raft", docs);
    let c = ctx.clone();
    b.add(
        "status",
        &[],
        "RaftStatus",
        doc::STATUS,
        move || -> RhaiResult<RaftStatus> { c.block_on(c.cluster()?.raft_status()).map_err(throw) },
    );
    let c = ctx.clone();
    b.add(
        "leader",
        &[],
        "String",
        doc::LEADER,
        move || -> RhaiResult<String> { c.block_on(c.cluster()?.leader()).map_err(throw) },
    );
    let c = ctx.clone();
    b.add(
        "transfer_leadership",
        &["to: String"],
        "RaftStatus",
        doc::TRANSFER_LEADERSHIP,
        move |to: ImmutableString| -> RhaiResult<RaftStatus> { transfer(&c, &to, TRANSFER_WAIT) },
    );
    let c = ctx.clone();
    b.add(
        "transfer_leadership",
        &["to: String", "timeout: float"],
        "RaftStatus",
        doc::TRANSFER_LEADERSHIP_2,
        move |to: ImmutableString, timeout: Dynamic| -> RhaiResult<RaftStatus> {
            transfer(&c, &to, secs(&timeout, "timeout")?)
        },
    );
    b.build()
}
