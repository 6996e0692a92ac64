//! neumann-script: a Rhai runtime for the upgrade runbooks of a Neumann (tensor_chain) cluster.
//!
//! Layers, top to bottom: `cli` and `run` (arguments, exit codes) → `runtime` (the Rhai engine) →
//! `api` (the script functions) → `ops` (cluster operations and waits) → `admin` (HTTP) and `host`
//! (service commands) → the cluster, real or `sim`ulated.

pub mod admin;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod host;
pub mod inventory;
pub mod ops;
pub mod rehearse;
pub mod repl;
pub mod run;
pub mod runtime;
pub mod sim;

pub use run::run;
