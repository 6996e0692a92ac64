//! neumann-script: a Rhai runtime for the upgrade runbooks of a Neumann (tensor_chain) cluster.
//!
//! Layers, top to bottom; each imports only layers below it (docs/ARCHITECTURE.md, held by
//! tests/layers.rs): `run`, `cli` (dispatch and exit codes; the arguments) → `audit` (the journal read
//! back), `steer` (status, pause, resume, abort) → `repl`, `session` (side by side: one command's tokio
//! runtime, simulator or twin, clusters, journal) → `report` (the run's timeline as a page) → `rehearse`
//! (the twin, the plan) → `script` (the Rhai engine and its modules) → `lease` (the run lease) →
//! `cluster` (operations, interlocks, waits) → `transport` (admin HTTP, Prometheus, host commands) →
//! `inventory` → `model` (typed values, policy, figures) → `notify` (webhooks). `output`, `journal`,
//! `interrupt`, `error`, `files` and `secret` are leaves any layer may use, each importing only leaves
//! after it in that list (`secret`, the last, holds the admin token and redacts it). `sim` is the
//! simulated cluster and imports nothing of the product; `session`, `rehearse` and `run` start it.

pub mod audit;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod files;
pub mod interrupt;
pub mod inventory;
pub mod journal;
pub mod lease;
pub mod model;
pub mod notify;
pub mod output;
pub mod rehearse;
pub mod repl;
pub mod report;
pub mod run;
pub mod script;
pub mod secret;
pub mod session;
pub mod sim;
pub mod steer;
pub mod transport;

pub use run::run;
