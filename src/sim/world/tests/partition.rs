//! Partitions: a node or a leader cut off, groups without a majority.

use super::*;

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
fn a_partitioned_follower_raises_its_term_and_unseats_the_leader_on_return() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    m.inject(2, FaultKind::Partition);
    // Short enough that the writes node3 holds meanwhile still make it before their 2 s deadline,
    // through the election its return sets off.
    run(&mut m, 1.2);
    // Without pre-vote, every election timeout is a new term for the cut-off node.
    assert!(m.nodes[2].raft.term >= 4, "term {}", m.nodes[2].raft.term);
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
    assert!(m.nodes[l].raft.term > 4);
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
