//! The Rhai engine (limits, the import resolver, error reports, how values are shown) and the script
//! modules it registers (`cluster::`, `node::`, ...). Imports the cluster layer and everything below it.

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
