//! The invariants: Raft's two guarantees hold over random fault histories, and the checks catch a world
//! that breaks them (`Bugs`).

use super::*;

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
    // The same story as `a_node_with_a_stale_log_cannot_win_an_election`, on the broken world:
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
