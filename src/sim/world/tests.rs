//! World tests on a fake clock: each drives `tick(dt)` directly, so no real time passes.

use super::host::{CommandOutput, StartOutcome};
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
    let steps = (secs / 0.01).round() as usize;
    for _ in 0..steps {
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

#[test]
fn client_load_commits_about_300_writes_a_second_spread_over_nodes() {
    let mut m = cluster(3);
    run(&mut m, 10.0);
    let ok = m.stats().client_writes_ok;
    assert!((2900..=3000).contains(&ok), "ok = {ok}");
    assert_eq!(m.stats().client_writes_failed, 0);
    // Every acknowledged write is committed; the last step's writes are still on their way.
    let unacked = m.commit_index - 1000 - ok;
    assert!(unacked <= 10, "{unacked} committed but not acknowledged");
    for n in &m.nodes {
        assert!(
            n.metrics.tx_commits > 900,
            "{} served {}",
            n.id,
            n.metrics.tx_commits
        );
        assert_eq!(n.metrics.latency.count, n.metrics.tx_commits);
        // Followers learn the commit index with the next heartbeat, a step later.
        assert!(
            n.applied_index() + 10 >= m.commit_index,
            "{}: {}",
            n.id,
            n.applied_index()
        );
        assert!(n.raft.log.last() >= m.commit_index);
    }
    // Followers forward, so their latency includes the extra hop.
    let mean = |n: &Node| n.metrics.latency.sum / n.metrics.latency.count as f64;
    assert!(mean(&m.nodes[1]) > mean(&m.nodes[0]));
}

#[test]
fn stopped_leader_is_replaced_after_an_election_timeout() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let stopped_at = m.now;
    m.host_stop(0);
    let took = run_until(&mut m, 2.0, |m| m.leader.is_some_and(|l| l != 0)).expect("new leader");
    assert!((0.14..=0.32).contains(&took), "election took {took}");
    assert_eq!(m.term, 2);
    assert_eq!(m.stats().elections, 1);
    assert_eq!(m.stats().max_leaders_in_a_term, 1);
    assert_eq!(m.stats().lost_committed_writes, 0);
    let elected: Vec<_> = m
        .events(Some(stopped_at))
        .into_iter()
        .filter(|e| e.kind == "elected")
        .collect();
    assert_eq!(elected.len(), 1);
    assert_eq!(elected[0].detail, "term 2");
    // The cluster keeps committing under the new leader.
    let before = m.commit_index;
    run(&mut m, 1.0);
    assert!(m.commit_index > before + 200);
}

#[test]
fn no_leader_without_quorum() {
    let mut m = cluster(3);
    m.host_stop(0);
    m.host_stop(1);
    run(&mut m, 3.0);
    assert_eq!(m.leader, None);
    assert_eq!(m.stats().min_healthy_seen, 1);
    let h = m.health(2);
    assert_eq!(h.status, "unhealthy");
    assert_eq!(h.raft_state, "candidate");
    assert!(
        h.error.as_deref().is_some_and(|e| e.contains("quorum")),
        "{h:?}"
    );
    assert_eq!(m.test_transaction(2).map_err(|e| e.status), Err(503));
    assert!(m.stats().client_writes_failed > 0);
    // Quorum back: a leader again, and nobody lost a committed write.
    start(&mut m, 1);
    run_until(&mut m, 1.0, |m| m.leader.is_some()).expect("leader with quorum");
    assert_eq!(m.stats().max_leaders_in_a_term, 1);
    assert_eq!(m.stats().lost_committed_writes, 0);
}

#[test]
fn transfer_is_refused_to_ineligible_nodes() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let refused = |m: &mut World, to: &str| m.request_transfer(0, to).expect_err("refused");

    assert_eq!(refused(&mut m, "node9").status, 404);

    m.host_stop(2);
    run(&mut m, 0.6);
    let e = refused(&mut m, "node3");
    assert_eq!(e.status, 409);
    assert!(e.message.contains("down"), "{e:?}");

    m.set_draining(1, true);
    let e = refused(&mut m, "node2");
    assert!(e.message.contains("draining"), "{e:?}");
    m.set_draining(1, false);

    assert_eq!(m.leader, Some(0));
    assert_eq!(m.term, 1);
}

#[test]
fn a_transfer_to_a_lagging_target_stalls_writes_then_aborts() {
    let mut m = cluster(3);
    m.set_draining(2, true);
    stop(&mut m, 2);
    // Behind: ten seconds of writes missed, catching up slowly.
    m.inject(2, FaultKind::SlowCatchup);
    run(&mut m, 10.0);
    start(&mut m, 2);
    assert!(m.lag_ms(2) > 1000.0);
    let before = m.stats().max_commit_stall_ms;
    assert!(before < 50, "stall before the transfer: {before} ms");
    // Raft takes the request, stops taking writes while it catches the target up, and gives up
    // after an election timeout.
    m.request_transfer(0, "node3").expect("accepted");
    run_until(&mut m, 1.0, |m| has_event(m, "node1", "transfer_failed")).expect("aborted");
    assert_eq!(m.leader, Some(0));
    assert_eq!(m.term, 1);
    let stall = m.stats().max_commit_stall_ms;
    assert!((140..=170).contains(&stall), "stall {stall} ms");
    assert_eq!(m.stats().leader_losses, 0);
    // Writes flow again.
    let committed = m.commit_index;
    run(&mut m, 0.5);
    assert!(m.commit_index > committed + 100);
}

#[test]
fn transfer_to_an_upgraded_follower_then_refused_to_an_older_one() {
    let mut m = cluster(3);
    upgrade_node(&mut m, 1, "0.11.0");
    let reply = m.request_transfer(0, "node2").expect("eligible");
    assert_eq!(
        (reply.from.as_str(), reply.to.as_str(), reply.term),
        ("node1", "node2", 2)
    );
    run_until(&mut m, 0.2, |m| m.leader == Some(1)).expect("transfer completes");
    assert_eq!(m.term, 2);
    assert_eq!(m.stats().elections, 1);
    let transfer = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "transfer")
        .expect("transfer event");
    assert_eq!(transfer.node.as_deref(), Some("node1"));
    assert_eq!(transfer.detail, "node1 -> node2, term 2");

    // Asking for the current leader is a no-op, not a new term.
    let same = m.request_transfer(2, "node2").expect("idempotent");
    assert_eq!(same.term, 2);
    run(&mut m, 0.2);
    assert_eq!(m.term, 2);

    let e = m
        .request_transfer(0, "node3")
        .expect_err("older than leader");
    assert_eq!(e.status, 409);
    assert!(e.message.contains("older"), "{e:?}");
    assert_eq!(m.stats().max_leaders_in_a_term, 1);
    assert_eq!(m.stats().leader_losses, 0);
}

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
fn drained_rolling_upgrade_loses_no_write() {
    let mut m = cluster(3);
    run(&mut m, 2.0);
    upgrade_node(&mut m, 1, "0.11.0");
    upgrade_node(&mut m, 2, "0.11.0");
    m.request_transfer(0, "node2").expect("eligible");
    run(&mut m, 0.2);
    assert_eq!(m.leader, Some(1));
    upgrade_node(&mut m, 0, "0.11.0");
    run(&mut m, 2.0);
    assert_eq!(m.stats().client_writes_failed, 0, "{:?}", m.events(None));
    assert_eq!(m.stats().lost_committed_writes, 0);
    assert_eq!(m.stats().max_leaders_in_a_term, 1);
    assert_eq!(m.stats().min_healthy_seen, 2);
    let s = m.stats();
    // The hand-over is an election, not a lost leader; commits pause only for it.
    assert_eq!(
        (s.elections, s.leader_losses, s.quorum_lost_ms),
        (1, 0, 0),
        "{s:?}"
    );
    assert!(s.max_commit_stall_ms <= 50, "{s:?}");
    assert!(m
        .nodes
        .iter()
        .all(|n| n.host.running == v("0.11.0") && n.joined));
    assert!(m.stats().client_writes_ok > 5000);
}

#[test]
fn stop_without_drain_loses_writes() {
    let mut m = cluster(3);
    run(&mut m, 2.0);
    m.host_stop(2);
    run(&mut m, 6.0);
    let failed = m.stats().client_writes_failed;
    // About a third of 300/s for the 3 s the health check needs to notice.
    assert!((150..=450).contains(&failed), "failed = {failed}");
    assert!(has_event(&m, "node3", "write_failed"));
    // Coalesced: far fewer events than failed writes, even with a 10 ms tick.
    let events = m
        .events(None)
        .iter()
        .filter(|e| e.kind == "write_failed")
        .count() as u64;
    assert!(events <= 5, "{events} events for {failed} writes");
    // Out of service now: no more failures.
    run(&mut m, 3.0);
    assert_eq!(m.stats().client_writes_failed, failed);
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
    start(&mut m, 2);
    let lag = m.lag_ms(2);
    assert!(lag > 9000.0, "lag {lag}");
    assert!(m.health(2).replication_lag_ms > 9000);
    assert!(m.members()[2].replication_lag_ms > 9000);
    let took = run_until(&mut m, 5.0, |m| m.lag_ms(2) <= CAUGHT_UP_MS).expect("catches up");
    // ~3300 entries behind at 3000/s against 300/s of new writes.
    assert!((0.8..=2.0).contains(&took), "took {took}");
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
    assert!((done_at - m.now - crate::sim::INSTALL_SECS).abs() < 1e-9);
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

#[test]
fn partitioned_leader_steps_down_and_reports_why() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.inject(0, FaultKind::Partition);
    run_until(&mut m, 1.0, |m| m.leader.is_some_and(|l| l != 0)).expect("replaced");
    let h = m.health(0);
    assert_eq!(h.status, "unhealthy");
    assert_eq!(h.error.as_deref(), Some("partitioned: cannot reach peers"));
    assert_eq!(h.leader, None);
    m.inject(0, FaultKind::Heal);
    run(&mut m, 1.0);
    assert_eq!(m.health(0).status, "healthy");
    assert_eq!(m.lag_ms(0), 0.0);
    assert_eq!(m.stats().max_leaders_in_a_term, 1);
    assert_eq!(m.stats().lost_committed_writes, 0);
}

#[test]
fn hung_leader_is_replaced() {
    let mut m = cluster(5);
    m.inject(0, FaultKind::Hang);
    run_until(&mut m, 1.0, |m| m.leader.is_some_and(|l| l != 0)).expect("replaced");
    assert_eq!(m.stats().min_healthy_seen, 4);
    assert_eq!(m.stats().lost_committed_writes, 0);
}

#[test]
fn a_short_pause_costs_no_write_and_a_long_one_does() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.set_paused(0, true).expect("pause");
    assert_eq!(m.test_transaction(1).map_err(|e| e.status), Err(503));
    run(&mut m, 1.5);
    m.set_paused(0, false).expect("resume");
    run(&mut m, 1.0);
    assert_eq!(m.stats().client_writes_failed, 0);
    m.set_paused(1, true).expect("pause");
    run(&mut m, 3.0);
    assert!(m.stats().client_writes_failed > 0);
    assert!(has_event(&m, "node2", "pause"));
}

#[test]
fn snapshot_only_on_the_leader() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let e = m.take_snapshot(1).expect_err("follower");
    assert_eq!(
        (e.status, e.message.as_str()),
        (409, "not the leader; leader is node1")
    );
    let s = m.take_snapshot(0).expect("leader");
    assert_eq!(s.index, m.commit_index);
    assert!(s.age_secs.is_some_and(|a| a.abs() < 1e-9));
    let tx = m.test_transaction(1).expect("commits");
    assert_eq!(tx.leader, "node1");
    assert!(tx.latency_ms >= 3.0);
}

#[test]
fn bad_versions_abort_some_transactions_and_are_slow() {
    let mut m = cluster_with(SimConfig {
        bad_versions: vec![v("0.11.1")],
        seed: Some(3),
        ..SimConfig::default()
    });
    upgrade_node(&mut m, 2, "0.11.1");
    run(&mut m, 20.0);
    let (good, bad) = (&m.nodes[1], &m.nodes[2]);
    let rate =
        bad.metrics.tx_aborts as f64 / (bad.metrics.tx_commits + bad.metrics.tx_aborts) as f64;
    assert!((0.02..0.1).contains(&rate), "abort rate {rate}");
    assert_eq!(good.metrics.tx_aborts, 0);
    let mean = |n: &Node| n.metrics.latency.sum / n.metrics.latency.count as f64;
    assert!(mean(bad) > 3.0 * mean(good));
    assert_eq!(m.stats().client_writes_failed, 0);
    let mem = |m: &mut World, i| m.metrics(i).memory_bytes;
    let ratio = mem(&mut m, 2) / mem(&mut m, 1);
    assert!((1.4..1.85).contains(&ratio), "memory ratio {ratio}");
}

#[test]
fn members_report_drain_states() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.set_draining(2, true);
    run_until(&mut m, 1.0, |m| m.members()[2].state == "drained").expect("drained");
    stop(&mut m, 2);
    let member = &m.members()[2];
    assert_eq!((member.state, member.healthy), ("down", false));
    assert_eq!(member.version, "0.10.4");
    let status = m.raft_status(0);
    assert_eq!(status.leader.as_deref(), Some("node1"));
    assert_eq!(status.nodes.len(), 3);
    assert_eq!(status.nodes[0].role, "leader");
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
fn commit_waits_for_a_majority_to_hold_the_entries() {
    // The measurement: node2 catches up slowly after its upgrade and node3 is stopped
    // as soon as node2 has rejoined. node1 alone holds the new entries: nothing commits.
    let mut m = cluster(3);
    m.inject(1, FaultKind::SlowCatchup);
    run(&mut m, 1.0);
    drain_stop(&mut m, 1);
    run(&mut m, 10.0);
    start(&mut m, 1);
    assert!(m.nodes[1].joined);
    drain_stop(&mut m, 2);
    run(&mut m, 5.0);
    let s = m.stats();
    assert!(s.client_writes_failed > 300, "{s:?}");
    assert!(s.max_commit_stall_ms > 2000, "{s:?}");
    assert!(s.quorum_lost_ms > 2000, "{s:?}");
    assert_eq!((s.lost_committed_writes, s.leader_losses), (0, 0), "{s:?}");
    // node2's log grows at its replication rate, its commit index only up to what a majority holds.
    let (leader, slow) = (&m.nodes[0], &m.nodes[1]);
    assert!(leader.raft.log.last() > slow.raft.log.last() + 1000);
    assert!(leader.raft.log.last() > leader.raft.commit + 1000);
}

#[test]
fn apply_lag_and_replication_lag_differ() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let n = &m.nodes[1];
    // Appended but not yet known committed: the log runs ahead of the applied index.
    assert!(n.raft.log.last() >= n.raft.commit && n.raft.commit as f64 >= n.raft.applied);
    let raft = m.raft_status(0);
    assert_eq!(raft.nodes[1].match_index, m.nodes[1].raft.log.last());
}

#[test]
fn a_restarted_node_resumes_from_its_persisted_log() {
    let mut m = cluster(3);
    run(&mut m, 2.0);
    drain_stop(&mut m, 2);
    let (last, term, commit) = (
        m.nodes[2].raft.log.last(),
        m.nodes[2].raft.term,
        m.nodes[2].raft.commit,
    );
    assert!(last > 1500);
    run(&mut m, 1.0);
    assert_eq!(m.host_start(2), StartOutcome::Launched);
    run_until(&mut m, 1.1, |m| m.nodes[2].is_running()).expect("starts");
    let n = &m.nodes[2];
    assert!(n.raft.log.last() >= last && n.raft.term >= term && n.raft.commit >= commit);
    // It fetches only what it missed: one second of writes, at 3000 entries a second.
    let took = run_until(&mut m, 2.0, |m| m.lag_ms(2) <= CAUGHT_UP_MS).expect("catches up");
    assert!(took < 0.3, "took {took}");
}

#[test]
fn a_node_with_a_stale_log_cannot_win_an_election() {
    for seed in 0..40 {
        let mut m = seeded(3, seed);
        m.inject(2, FaultKind::SlowCatchup);
        run(&mut m, 1.0);
        drain_stop(&mut m, 2);
        run(&mut m, 5.0);
        start(&mut m, 2);
        // node1 dies while node3 is still far behind: only node2 holds every committed entry.
        m.inject(0, FaultKind::Crash);
        run_until(&mut m, 3.0, |m| m.leader.is_some()).expect("a leader");
        assert_eq!(m.leader, Some(1), "seed {seed}: {:?}", m.events(None));
        let s = m.stats();
        assert_eq!(s.lost_committed_writes, 0, "seed {seed}");
        assert_eq!(s.leader_losses, 1, "seed {seed}");
    }
}

#[test]
fn simultaneous_candidates_split_the_vote_and_retry() {
    let mut splits = 0;
    for seed in 0..200 {
        let mut m = seeded(4, seed);
        run(&mut m, 0.5);
        m.inject(0, FaultKind::Crash);
        run_until(&mut m, 5.0, |m| m.leader.is_some()).expect("a leader in the end");
        // A term that elected nobody shows as a jump in the winning term.
        if m.nodes[m.leader.unwrap()].raft.term > 2 {
            splits += 1;
        }
        assert_eq!(m.stats().max_leaders_in_a_term, 1);
    }
    // Three timers in a 150 ms window, 10 ms apart at best: a few percent of crashes split.
    assert!((2..60).contains(&splits), "{splits} split votes in 200");
}

#[test]
fn a_partitioned_follower_raises_its_term_and_unseats_the_leader_on_return() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.inject(2, FaultKind::Partition);
    // Shorter than a client's deadline, so the writes node3 holds meanwhile still make it.
    run(&mut m, 1.8);
    // Without pre-vote, every election timeout is a new term for the cut-off node.
    assert!(m.nodes[2].raft.term >= 6, "term {}", m.nodes[2].raft.term);
    assert_eq!(m.leader, Some(0));
    assert_eq!(m.nodes[0].raft.term, 1);
    assert_eq!(
        m.health(2).error.as_deref(),
        Some("partitioned: cannot reach peers")
    );
    m.inject(2, FaultKind::Heal);
    run(&mut m, 1.0);
    let s = m.stats();
    assert_eq!(s.leader_losses, 1, "{:?}", m.events(None));
    let l = m.leader.expect("a new leader");
    assert_ne!(l, 2, "node3's log is behind: it cannot win");
    assert!(m.nodes[l].raft.term > 6);
    assert_eq!((s.lost_committed_writes, s.max_leaders_in_a_term), (0, 1));
    assert_eq!(s.client_writes_failed, 0);
}

#[test]
fn a_leader_cut_off_from_the_majority_steps_down_and_the_majority_elects() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.apply_fault(&FaultSpec::Groups(vec![vec![0], vec![1, 2]]));
    let took =
        run_until(&mut m, 1.0, |m| m.nodes[0].raft.role != Role::Leader).expect("steps down");
    // Check-quorum: no reply from a majority for the minimum election timeout.
    assert!((0.14..0.17).contains(&took), "took {took}");
    run_until(&mut m, 1.0, |m| m.leader.is_some_and(|l| l != 0)).expect("majority elects");
    assert!(m.partitioned(0) && !m.partitioned(1));
    assert_eq!(m.health(0).status, "unhealthy");
    assert_eq!(m.health(1).status, "healthy");
    run(&mut m, 5.0);
    let s = m.stats();
    // node1 kept its share of client writes until the load balancer's check noticed.
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert_eq!(
        (
            s.leader_losses,
            s.lost_committed_writes,
            s.max_leaders_in_a_term
        ),
        (1, 0, 1)
    );
    m.inject(0, FaultKind::Heal);
    run(&mut m, 2.0);
    assert_eq!(m.health(0).status, "healthy");
    assert_eq!(m.stats().lost_committed_writes, 0);
}

#[test]
fn a_group_partition_with_no_majority_stops_every_commit() {
    let mut m = cluster(5);
    run(&mut m, 1.0);
    m.apply_fault(&FaultSpec::Groups(vec![vec![0, 1], vec![2, 3]]));
    run(&mut m, 3.0);
    assert_eq!(m.leader, None);
    let s = m.stats();
    assert!(
        s.quorum_lost_ms > 2500 && s.max_commit_stall_ms > 2000,
        "{s:?}"
    );
    assert!(s.client_writes_failed > 0);
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

// ----- the invariants: Raft's two guarantees hold, and the checks catch a model that breaks them -----

/// One random fault history on a seeded cluster: a dozen faults at random moments, then
/// everything healed and started again and time to settle. Returns the final stats.
fn random_history(seed: u64, bugs: Bugs) -> SimStats {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let nodes = if rng.bool() { 3 } else { 5 };
    let mut m = seeded(nodes, seed);
    m.bugs = bugs;
    run(&mut m, 0.5);
    for _ in 0..12 {
        run(&mut m, rng.f64() * 0.6);
        let i = rng.usize(..nodes);
        match rng.u8(..9) {
            0 => m.inject(i, FaultKind::Crash),
            1 => {
                m.host_stop(i);
            }
            2 => {
                m.host_start(i);
            }
            3 => m.inject(i, FaultKind::Partition),
            4 => {
                let mut groups = vec![Vec::new(), Vec::new()];
                for j in 0..nodes {
                    groups[rng.usize(..2)].push(j);
                }
                m.apply_fault(&FaultSpec::Groups(groups));
            }
            5 => m.inject(i, FaultKind::Heal),
            6 => m.inject(i, FaultKind::Hang),
            7 => m.inject(i, FaultKind::SlowCatchup),
            _ => {
                let to = format!("node{}", rng.usize(1..=nodes));
                let _ = m.request_transfer(i, &to);
            }
        }
    }
    for i in 0..nodes {
        m.inject(i, FaultKind::Heal);
        if m.host_start(i) == StartOutcome::WaitStopped {
            run(&mut m, 0.6);
            m.host_start(i);
        }
    }
    run(&mut m, 3.0);
    m.stats()
}

const HISTORIES: u64 = 300;

#[test]
fn no_two_leaders_in_a_term_and_no_acknowledged_write_lost_over_random_fault_histories() {
    let mut losses = 0;
    for seed in 0..HISTORIES {
        let s = random_history(seed, Bugs::default());
        assert_eq!(s.max_leaders_in_a_term, 1, "seed {seed}: {s:?}");
        assert_eq!(s.lost_committed_writes, 0, "seed {seed}: {s:?}");
        losses += s.leader_losses;
    }
    // The histories are hostile enough to matter: leaders fall all the time.
    assert!(losses > HISTORIES, "{losses} leader losses");
}

#[test]
fn votes_without_the_up_to_date_rule_lose_acknowledged_writes() {
    let bugs = Bugs {
        vote_ignores_log: true,
        ..Bugs::default()
    };
    let hit = (0..HISTORIES).find(|&seed| random_history(seed, bugs).lost_committed_writes > 0);
    assert!(hit.is_some(), "the lost-write check never fired");
}

#[test]
fn a_second_vote_in_a_term_elects_two_leaders_in_it() {
    let bugs = Bugs {
        vote_twice: true,
        ..Bugs::default()
    };
    let hit = (0..HISTORIES).find(|&seed| random_history(seed, bugs).max_leaders_in_a_term > 1);
    assert!(hit.is_some(), "the leaders-per-term check never fired");
}

#[test]
fn a_stale_leader_voted_in_without_the_rule_overwrites_acknowledged_writes() {
    // The same story as `a_node_with_a_stale_log_cannot_win_an_election`, on the broken model:
    // whenever node3 wins, the writes it never received are gone.
    let mut fired = 0;
    for seed in 0..40 {
        let mut m = seeded(3, seed);
        m.bugs.vote_ignores_log = true;
        m.inject(2, FaultKind::SlowCatchup);
        run(&mut m, 1.0);
        drain_stop(&mut m, 2);
        run(&mut m, 5.0);
        start(&mut m, 2);
        m.inject(0, FaultKind::Crash);
        run_until(&mut m, 3.0, |m| m.leader.is_some()).expect("a leader");
        run(&mut m, 1.0);
        if m.leader == Some(2) {
            fired += 1;
            assert!(m.stats().lost_committed_writes > 1000, "seed {seed}");
        } else {
            assert_eq!(m.stats().lost_committed_writes, 0, "seed {seed}");
        }
    }
    assert!(fired > 5, "node3 won {fired} of 40");
}

/// A stalled simulator (a loaded machine) catches up in full-resolution ticks: no election or lost
/// leader that a real cluster would not have had. The same stall taken as one coarse tick shows why.
#[test]
fn a_long_stall_is_caught_up_without_coarse_steps() {
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

    // The check fires: one tick over the whole stall steps 0.2 s at a time, past the election timeout.
    let mut coarse = cluster(3);
    run(&mut coarse, 6.0);
    let before = coarse.stats();
    coarse.tick(400.0);
    let after = coarse.stats();
    assert!(after.elections > before.elections, "{after:?}");
}
