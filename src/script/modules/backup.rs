//! `backup::` — snapshot status and taking a snapshot on the leader.

use std::rc::Rc;

use rhai::{Dynamic, Module};

use super::builder::{Builder, FnDoc};
use super::calls::json_to_dynamic;
use crate::model::RhaiResult;
use crate::script::ctx::{throw, Ctx};

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const STATUS: &str =
        "The latest snapshot: #{ok, last_snapshot_at (unix seconds or ()), age_secs \
        (or ()), index}.";
    pub const SNAPSHOT: &str =
        "Takes a snapshot on the leader (`POST /admin/snapshot`) and returns the \
        new snapshot's status map.";
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("backup", ctx, docs);
    b.add("status", &[], "Map", doc::STATUS, |c| {
        move || -> RhaiResult<Dynamic> {
            let v = c.block_on(c.cluster()?.backup_status()).map_err(throw)?;
            json_to_dynamic(&v)
        }
    });
    b.add("snapshot", &[], "Map", doc::SNAPSHOT, |c| {
        move || -> RhaiResult<Dynamic> {
            c.hold_lease()?;
            c.out.info("take a snapshot on the leader");
            let cl = c.cluster()?;
            let v = c.mutate("backup::snapshot", None, serde_json::json!({}), || {
                c.block_on(cl.snapshot()).map_err(throw)
            })?;
            json_to_dynamic(&v)
        }
    });
    b.build()
}
