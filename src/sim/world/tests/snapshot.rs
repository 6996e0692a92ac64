//! Log compaction, snapshots sent to followers behind the compacted log, and hand-overs to a node
//! that has just come back.

use super::super::snapshot::{KEEP_ENTRIES, SNAPSHOT_EVERY, SNAPSHOT_SECS};
use super::*;

fn event_at(m: &World, node: &str, kind: &str) -> Option<f64> {
    m.events(None)
        .into_iter()
        .find(|e| e.kind == kind && e.node.as_deref() == Some(node))
        .map(|e| e.t)
}

#[test]
fn logs_are_compacted_behind_each_snapshot() {
    let mut m = cluster(3);
    assert_eq!(
        (m.nodes[0].raft.snapshot_index, m.nodes[0].raft.compacted),
        (900, 900)
    );
    // 30 s at 300 writes/s: 9000 entries past the start's 1000.
    run(&mut m, 30.0);
    for n in &m.nodes {
        let applied = n.applied_index();
        let r = &n.raft;
        assert!(
            r.snapshot_index + SNAPSHOT_EVERY > applied,
            "{}: {applied}",
            n.id
        );
        assert_eq!(r.compacted, r.snapshot_index - KEEP_ENTRIES, "{}", n.id);
        assert!(r.compacted > 900);
    }
    assert_eq!(m.stats().lost_committed_writes, 0);
}

#[test]
fn a_follower_within_the_kept_log_is_sent_entries() {
    let mut m = cluster(3);
    drain_stop(&mut m, 2);
    run(&mut m, 10.0);
    start(&mut m, 2);
    run_until(&mut m, 1.0, |m| has_event(m, "node3", "caught_up")).expect("caught up");
    assert!(!has_event(&m, "node3", "snapshot_transfer"));
}

#[test]
fn a_follower_behind_the_compacted_log_comes_back_through_a_snapshot() {
    let mut m = cluster(3);
    drain_stop(&mut m, 2);
    let stopped_at = m.nodes[2].raft.log.last();
    // Long enough for the leader to compact past what node3 holds.
    run(&mut m, 30.0);
    assert!(m.nodes[0].raft.compacted > stopped_at);
    start(&mut m, 2);
    run_until(&mut m, 1.0, |m| has_event(m, "node3", "caught_up")).expect("caught up");
    let sent = event_at(&m, "node3", "snapshot_transfer").expect("a snapshot was sent");
    let installed = event_at(&m, "node3", "snapshot_installed").expect("and installed");
    let took = installed - sent;
    assert!(
        (SNAPSHOT_SECS - 0.001..=SNAPSHOT_SECS + 0.011).contains(&took),
        "{took}"
    );
    let r = &m.nodes[2].raft;
    assert!(r.compacted > stopped_at && r.compacted == r.snapshot_index);
    // The entries after the snapshot followed: it holds the leader's log.
    assert_eq!(r.log.common_prefix(&m.nodes[0].raft.log), r.log.last());
    let s = m.stats();
    assert_eq!((s.lost_committed_writes, s.max_leaders_in_a_term), (0, 1));
}

#[test]
fn a_snapshot_cut_off_by_the_followers_crash_is_sent_again() {
    let mut m = cluster(3);
    drain_stop(&mut m, 2);
    run(&mut m, 30.0);
    start(&mut m, 2);
    assert!(has_event(&m, "node3", "snapshot_transfer"));
    m.inject(2, FaultKind::Crash);
    run(&mut m, 0.2);
    assert!(!has_event(&m, "node3", "snapshot_installed"));
    start(&mut m, 2);
    run_until(&mut m, 1.0, |m| has_event(m, "node3", "caught_up")).expect("caught up");
    let sent = m
        .events(None)
        .iter()
        .filter(|e| e.kind == "snapshot_transfer")
        .count();
    assert_eq!(sent, 2);
    assert!(has_event(&m, "node3", "snapshot_installed"));
}

/// Raft's hand-over catches the target up before TimeoutNow: a node that has just come back is
/// sent what it missed and takes over well within the election timeout, as etcd does.
#[test]
fn a_hand_over_to_a_freshly_restarted_node_catches_it_up_first() {
    for (down, snapshot) in [(3.0, false), (30.0, true)] {
        let mut m = cluster(3);
        drain_stop(&mut m, 2);
        run(&mut m, down);
        assert_eq!(m.host_start(2), StartOutcome::Launched);
        run_until(&mut m, 1.1, |m| has_event(m, "node3", "rejoined")).expect("rejoins");
        let asked = m.now;
        m.request_transfer(0, "node3").expect("accepted");
        let took = run_until(&mut m, 1.0, |m| m.leader == Some(2)).expect("hands over");
        // The snapshot, then up to the 1000 entries since it at 50 000 a second.
        let limit = if snapshot { SNAPSHOT_SECS + 0.04 } else { 0.03 };
        assert!(took <= limit, "down {down} s: took {took}");
        assert_eq!(has_event(&m, "node3", "snapshot_installed"), snapshot);
        assert!(!has_event(&m, "node1", "transfer_failed"));
        let s = m.stats();
        assert_eq!((s.leader_losses, s.client_writes_failed), (0, 0), "{s:?}");
        assert!(m.now - asked < 1.0);
    }
}
