//! One integration-test binary: the real program against simulated clusters.

mod support;

mod analysis;
mod audit;
mod blue_green;
mod calibration;
mod canary;
mod cli;
mod control;
mod etcd_support;
mod faults;
mod files;
mod interlocks;
mod layers;
mod lease;
mod notify;
mod prometheus;
mod prometheus_support;
mod rehearse;
mod repl;
mod report;
mod responsiveness;
mod resume;
mod rollout;
mod runbooks;
mod sandbox;
mod scripts;
mod signals;
mod sim_time;
mod ssh;
mod ssh_support;
mod staging;
mod surprises;
mod unsafe_runbooks;
mod validation;
