//! The admin API's answers and views: snapshots, members.

use super::*;

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
    let (tx, took) = probe(&mut m, 1);
    let tx = tx.expect("commits");
    assert_eq!(tx.leader, "node1");
    assert!(tx.latency_ms >= 3.0);
    assert!(took <= 0.03, "took {took}");
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

/// The test transaction takes the clients' path: without a quorum it waits out the 2 s deadline and
/// fails like a client write (counted, and logged), and with the quorum back it commits.
#[test]
fn a_test_transaction_waits_and_fails_like_a_client_write() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.inject(1, FaultKind::Crash);
    m.inject(2, FaultKind::Crash);
    let before = m.stats().client_writes_failed;
    let id = m.test_transaction(0);
    run(&mut m, 1.9);
    assert!(
        !m.test_transaction_settled(id),
        "answered before its deadline"
    );
    run(&mut m, 0.2);
    let e = m
        .test_transaction_answer(id)
        .expect("answered")
        .expect_err("not committed");
    assert_eq!(e.status, 503);
    assert!(e.message.contains("within its 2 s deadline"), "{e:?}");
    assert!(m.stats().client_writes_failed > before);
    let failed = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "probe")
        .expect("logged");
    assert_eq!(failed.node.as_deref(), Some("node1"));
    assert!(failed.detail.starts_with("failed: "), "{failed:?}");

    // One sent through a node that stops before it is forwarded is lost with the node's other writes.
    start(&mut m, 1);
    let id = m.test_transaction(1);
    m.host_stop(1);
    run(&mut m, 0.6);
    let e = m
        .test_transaction_answer(id)
        .expect("answered")
        .expect_err("lost");
    assert_eq!(
        (e.status, e.message.as_str()),
        (
            503,
            "test transaction lost: node2 went down before it was committed"
        )
    );

    start(&mut m, 1);
    run_until(&mut m, 2.0, |m| m.leader.is_some()).expect("a leader");
    let (tx, _) = probe(&mut m, 1);
    let tx = tx.expect("committed");
    assert!(m
        .events(None)
        .iter()
        .any(|e| e.kind == "probe" && e.detail.contains("committed at index")));
    assert_eq!(tx.leader, m.nodes[m.leader.unwrap()].id);
}

/// A committed test transaction is in the clients' history of acknowledged writes: losing its entry
/// moves `lost_committed_writes`. Every node is drained, so no client write reaches a log and the
/// probe is the only acknowledged write.
#[test]
fn a_committed_test_transaction_is_in_the_history_the_invariants_check() {
    let mut m = cluster(3);
    for i in 0..3 {
        m.set_draining(i, true);
    }
    run(&mut m, 0.5);
    let ok_before = m.stats().client_writes_ok;
    let (tx, _) = probe(&mut m, 1);
    tx.expect("committed");
    assert_eq!(m.stats().client_writes_ok, ok_before + 1);
    assert_eq!(m.stats().lost_committed_writes, 0);
    // Cut the probe's entry from every log, as a cluster that broke Raft's rules would lose it.
    let probe_at = m
        .events(None)
        .into_iter()
        .find(|e| e.kind == "probe")
        .and_then(|e| {
            e.detail
                .split_whitespace()
                .skip_while(|w| *w != "index")
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
        })
        .expect("the probe's index");
    for n in &mut m.nodes {
        n.raft.log.truncate(probe_at - 1);
    }
    assert_eq!(m.stats().lost_committed_writes, 1);
}
