//! World tests on a fake clock: each drives `tick(dt)` directly, so no real time passes. This file holds
//! the helpers every test file here uses and the driver's own tests (start, config, determinism, scale,
//! ticks after a stall, faults armed on events); the files beside it test the rules of the file of the
//! same name in `world/`, and `invariants.rs` Raft's two guarantees over random fault histories.

mod admin;
mod clients;
mod disk;
mod host;
mod invariants;
mod partition;
mod raft;
mod snapshot;

use super::host::{CommandOutput, StartOutcome, INSTALL_SECS};
use super::*;

const START_UNIX: f64 = 1_700_000_000.0;

fn cluster(nodes: usize) -> World {
    cluster_with(SimConfig {
        nodes,
        seed: Some(7),
        ..SimConfig::default()
    })
}

fn cluster_with(cfg: SimConfig) -> World {
    World::new(&cfg, START_UNIX).expect("valid config")
}

fn v(s: &str) -> Version {
    Version::parse(s).expect("test version")
}

fn run(m: &mut World, secs: f64) {
    let ticks = (secs / 0.01).round() as usize;
    for _ in 0..ticks {
        m.tick(0.01);
    }
}

/// Runs until `cond` holds; returns the simulated seconds it took, or None after `max` seconds.
fn run_until(m: &mut World, max: f64, cond: impl Fn(&World) -> bool) -> Option<f64> {
    let start = m.now;
    while m.now - start < max {
        if cond(m) {
            return Some(m.now - start);
        }
        m.tick(0.01);
    }
    let took = m.now - start;
    cond(m).then_some(took)
}

fn has_event(m: &World, node: &str, kind: &str) -> bool {
    m.events(None)
        .iter()
        .any(|e| e.kind == kind && e.node.as_deref() == Some(node))
}

fn stop(m: &mut World, i: usize) {
    if m.host_stop(i).is_some() {
        run_until(m, 0.6, |m| m.nodes[i].host.process == ProcessState::Stopped).expect("stops");
    }
}

/// Start and wait until the node is a caught-up member again (or refused).
fn start(m: &mut World, i: usize) {
    assert_eq!(m.host_start(i), StartOutcome::Launched);
    run_until(m, 1.1, |m| m.nodes[i].is_running()).expect("node starts");
}

fn install(m: &mut World, i: usize, version: &str) -> CommandOutput {
    let (done_at, out) = m.host_install(i, &v(version));
    let left = done_at - m.now;
    run(m, left + 0.01);
    out
}

/// The runbook's per-node procedure: drain, stop, install, start, wait until caught up and
/// back in the load balancer.
fn upgrade_node(m: &mut World, i: usize, version: &str) {
    m.set_draining(i, true);
    run_until(m, 1.0, |m| m.nodes[i].in_flight() == 0).expect("drained");
    stop(m, i);
    assert_eq!(install(m, i, version).status, 0);
    start(m, i);
    assert!(m.nodes[i].joined, "{} should rejoin", m.nodes[i].id);
    run_until(m, 5.0, |m| m.lag_ms(i) <= CAUGHT_UP_MS).expect("caught up");
    run(m, 1.2);
}

fn seeded(nodes: usize, seed: u64) -> World {
    cluster_with(SimConfig {
        nodes,
        seed: Some(seed),
        ..SimConfig::default()
    })
}

fn drain_stop(m: &mut World, i: usize) {
    m.set_draining(i, true);
    run_until(m, 1.0, |m| m.nodes[i].in_flight() == 0).expect("drained");
    stop(m, i);
}

#[test]
fn starts_with_node1_leading_term_1_and_a_recent_backup() {
    let m = cluster(3);
    assert_eq!(m.leader, Some(0));
    assert_eq!(m.term, 1);
    assert_eq!(m.commit_index, 1000);
    let b = m.backup_status();
    assert!(b.ok);
    assert_eq!(b.last_snapshot_at, Some(START_UNIX - 600.0));
    assert_eq!(b.index, 900);
    assert_eq!(m.stats().min_healthy_seen, 3);
    assert_eq!(m.stats().elections, 0);
    let h = m.health(1);
    assert_eq!(h.status, "healthy");
    assert_eq!(h.leader.as_deref(), Some("node1"));
    assert_eq!(h.raft_state, "follower");
}

#[test]
fn bad_configs_are_rejected() {
    for cfg in [
        SimConfig {
            nodes: 0,
            ..SimConfig::default()
        },
        SimConfig {
            speed: 0.0,
            ..SimConfig::default()
        },
        SimConfig {
            speed: f64::NAN,
            ..SimConfig::default()
        },
        SimConfig {
            faults: vec![("node9".into(), FaultKind::Crash)],
            ..SimConfig::default()
        },
    ] {
        assert!(matches!(World::new(&cfg, 0.0), Err(SimError::Config(_))));
    }
}

#[test]
fn node_ids_match_exactly() {
    let m = cluster(10);
    assert_eq!(m.index_of("node1"), Some(0));
    assert_eq!(m.index_of("node10"), Some(9));
    assert_eq!(m.index_of("node"), None);
    assert_eq!(m.index_of("node01"), None);
    assert_eq!(m.index_of("Node1"), None);
}

/// CPU time this thread has run, where Linux reports it: unlike wall time it does not grow when
/// the machine is busy with other work.
fn thread_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

#[test]
fn scales_to_300_nodes_at_speed_20() {
    let mut m = cluster(300);
    // One real 10 ms tick at speed 20 is 0.2 simulated seconds.
    let (wall, cpu) = (std::time::Instant::now(), thread_cpu_secs());
    for _ in 0..50 {
        m.tick(0.2);
    }
    assert!(m.stats().client_writes_ok > 2900);
    // The point is "not per write": 10 simulated seconds of 300 nodes in well under a second of
    // work in a debug build (about 0.3 s on an idle machine). Measured as CPU time where the
    // system reports it, so a busy machine does not fail the test.
    let spent = match (cpu, thread_cpu_secs()) {
        (Some(a), Some(b)) => b - a,
        _ => wall.elapsed().as_secs_f64() / 4.0,
    };
    assert!(spent < 1.5, "{spent:.2} s of work");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let trace = |seed| {
        let mut m = seeded(5, seed);
        run(&mut m, 0.5);
        m.inject(0, FaultKind::Crash);
        run(&mut m, 1.0);
        m.apply_fault(&FaultSpec::Groups(vec![vec![1, 2], vec![3, 4]]));
        run(&mut m, 1.0);
        m.inject(1, FaultKind::Heal);
        run(&mut m, 1.0);
        let events: Vec<(String, Option<String>, String)> = m
            .events(None)
            .into_iter()
            .map(|e| (format!("{:.3}", e.t), e.node, e.detail))
            .collect();
        (events, m.stats())
    };
    assert_eq!(trace(11), trace(11));
    assert_ne!(trace(11).0, trace(12).0);
}

/// A stalled simulator (a loaded machine) catches up in full-resolution ticks: no election or lost
/// leader that a real cluster would not have had. The same stall taken as one coarse tick shows why.
#[test]
fn a_long_stall_is_caught_up_without_coarse_slices() {
    let mut m = cluster(3);
    run(&mut m, 6.0);
    let before = m.stats();
    // 400 simulated seconds behind at once: as if the process had not run for 20 s at speed 20.
    let target = m.now + 400.0;
    let mut ticks = 0;
    while m.now < target - 1e-9 {
        m.tick_towards(target);
        ticks += 1;
    }
    assert_eq!(ticks, 20, "20 s of simulated time per tick at most");
    let after = m.stats();
    assert_eq!(after.elections, before.elections, "{after:?}");
    assert_eq!(after.leader_losses, 0, "{after:?}");

    // The check fires: one tick over the whole stall advances 0.2 s a slice, past the election timeout.
    let mut coarse = cluster(3);
    run(&mut coarse, 6.0);
    let before = coarse.stats();
    coarse.tick(400.0);
    let after = coarse.stats();
    assert!(after.elections > before.elections, "{after:?}");
}

#[test]
fn a_fault_armed_on_an_event_fires_inside_the_simulator() {
    let mut m = cluster(3);
    m.arm("stop", 1, FaultSpec::Node(2, FaultKind::Crash));
    run(&mut m, 1.0);
    assert_eq!(m.nodes[2].host.process, ProcessState::Running);
    m.host_stop(1);
    // Same instant, before any time passes.
    assert_eq!(m.nodes[2].host.process, ProcessState::Crashed);
    let crash = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "crash")
        .unwrap();
    let stop = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "stop")
        .unwrap();
    assert_eq!(crash.t, stop.t);
}

#[test]
fn healing_a_node_disarms_the_faults_still_waiting_for_it() {
    let mut m = cluster(3);
    m.arm("stop", 1, FaultSpec::Node(2, FaultKind::Crash));
    m.arm("stop", 1, FaultSpec::Node(0, FaultKind::SlowCatchup));
    m.inject(2, FaultKind::Heal);
    run(&mut m, 1.0);
    m.host_stop(1);
    // node3's crash was disarmed by its heal; node1's fault, not healed, still fires.
    assert_eq!(m.nodes[2].host.process, ProcessState::Running);
    assert!(m.nodes[0].faults.slow_catchup);
}
