//! One integration-test binary: the real program against simulated clusters.

mod support;

mod blue_green;
mod canary;
mod cli;
mod faults;
mod prometheus;
mod prometheus_support;
mod rehearse;
mod repl;
mod runbooks;
mod sandbox;
mod scripts;
mod signals;
mod ssh;
mod ssh_support;
mod validation;
