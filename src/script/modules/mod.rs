//! The script API: the static modules `cluster::`, `node::`, `raft::`, `metrics::`, `backup::`,
//! `journal::` and `version::`, one file each, and the global functions (`globals.rs`: `option`, `step`,
//! `confirm`, `sleep`, ...). `register` puts them and the typed values of `custom_types` into an engine.
//!
//! Each function is added through a `Builder` (`builder.rs`) with its parameters and a doc line; the
//! same `FnDoc` list feeds `neumann-script functions`, the REPL's help and Rhai's metadata, so they cannot
//! drift apart. The functions are thin: convert arguments, ask the run's `Ctx` (which guards, announces
//! and journals) or the cluster layer, convert the result. What they share while they run (a wait's live
//! line and event, the `force` option, JSON answers) is in `calls.rs`.
//!
//! Imports run one way: the module files import `builder.rs` and `calls.rs`, never this file, which
//! declares them and imports them all.

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

/// The modules as scripts name them (`cluster::health()`), in the order `register` builds them.
pub const NAMES: [&str; 7] = [
    "cluster", "node", "raft", "metrics", "backup", "journal", "version",
];

/// Registers the whole script API into `engine`; returns the docs of every function.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) -> Vec<FnDoc> {
    let mut docs = Vec::new();
    crate::script::custom_types::register(engine);
    globals::register(engine, ctx, &mut docs);
    let modules = [
        cluster::module(ctx, &mut docs),
        node::module(ctx, &mut docs),
        raft::module(ctx, &mut docs),
        metrics::module(ctx, &mut docs),
        backup::module(ctx, &mut docs),
        journal::module(ctx, &mut docs),
        version::module(ctx, &mut docs),
    ];
    for (name, module) in NAMES.into_iter().zip(modules) {
        engine.register_static_module(name, module.into());
    }
    docs
}
