//! Elections, commit and apply, the persisted log, votes, and leadership hand-over.

use super::*;

#[test]
fn a_crashed_leader_is_replaced_after_an_election_timeout() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let crashed_at = m.now;
    m.inject(0, FaultKind::Crash);
    let took = run_until(&mut m, 2.0, |m| m.leader.is_some_and(|l| l != 0)).expect("new leader");
    assert!((0.14..=0.32).contains(&took), "election took {took}");
    assert_eq!(m.term, 2);
    let s = m.stats();
    assert_eq!((s.elections, s.leader_losses), (1, 1), "{s:?}");
    assert_eq!(s.max_leaders_in_a_term, 1);
    assert_eq!(s.lost_committed_writes, 0);
    let elected: Vec<_> = m
        .events(Some(crashed_at))
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

/// `systemctl stop` on the leader: the process hands leadership to its most caught-up follower
/// (TimeoutNow) before it exits, as etcd does on SIGTERM. No leader is lost; the writes the stopping
/// node holds still fail, since it was not drained.
#[test]
fn a_stopped_leader_hands_over_before_it_exits() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let asked = m.now;
    assert_eq!(m.host_stop(0), Some(asked + 0.5));
    // Still up while it hands over: a stop waits for it.
    assert!(m.nodes[0].is_running() && m.nodes[0].is_stopping());
    assert_eq!(m.host_start(0), StartOutcome::WaitStopped);
    let took = run_until(&mut m, 1.0, |m| m.leader.is_some_and(|l| l != 0)).expect("handed over");
    assert!(took <= 0.02, "hand-over took {took}");
    let new = m.leader.expect("leader");
    let transfer = m
        .events(Some(asked))
        .into_iter()
        .find(|e| e.kind == "transfer")
        .expect("a transfer");
    assert_eq!(
        transfer.detail,
        format!("node1 -> {}, term 2", m.nodes[new].id)
    );
    run_until(&mut m, 0.6, |m| {
        m.nodes[0].host.process == ProcessState::Stopped
    })
    .expect("stops");
    run(&mut m, 2.5);
    let s = m.stats();
    assert_eq!((s.leader_losses, s.elections), (0, 1), "{s:?}");
    assert!(s.max_commit_stall_ms <= 30, "{s:?}");
    assert!(s.client_writes_failed > 0, "{s:?}");
    assert_eq!(s.lost_committed_writes, 0);
    assert!(!has_event(&m, "node1", "leader_lost"));
}

/// With nobody a transfer may go to (here both followers draining), the stopping leader leaves office
/// at once: a leader lost, and an election.
#[test]
fn a_stopped_leader_with_no_follower_to_take_over_is_a_leader_lost() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.set_draining(1, true);
    m.set_draining(2, true);
    m.host_stop(0);
    assert!(!m.nodes[0].is_running());
    run_until(&mut m, 1.0, |m| m.leader.is_some()).expect("elected");
    let s = m.stats();
    assert_eq!(s.leader_losses, 1, "{s:?}");
    let lost = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "leader_lost")
        .expect("leader_lost");
    assert_eq!(
        lost.detail,
        "term 1: stopped with no follower to hand over to"
    );
}

/// A hand-over that cannot finish within an election timeout (the only eligible follower is far
/// behind and slow) is abandoned, and the leader stops anyway: a leader lost.
#[test]
fn a_hand_over_on_stop_that_cannot_finish_is_abandoned_and_loses_the_leader() {
    let mut m = cluster(3);
    m.inject(1, FaultKind::SlowCatchup);
    drain_stop(&mut m, 1);
    run(&mut m, 5.0);
    start(&mut m, 1);
    m.set_draining(2, true);
    let asked = m.now;
    m.host_stop(0);
    run_until(&mut m, 1.0, |m| {
        m.nodes[0].host.process == ProcessState::Stopped
    })
    .expect("stops");
    let kinds: Vec<(String, String)> = m
        .events(Some(asked))
        .into_iter()
        .filter(|e| e.node.as_deref() == Some("node1") && e.kind != "write_failed")
        .map(|e| (e.kind, e.detail))
        .collect();
    let expected = [
        ("stop", "systemctl stop neumann"),
        ("transfer_requested", "to node2: stopping"),
        (
            "transfer_failed",
            "node2 did not catch up within the election timeout",
        ),
        (
            "leader_lost",
            "term 1: stopped: the hand-over was abandoned",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, d)| (k.to_string(), d.to_string()))
        .collect();
    assert_eq!(kinds, expected);
    assert_eq!(m.stats().leader_losses, 1);
}

/// `systemctl restart` is one action: the start lands the moment the stop completes, whoever asked
/// and however late they hear of it.
#[test]
fn a_restart_starts_the_moment_the_stop_completes() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let asked = m.now;
    assert_eq!(m.host_restart(2), asked + 0.5);
    assert!(m.nodes[2].restart_pending());
    run(&mut m, 2.0);
    let t = |kind: &str| {
        m.events(Some(asked))
            .into_iter()
            .find(|e| e.kind == kind && e.node.as_deref() == Some("node3"))
            .map(|e| format!("{:.3}", e.t - asked))
    };
    assert_eq!(t("stop").as_deref(), Some("0.000"));
    assert_eq!(t("start").as_deref(), Some("0.500"));
    assert!(!m.nodes[2].restart_pending());
    // The leader: first the hand-over, then the same half second.
    let asked = m.now;
    m.host_restart(0);
    run(&mut m, 2.0);
    let transfer = m
        .events(Some(asked))
        .into_iter()
        .find(|e| e.kind == "transfer")
        .expect("handed over");
    let start = m
        .events(Some(asked))
        .into_iter()
        .find(|e| e.kind == "start" && e.node.as_deref() == Some("node1"))
        .expect("started");
    assert_eq!(format!("{:.3}", start.t - transfer.t), "0.510");
    assert_eq!(m.stats().leader_losses, 0);
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
    let (tx, took) = probe(&mut m, 2);
    let e = tx.expect_err("no leader");
    assert_eq!(e.status, 503);
    assert!(e.message.contains("no leader"), "{e:?}");
    assert!((1.99..=2.01).contains(&took), "took {took}");
    assert!(m.stats().client_writes_failed > 0);
    // Quorum back: a leader again, and nobody lost a committed write.
    start(&mut m, 1);
    run_until(&mut m, 1.0, |m| m.leader.is_some()).expect("leader with quorum");
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
    // It fetches only what it missed: one second of writes, at 50 000 entries a second.
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
fn a_frozen_follower_resumes_without_standing_for_election() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.inject(2, FaultKind::Hang);
    run(&mut m, 10.0);
    m.inject(2, FaultKind::Heal);
    run_until(&mut m, 1.0, |m| m.lag_ms(2) <= CAUGHT_UP_MS).expect("catches up");
    run(&mut m, 1.0);
    let s = m.stats();
    assert_eq!((s.elections, s.leader_losses, m.term), (0, 0, 1), "{s:?}");
}
