//! One integration-test binary: the real program against simulated clusters.

mod support;

mod cli;
mod runbooks;
mod scripts;
