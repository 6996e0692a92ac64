//! The host side: a refused join, a crash and a restart, catching up, install, stage and activate.

use super::*;

#[test]
fn a_two_minor_jump_refuses_to_join() {
    let mut m = cluster(3);
    m.set_draining(2, true);
    stop(&mut m, 2);
    assert_eq!(install(&mut m, 2, "0.12.0").status, 0);
    start(&mut m, 2);
    let n = &m.nodes[2];
    assert!(!n.joined);
    assert_eq!(n.host.running, v("0.12.0"));
    assert!(has_event(&m, "node3", "refused"));
    let h = m.health(2);
    assert_eq!(h.status, "unhealthy");
    let why = h.error.unwrap_or_default();
    assert!(why.contains("0.12.0") && why.contains("0.10.4"), "{why}");
    assert_eq!(m.members()[2].state, "down");

    // One minor is within the skew policy.
    stop(&mut m, 2);
    install(&mut m, 2, "0.11.0");
    start(&mut m, 2);
    assert!(m.nodes[2].joined);
    assert!(has_event(&m, "node3", "rejoined"));
}

#[test]
fn crash_fails_in_flight_writes_and_a_restart_resets_counters() {
    let mut m = cluster(3);
    run(&mut m, 2.0);
    assert!(m.nodes[1].metrics.tx_commits > 0);
    m.inject(1, FaultKind::Crash);
    assert_eq!(m.nodes[1].host.process, ProcessState::Crashed);
    run(&mut m, 4.0);
    assert!(m.stats().client_writes_failed > 0);
    start(&mut m, 1);
    assert_eq!(m.nodes[1].metrics.tx_commits, 0);
    assert!(has_event(&m, "node2", "crash"));
}

#[test]
fn catch_up_takes_finite_time_and_lag_is_visible() {
    let mut m = cluster(3);
    m.set_draining(2, true);
    stop(&mut m, 2);
    run(&mut m, 10.0);
    // The slice it comes up in already brings it 500 entries (at 50 000 a second).
    start(&mut m, 2);
    let lag = m.lag_ms(2);
    assert!(lag > 5000.0, "lag {lag}");
    assert!(m.health(2).replication_lag_ms > 5000);
    assert!(m.members()[2].replication_lag_ms > 5000);
    let took = run_until(&mut m, 5.0, |m| m.lag_ms(2) <= CAUGHT_UP_MS).expect("catches up");
    // ~2800 entries still behind at 50 000/s: a few slices.
    assert!((0.03..=0.1).contains(&took), "took {took}");
    run(&mut m, 0.05);
    assert!(has_event(&m, "node3", "caught_up"));
    assert_eq!(m.lag_ms(2), 0.0);
}

#[test]
fn install_of_an_unknown_version_fails_like_cargo() {
    let mut m = cluster(3);
    let out = install(&mut m, 1, "0.11.9");
    assert_eq!(out.status, 101);
    assert!(
        out.stderr.contains(
            "error: could not find `neumann` in registry `crates-io` with version `=0.11.9`"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(m.nodes[1].host.installed, v("0.10.4"));

    let out = install(&mut m, 1, "0.11.3");
    assert_eq!(out.status, 0);
    assert_eq!(m.nodes[1].host.installed, v("0.11.3"));
    // The running process keeps its binary until restarted.
    assert_eq!(m.nodes[1].host.running, v("0.10.4"));

    m.inject(1, FaultKind::FailInstall);
    assert_eq!(install(&mut m, 1, "0.11.0").status, 101);
    m.inject(1, FaultKind::Heal);
    assert_eq!(install(&mut m, 1, "0.11.0").status, 0);
    assert!(has_event(&m, "node2", "install"));
}

#[test]
fn staging_keeps_the_node_serving_and_activate_needs_a_staged_build() {
    let mut m = cluster(3);
    // Not staged: activate fails and changes nothing.
    let out = m.host_activate(1, &v("0.11.0"));
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("/opt/neumann/0.11.0/bin/neumann"),
        "{}",
        out.stderr
    );
    assert_eq!(m.nodes[1].host.installed, v("0.10.4"));
    assert!(has_event(&m, "node2", "activate_failed"));

    let (done_at, out) = m.host_stage(1, &v("0.11.0"));
    assert_eq!(out.status, 0);
    assert!((done_at - m.now - INSTALL_SECS).abs() < 1e-9);
    // A second staging while one compiles is refused, as cargo's lock would.
    assert_ne!(m.host_stage(1, &v("0.11.1")).1.status, 0);
    // The same version again (a re-run after an interrupt) waits for the build in progress.
    let (same, out) = m.host_stage(1, &v("0.11.0"));
    assert_eq!((same, out.status), (done_at, 0));
    assert!(!m.nodes[1].host.staged.contains(&v("0.11.0")));
    let left = done_at - m.now;
    run(&mut m, left + 0.01);
    assert!(m.nodes[1].host.staged.contains(&v("0.11.0")));
    // Staging changed nothing that runs or will run.
    assert!(m.nodes[1].is_running());
    assert_eq!(m.nodes[1].host.installed, v("0.10.4"));
    assert!(has_event(&m, "node2", "stage"));
    // Staged already: done at once.
    let (again, out) = m.host_stage(1, &v("0.11.0"));
    assert_eq!((again, out.status), (m.now, 0));

    assert_eq!(m.host_activate(1, &v("0.11.0")).status, 0);
    assert_eq!(m.nodes[1].host.installed, v("0.11.0"));
    assert_eq!(m.nodes[1].host.running, v("0.10.4"));
    // The initial version counts as staged: a rollback can activate it.
    assert_eq!(m.host_activate(1, &v("0.10.4")).status, 0);

    m.inject(2, FaultKind::FailInstall);
    assert_eq!(m.host_stage(2, &v("0.11.0")).1.status, 101);
    assert!(has_event(&m, "node3", "stage_failed"));
    assert!(!m.nodes[2].host.staged.contains(&v("0.11.0")));
}
