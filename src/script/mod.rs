//! The Rhai engine and what scripts can call. It may import `lease` and the layers below it.
//!
//! - `engine.rs`: `ScriptEngine`, one Rhai engine with explicit limits and the script API, running
//!   scripts, snippets, REPL entries and `check`; `import` goes through `resolver.rs` (disk first, then the
//!   stock scripts and stdlib of `embedded.rs`);
//! - `ctx.rs`: `Ctx`, what every native function shares; `safe_point.rs` adds the run's side of pause,
//!   resume and abort, `recovery.rs` the finishing of what earlier runs left;
//! - `modules/`: the script modules (`cluster::`, `node::`, ...) and the global functions;
//! - `options.rs`: the options a script takes, read before it runs; `args.rs`: numbers and seconds as the
//!   API takes them;
//! - `diagnostics.rs`: Rhai's errors as the program's (`file:line:col`, a caret, the calls that led
//!   there, a thrown stop as its exit code) and the call check behind `check`; `stop.rs`: the stops a
//!   script throws (`safe_stop`, exit 3; `usage`, exit 2);
//! - `custom_types.rs`: the one list of the typed values scripts see; `show.rs`: how any value prints.
//!
//! Within the folder imports run one way (`tests/layers.rs`): `stop.rs` and `embedded.rs` import none of
//! it, and only the tests in `tests.rs` import `engine.rs`, which imports the rest.

pub mod args;
pub mod ctx;
pub mod custom_types;
pub mod diagnostics;
pub mod embedded;
pub mod engine;
pub mod modules;
pub mod options;
pub mod recovery;
mod resolver;
pub mod safe_point;
pub mod show;
pub mod stop;
#[cfg(test)]
mod tests;
