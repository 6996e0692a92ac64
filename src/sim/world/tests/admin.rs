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
    let tx = m.test_transaction(1).expect("commits");
    assert_eq!(tx.leader, "node1");
    assert!(tx.latency_ms >= 3.0);
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
