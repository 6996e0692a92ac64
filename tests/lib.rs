//! One integration-test binary: the real program against simulated clusters.

mod support;

mod blue_green;
mod canary;
mod cli;
mod faults;
mod layers;
mod prometheus;
mod prometheus_support;
mod rehearse;
mod repl;
mod runbooks;
mod scripts;
mod ssh;
mod ssh_support;
mod surprises;
