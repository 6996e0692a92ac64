//! Careless variants of the rolling upgrade, as a team might write them, each caught by the
//! simulator's own record of harm, while the stock runbook under the same fault does no harm.
//! docs/SIMULATOR.md has the table of what each variant shows.

use neumann_script::sim::{FaultKind, SimConfig, SimStats};

use crate::support::{expect, Cluster, SPEED};

/// The runbook's per-node steps, for the parts a variant does not change.
const HELPERS: &str = r#"
fn careful(id, target) {
    node::drain(id FORCE);
    node::wait_drained(id, 30);
    node::stop(id FORCE);
    node::install(id, target FORCE);
    node::start(id);
    node::wait_rejoined(id, 30);
    node::wait_caught_up(id, 100, 30);
}

fn followers_at_start() {
    let leader = cluster::leader();
    cluster::versions().keys().filter(|id| id != leader)
}
"#;

// Variants the interlocks refuse unless forced.
const NO_CATCH_UP_WAIT: &str = r#"
        for id in followers_at_start() {
            node::drain(id FORCE);
            node::wait_drained(id, 30);
            node::stop(id FORCE);
            node::install(id, target FORCE);
            node::start(id);
            node::wait_rejoined(id, 30);
        }
        "#;

const TWO_AT_ONCE: &str = r#"
        let both = followers_at_start();
        for id in both { node::drain(id FORCE); node::wait_drained(id, 30); }
        for id in both { node::stop(id FORCE); }
        for id in both { node::install(id, target FORCE); }
        for id in both { node::start(id); }
        for id in both { node::wait_rejoined(id, 30); node::wait_caught_up(id, 100, 30); }
        "#;

const IGNORES_A_PARTITION: &str = r#"
        careful("node2", target);
        "#;

const TRANSFER_TO_A_LAGGING_NODE: &str = r#"
        let leader = cluster::leader();
        node::drain("node2" FORCE);
        node::wait_drained("node2", 30);
        node::stop("node2" FORCE);
        node::install("node2", target FORCE);
        node::start("node2");
        node::wait_rejoined("node2", 30);
        try { raft::transfer_leadership("node2", 1.0 FORCE); } catch (e) { warn(`${e}: going on`); }
        careful(leader, target);
        "#;

const LEADER_FIRST: &str = r#"
        let leader = cluster::leader();
        let rest = followers_at_start();
        careful(leader, target);
        for id in rest { careful(id, target); }
        "#;

/// The edit the leader interlock is for: the leader restarted in place, no drain, no hand-over.
const LEADER_RESTARTED_IN_PLACE: &str = r#"
        node::restart(cluster::leader() FORCE);
        "#;

/// A full restart: every node stopped, the followers first, then started the other way round, the
/// leader last, each start waiting only for the node to rejoin. Harmless on intact disks; with the
/// followers' data directories wiped (rebuilt hosts) they come back first, knowing nothing, and elect
/// a leader of their own.
const FULL_RESTART: &str = r#"
        let leader = cluster::leader();
        let rest = followers_at_start();
        for id in rest { node::drain(id FORCE); node::wait_drained(id, 30); node::stop(id FORCE); }
        node::stop(leader FORCE);
        for id in rest { node::start(id); }
        for id in rest { node::wait_rejoined(id, 30); }
        sleep(3);
        node::start(leader);
        node::wait_rejoined(leader, 30);
        "#;

/// A fault set up before the run.
#[derive(Clone, Copy)]
enum Fault {
    None,
    SlowCatchup(&'static str),
    Partition(&'static str),
    /// These nodes' data directories are wiped when they stop (a rebuilt host, a reinstall).
    WipedOnStop(&'static [&'static str]),
}

/// A cluster with the fault in place and settled: the load balancer has had its 3 s to notice a
/// cut-off node, and the writes it sent there their 2 s deadline, so what the fault costs by itself is
/// in the baseline, not in the run's account. The fault is the simulator's from its first moment, so a
/// busy machine cannot make it land late.
fn cluster(fault: Fault) -> (Cluster, SimStats) {
    let faults = match fault {
        Fault::None => vec![],
        Fault::SlowCatchup(node) => vec![(node.to_string(), FaultKind::SlowCatchup)],
        Fault::Partition(node) => vec![(node.to_string(), FaultKind::Partition)],
        Fault::WipedOnStop(_) => vec![],
    };
    let c = Cluster::with(SimConfig {
        nodes: 3,
        version: semver::Version::new(0, 10, 4),
        speed: SPEED,
        faults,
        ..SimConfig::default()
    });
    if let Fault::WipedOnStop(nodes) = fault {
        for node in nodes {
            c.inject_when(node, "wipe", "stop", node);
        }
    }
    c.wait_until_sim(6.0);
    let baseline = c.stats();
    assert!(baseline.max_commit_stall_ms <= 50, "{baseline:?}");
    (c, baseline)
}

/// What happened during the run: counters since the baseline, the longest stall overall. Read once the
/// writes still waiting when the run ended have had their 2 s deadline, so each has its outcome.
fn during(c: &Cluster, baseline: &SimStats) -> SimStats {
    c.wait_until_sim(c.clock() + 2.5);
    let s = c.stats();
    SimStats {
        client_writes_ok: s.client_writes_ok - baseline.client_writes_ok,
        client_writes_failed: s.client_writes_failed - baseline.client_writes_failed,
        elections: s.elections - baseline.elections,
        leader_losses: s.leader_losses - baseline.leader_losses,
        quorum_lost_ms: s.quorum_lost_ms - baseline.quorum_lost_ms,
        ..s
    }
}

/// The variant as a script, its mutating calls forced or not (`FORCE` marks where the option goes).
fn script(body: &str, force: bool) -> String {
    let opt = if force { ", #{force: true})" } else { ")" };
    format!("{HELPERS}\nlet target = args[0];\n{body}\n").replace(" FORCE)", opt)
}

/// Runs a careless variant (whatever its exit code) and returns what the simulator recorded. Its
/// mutating calls carry `#{force: true}`, as an operator overriding the interlocks would write them:
/// without it the interlocks refuse most variants before they do harm (`the_interlocks_refuse_...`).
fn careless(body: &str, fault: Fault) -> SimStats {
    let (c, baseline) = cluster(fault);
    let path = c.dir.path().join("careless.rhai");
    std::fs::write(&path, script(body, true)).unwrap();
    let out = c.run(&["--yes", path.to_str().unwrap(), "0.11.0"]);
    let stats = during(&c, &baseline);
    eprintln!("careless run exited {:?}: {stats:?}", out.status.code());
    stats
}

/// The stock rolling upgrade under the same fault: it may stop safely, but it does no harm. Returns
/// what the simulator recorded.
fn stock_is_harmless(fault: Fault) -> SimStats {
    let (c, baseline) = cluster(fault);
    let out = c.run(&[
        "--yes",
        "--set",
        "healthy_timeout_secs=2",
        "--set",
        "catchup_timeout_secs=3",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let exit = if matches!(fault, Fault::None | Fault::WipedOnStop(_)) {
        0
    } else {
        3
    };
    expect(&out, exit);
    let s = during(&c, &baseline);
    assert_eq!(
        (
            s.client_writes_failed,
            s.leader_losses,
            s.lost_committed_writes,
            s.quorum_lost_ms
        ),
        (0, 0, 0, 0),
        "{s:?}"
    );
    assert!(s.max_commit_stall_ms <= 100, "{s:?}");
    if let Fault::WipedOnStop(nodes) = fault {
        let seen = c.events_of(&["disk", "snapshot_installed"]);
        for node in nodes {
            for kind in ["disk", "snapshot_installed"] {
                assert!(
                    seen.contains(&(kind.to_string(), node.to_string())),
                    "no `{kind}` on {node}: {seen:?}"
                );
            }
        }
    }
    s
}

/// A graceful stop hands leadership over by itself, so taking the leader first loses no leader and no
/// write here; it costs a second hand-over, where the stock runbook makes one.
#[test]
fn leader_first_without_a_hand_over_costs_a_second_hand_over() {
    let s = careless(LEADER_FIRST, Fault::None);
    assert_eq!((s.leader_losses, s.client_writes_failed), (0, 0), "{s:?}");
    assert_eq!(s.elections, 2, "{s:?}");
    assert_eq!(s.lost_committed_writes, 0, "{s:?}");
    let stock = stock_is_harmless(Fault::None);
    assert_eq!(stock.elections, 1, "{stock:?}");
}

/// The leader restarted in place hands over as it stops, so no leader is lost; but it was never
/// drained, so the load balancer keeps sending it writes while it is down (its 3 s health check), and
/// they fail.
#[test]
fn the_leader_restarted_in_place_hands_over_but_fails_the_writes_sent_to_it() {
    let s = careless(LEADER_RESTARTED_IN_PLACE, Fault::None);
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert_eq!((s.leader_losses, s.elections), (0, 1), "{s:?}");
    assert_eq!(s.lost_committed_writes, 0, "{s:?}");
}

#[test]
fn no_catch_up_wait_with_a_slow_follower_stalls_commits_and_fails_writes() {
    let s = careless(NO_CATCH_UP_WAIT, Fault::SlowCatchup("node2"));
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert!(s.max_commit_stall_ms > 2000, "{s:?}");
    assert!(s.quorum_lost_ms > 2000, "{s:?}");
    stock_is_harmless(Fault::SlowCatchup("node2"));
}

#[test]
fn no_drain_fails_the_writes_sent_to_the_stopped_node() {
    let s = careless(
        r#"
        for id in followers_at_start() {
            node::stop(id FORCE);
            node::install(id, target FORCE);
            node::start(id);
            node::wait_rejoined(id, 30);
            node::wait_caught_up(id, 100, 30);
        }
        "#,
        Fault::None,
    );
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert_eq!(s.leader_losses, 0, "{s:?}");
    stock_is_harmless(Fault::None);
}

#[test]
fn two_followers_at_once_on_three_nodes_lose_quorum() {
    let s = careless(TWO_AT_ONCE, Fault::None);
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert!(s.quorum_lost_ms > 2000, "{s:?}");
    assert!(s.leader_losses >= 1, "{s:?}");
    stock_is_harmless(Fault::None);
}

#[test]
fn ignoring_a_partitioned_member_loses_quorum() {
    let s = careless(IGNORES_A_PARTITION, Fault::Partition("node3"));
    assert!(s.client_writes_failed > 100, "{s:?}");
    assert!(s.quorum_lost_ms > 2000, "{s:?}");
    assert!(s.leader_losses >= 1, "{s:?}");
    stock_is_harmless(Fault::Partition("node3"));
}

/// The forced transfer to lagging node2 is abandoned; the old leader's stop then hands over to node3,
/// and with node2 still behind, node3 and node2 are the majority: commits wait on node2.
#[test]
fn a_forced_transfer_to_a_lagging_node_stalls_writes_then_loses_quorum() {
    let s = careless(TRANSFER_TO_A_LAGGING_NODE, Fault::SlowCatchup("node2"));
    assert!(s.max_commit_stall_ms > 2000, "{s:?}");
    assert!(s.quorum_lost_ms > 2000, "{s:?}");
    assert!(s.client_writes_failed > 100, "{s:?}");
    stock_is_harmless(Fault::SlowCatchup("node2"));
}

#[test]
fn a_full_restart_with_two_members_wiped_loses_committed_writes() {
    let wiped = Fault::WipedOnStop(&["node2", "node3"]);
    // On intact disks the same restart costs writes, but loses none it acknowledged.
    let s = careless(FULL_RESTART, Fault::None);
    assert_eq!(s.lost_committed_writes, 0, "{s:?}");
    let s = careless(FULL_RESTART, wiped);
    assert!(s.lost_committed_writes > 100, "{s:?}");
    // The stock runbook meets the same wipes one node at a time: each comes back through a snapshot
    // from a leader that holds everything, and it waits for that before going on.
    stock_is_harmless(wiped);
}

/// Without `#{force: true}` the interlocks stop each of these before the harmful call: exit 3, the rule
/// named, and no harm in the simulator's records.
#[test]
fn the_interlocks_refuse_these_variants_before_they_do_harm() {
    for (body, fault) in [
        (LEADER_FIRST, Fault::None),
        (LEADER_RESTARTED_IN_PLACE, Fault::None),
        (NO_CATCH_UP_WAIT, Fault::SlowCatchup("node2")),
        (TWO_AT_ONCE, Fault::None),
        (IGNORES_A_PARTITION, Fault::Partition("node3")),
        (TRANSFER_TO_A_LAGGING_NODE, Fault::SlowCatchup("node2")),
        (FULL_RESTART, Fault::WipedOnStop(&["node2", "node3"])),
    ] {
        let (c, baseline) = cluster(fault);
        let path = c.dir.path().join("careless.rhai");
        std::fs::write(&path, script(body, false)).unwrap();
        let (_, stderr) = expect(&c.run(&["--yes", path.to_str().unwrap(), "0.11.0"]), 3);
        assert!(stderr.contains("refused"), "{stderr}");
        let s = during(&c, &baseline);
        assert_eq!(
            (s.client_writes_failed, s.leader_losses, s.quorum_lost_ms),
            (0, 0, 0),
            "{body}\n{s:?}\n{stderr}"
        );
        if body == LEADER_FIRST || body == LEADER_RESTARTED_IN_PLACE {
            // Refused by the leader interlock, which names the hand-over that would make it safe, and
            // nothing reached the leader's host.
            assert!(
                stderr.contains("refused by the leader interlock"),
                "{stderr}"
            );
            assert!(
                stderr.contains("hand leadership over first with raft::transfer_leadership(\"node"),
                "{stderr}"
            );
            assert_eq!(c.events_of(&["stop", "restart"]), vec![], "{stderr}");
        }
    }
}
