//! The data directory's faults: a member wiped or restored from an old backup comes back through a
//! snapshot; two wiped members elect a leader that lacks committed writes; a disk that acknowledges
//! before writing loses acknowledged entries on a crash. Each shows the invariant it moves.

use super::*;

fn disk_events(m: &World, node: &str) -> Vec<String> {
    m.events(None)
        .into_iter()
        .filter(|e| e.kind == "disk" && e.node.as_deref() == Some(node))
        .map(|e| e.detail)
        .collect()
}

#[test]
fn a_wipe_takes_effect_at_the_next_start() {
    let mut m = cluster(3);
    run(&mut m, 1.0);
    let held = m.nodes[1].raft.log.last();
    m.inject(1, FaultKind::Wipe);
    run(&mut m, 1.0);
    // The running process keeps what it holds.
    assert!(m.nodes[1].raft.log.last() > held);
    assert!(disk_events(&m, "node2").is_empty());
    drain_stop(&mut m, 1);
    start(&mut m, 1);
    let events = disk_events(&m, "node2");
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("empty data directory"), "{events:?}");
}

#[test]
fn a_wiped_member_comes_back_through_a_snapshot_with_nothing_lost() {
    let mut m = cluster(3);
    run(&mut m, 5.0);
    drain_stop(&mut m, 1);
    m.inject(1, FaultKind::Wipe);
    start(&mut m, 1);
    run_until(&mut m, 1.0, |m| has_event(m, "node2", "caught_up")).expect("caught up");
    assert!(has_event(&m, "node2", "snapshot_installed"));
    let r = &m.nodes[1].raft;
    assert_eq!(r.term, m.nodes[0].raft.term);
    assert!(r.log.last() > 2000);
    run(&mut m, 1.0);
    let s = m.stats();
    assert_eq!(
        (
            s.lost_committed_writes,
            s.max_leaders_in_a_term,
            s.elections
        ),
        (0, 1, 0),
        "{s:?}"
    );
}

#[test]
fn a_member_restored_from_an_old_backup_comes_back_through_a_snapshot() {
    let mut m = cluster(3);
    // The backup holds index 900; 30 s of writes later the leader has compacted past it.
    run(&mut m, 30.0);
    drain_stop(&mut m, 1);
    m.inject(1, FaultKind::RestoreBackup);
    start(&mut m, 1);
    let events = disk_events(&m, "node2");
    assert!(events.iter().any(|e| e.contains("index 900")), "{events:?}");
    run_until(&mut m, 1.0, |m| has_event(m, "node2", "caught_up")).expect("caught up");
    assert!(has_event(&m, "node2", "snapshot_installed"));
    let s = m.stats();
    assert_eq!((s.lost_committed_writes, s.max_leaders_in_a_term), (0, 1));
}

/// A full restart (every member stopped, then started) in which two members' data directories
/// were wiped and those two start first: they know no term, no vote and no log, elect one of
/// themselves (often in term 1 again, which already had a leader) and acknowledge writes; the
/// member with the data then follows that leader, and Raft cuts its log back to what they hold.
fn full_restart(seed: u64, wipe: bool) -> SimStats {
    let mut m = seeded(3, seed);
    run(&mut m, 3.0);
    for i in 0..3 {
        m.host_stop(i);
    }
    run(&mut m, 1.0);
    if wipe {
        m.inject(1, FaultKind::Wipe);
        m.inject(2, FaultKind::Wipe);
    }
    m.host_start(1);
    m.host_start(2);
    run_until(&mut m, 3.0, |m| m.leader.is_some()).expect("two members elect a leader");
    run(&mut m, 3.0);
    start(&mut m, 0);
    run(&mut m, 3.0);
    assert!(m.leader.is_some());
    m.stats()
}

#[test]
fn wiping_two_of_three_members_loses_committed_writes() {
    let mut two_leaders = 0;
    for seed in 0..20 {
        let s = full_restart(seed, true);
        assert!(s.lost_committed_writes > 100, "seed {seed}: {s:?}");
        two_leaders += u64::from(s.max_leaders_in_a_term > 1);
        let s = full_restart(seed, false);
        assert_eq!(
            (s.lost_committed_writes, s.max_leaders_in_a_term),
            (0, 1),
            "seed {seed} without the wipes: {s:?}"
        );
    }
    // Unless their first vote splits, the wiped pair elect their leader in term 1.
    assert!(two_leaders > 10, "{two_leaders} of 20");
}

fn crash_everyone_after_three_seconds(unsynced: bool) -> (World, SimStats) {
    let mut m = cluster(3);
    if unsynced {
        for i in 0..3 {
            m.inject(i, FaultKind::UnsyncedDisk);
        }
    }
    run(&mut m, 3.0);
    for i in 0..3 {
        m.inject(i, FaultKind::Crash);
    }
    let s = m.stats();
    (m, s)
}

#[test]
fn an_unsynced_disk_loses_acknowledged_entries_on_a_crash() {
    // A power cut takes the whole cluster down: what the disks had not written is gone, and with
    // it the last second of acknowledged writes.
    let (mut m, s) = crash_everyone_after_three_seconds(true);
    assert!((200..=320).contains(&s.lost_committed_writes), "{s:?}");
    assert!(disk_events(&m, "node1")[0].contains("had not written"));
    for i in 0..3 {
        start(&mut m, i);
    }
    run_until(&mut m, 3.0, |m| m.leader.is_some()).expect("a leader again");
    run(&mut m, 1.0);
    assert!(m.stats().lost_committed_writes >= s.lost_committed_writes);

    // Disks that write before they acknowledge lose nothing in the same crash.
    let (_, s) = crash_everyone_after_three_seconds(false);
    assert_eq!(s.lost_committed_writes, 0, "{s:?}");
}

#[test]
fn one_unsynced_disk_alone_loses_nothing_committed() {
    // The others hold every committed entry, and the crashed member is caught up again.
    let mut m = cluster(3);
    m.inject(1, FaultKind::UnsyncedDisk);
    run(&mut m, 3.0);
    m.inject(1, FaultKind::Crash);
    assert_eq!(disk_events(&m, "node2").len(), 1);
    start(&mut m, 1);
    run(&mut m, 1.0);
    let s = m.stats();
    assert_eq!(
        (s.lost_committed_writes, s.max_leaders_in_a_term),
        (0, 1),
        "{s:?}"
    );
}
