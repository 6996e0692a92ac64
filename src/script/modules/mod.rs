//! The script API: static modules `cluster::`, `node::`, `raft::`, `metrics::`, `backup::`,
//! `journal::`, `version::`, the global functions, and the typed values they return.
//!
//! Each function is registered with its parameters and a doc line; the same list is kept in `FnDoc`s
//! so `neumann-script functions`, the docs and Rhai's metadata cannot drift apart. Functions here are thin:
//! convert arguments, call the cluster layer (`crate::cluster`), convert the result, and say what is being done.

pub mod backup;
pub mod cluster;
pub mod globals;
pub mod journal;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod version;

pub mod builder;
pub mod calls;

use std::rc::Rc;

use rhai::Engine;

use crate::script::ctx::Ctx;
use builder::FnDoc;

/// Registers the whole script API into `engine`; returns the docs of every function.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) -> Vec<FnDoc> {
    let mut docs = Vec::new();
    crate::script::custom_types::register(engine);
    globals::register(engine, ctx, &mut docs);
    let modules = [
        ("cluster", cluster::module(ctx, &mut docs)),
        ("node", node::module(ctx, &mut docs)),
        ("raft", raft::module(ctx, &mut docs)),
        ("metrics", metrics::module(ctx, &mut docs)),
        ("backup", backup::module(ctx, &mut docs)),
        ("journal", journal::module(ctx, &mut docs)),
        ("version", version::module(ctx, &mut docs)),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
    docs
}
