//! The fault matrix: each fault the simulator can inject, at each phase of the rolling upgrade it applies
//! to, judged by the cluster's own record. Plus Ctrl-C and the audit journal.

use neumann_script::sim::{FaultKind, SimConfig};

use crate::support::{expect, journal, journal_ops, signal, Cluster, Running, SPEED};

/// Short timeouts so a fault is noticed in seconds, not the minutes a real cluster deserves.
/// The in-window path (`prestage=false`), so each install fault strikes while the node is down; staging
/// failures are tests/staging.rs.
const FAST: &[&str] = &[
    "--yes",
    "--set",
    "prestage=false",
    "--set",
    "healthy_timeout_secs=2",
    "--set",
    "rejoin_timeout_secs=4",
    "--set",
    "catchup_timeout_secs=3",
    "rolling_upgrade.rhai",
    "0.11.0",
];

enum When {
    /// Injected before the run starts.
    Before,
    /// Fired by the simulator itself the moment it logs (kind, node).
    After(&'static str, &'static str),
}

/// Runs the upgrade with `fault` on `node`, then checks: the exit code, the stop message naming the node
/// and the `cause` it saw, the invariants, nothing left down without the message saying so, and a re-run
/// after heal finishing.
fn scenario(nodes: usize, fault: &str, node: &str, when: When, exit: i32, cause: &str) {
    let c = Cluster::start(nodes, "0.10.4");
    match when {
        When::Before => c.inject(node, fault),
        When::After(kind, at) => c.inject_when(node, fault, kind, at),
    }
    let out = c.run(FAST);
    let (_, stderr) = expect(&out, exit);
    // The fault happened, and where it was meant to: right after the trigger event.
    let events = c.events();
    let fired = events
        .iter()
        .position(|e| e.kind == "fault" && e.detail == fault && e.node.as_deref() == Some(node))
        .unwrap_or_else(|| panic!("no `{fault}` fault on {node} in {events:?}"));
    if let When::After(kind, at) = when {
        let t = events[fired].t;
        assert!(
            events[..fired]
                .iter()
                .any(|e| e.t == t && e.kind == kind && e.node.as_deref() == Some(at)),
            "the fault should fire at the `{kind}` of {at}: {events:?}"
        );
    }
    if exit == 3 {
        assert!(stderr.contains("stopped safely:"), "{stderr}");
        let stop = stderr
            .lines()
            .find(|l| l.starts_with("stopped safely:"))
            .unwrap_or_default();
        let cause = cause.replace("{node}", node);
        assert!(
            stop.contains(&format!("{node}:")) && stop.contains(&cause),
            "the stop message should name {node} and say `{cause}`: {stop}\n--- stderr\n{stderr}"
        );
    }

    let st = c.stats();
    assert_eq!(st.lost_committed_writes, 0, "{st:?}");
    assert_eq!(st.max_leaders_in_a_term, 1, "{st:?}");
    // Only a fault that takes the leader itself away costs a leader; the runbook never does.
    let takes_the_leader = node == "node1" && ["crash", "hang", "partition"].contains(&fault);
    assert_eq!(st.leader_losses, u64::from(takes_the_leader), "{st:?}");
    let quorum = nodes / 2 + 1;
    assert!(st.min_healthy_seen as usize >= quorum, "{st:?}");
    for (id, state) in c.not_up() {
        assert!(
            stderr.contains(&id),
            "{id} is {state} and the output never says so:\n{stderr}"
        );
    }

    c.inject(node, "heal");
    if fault == "crash" {
        c.host(node, "start");
    }
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "healthy_timeout_secs=30",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        0,
    );
    assert!(
        c.versions().values().all(|v| v == "0.11.0"),
        "after the re-run:\n{stderr}"
    );
}

// Before the run: the pre-upgrade checks refuse, or the first node's upgrade stops safely.
#[test]
fn crash_before_start() {
    scenario(3, "crash", "node2", When::Before, 3, "connection refused");
}
#[test]
fn hang_before_start() {
    scenario(3, "hang", "node2", When::Before, 3, "no answer within");
}
#[test]
fn partition_before_start() {
    scenario(
        3,
        "partition",
        "node2",
        When::Before,
        3,
        "{node}: unhealthy",
    );
}
#[test]
fn slow_catchup_on_the_first_follower() {
    scenario(
        3,
        "slow_catchup",
        "node2",
        When::Before,
        3,
        "has not caught up",
    );
}
#[test]
fn failed_install_on_the_first_follower() {
    scenario(
        3,
        "fail_install",
        "node2",
        When::Before,
        3,
        "install failed",
    );
}
#[test]
fn flaky_admin_api_does_not_stop_the_upgrade() {
    scenario(3, "flaky", "node2", When::Before, 0, "");
}

// On a follower mid-upgrade: node2 is restarting when the next follower, node3, breaks.
#[test]
fn crash_of_the_next_follower_mid_upgrade() {
    scenario(
        5,
        "crash",
        "node3",
        When::After("start", "node2"),
        3,
        "connection refused",
    );
}
#[test]
fn hang_of_the_next_follower_mid_upgrade() {
    scenario(
        5,
        "hang",
        "node3",
        When::After("start", "node2"),
        3,
        "no answer within",
    );
}
#[test]
fn partition_of_the_next_follower_mid_upgrade() {
    scenario(
        5,
        "partition",
        "node3",
        When::After("start", "node2"),
        3,
        "{node}: unhealthy",
    );
}
#[test]
fn failed_install_on_the_next_follower_mid_upgrade() {
    scenario(
        5,
        "fail_install",
        "node3",
        When::After("start", "node2"),
        3,
        "install failed",
    );
}
#[test]
fn slow_catchup_on_the_next_follower_mid_upgrade() {
    scenario(
        5,
        "slow_catchup",
        "node3",
        When::After("start", "node2"),
        3,
        "has not caught up",
    );
}
#[test]
fn the_upgraded_node_crashes_while_starting_and_is_put_back() {
    scenario(
        5,
        "crash",
        "node2",
        When::After("start", "node2"),
        3,
        "did not come back on 0.11.0",
    );
}

// On the leader around the hand-over: the last follower is restarting when the leader breaks.
#[test]
fn crash_of_the_leader_before_transfer() {
    scenario(
        5,
        "crash",
        "node1",
        When::After("start", "node5"),
        3,
        "connection refused",
    );
}
#[test]
fn hang_of_the_leader_before_transfer() {
    scenario(
        5,
        "hang",
        "node1",
        When::After("start", "node5"),
        3,
        "no answer within",
    );
}
#[test]
fn partition_of_the_leader_before_transfer() {
    scenario(
        5,
        "partition",
        "node1",
        When::After("start", "node5"),
        3,
        "{node}: unhealthy",
    );
}
#[test]
fn failed_install_on_the_old_leader() {
    scenario(
        5,
        "fail_install",
        "node1",
        When::After("start", "node5"),
        3,
        "install failed",
    );
}
#[test]
fn flaky_leader_does_not_stop_the_upgrade() {
    scenario(5, "flaky", "node1", When::After("start", "node5"), 0, "");
}

// The network splits while node2 restarts: the leader and node2 on one side, the other three on the
// other. The majority elects a leader of its own; the run stops before touching another node.
#[test]
fn a_split_leaving_the_leader_in_the_minority_mid_upgrade() {
    let c = Cluster::start(5, "0.10.4");
    c.partition_groups_when(
        &[&["node1", "node2"], &["node3", "node4", "node5"]],
        "start",
        "node2",
    );
    let (_, stderr) = expect(&c.run(FAST), 3);
    let stop = stderr
        .lines()
        .find(|l| l.starts_with("stopped safely:"))
        .unwrap_or_default();
    assert!(stop.contains("node1") || stop.contains("node2"), "{stderr}");
    let st = c.stats();
    assert_eq!(
        (
            st.leader_losses,
            st.lost_committed_writes,
            st.max_leaders_in_a_term
        ),
        (1, 0, 1),
        "{st:?}"
    );
    let elected: Vec<String> = c
        .events()
        .into_iter()
        .filter(|e| e.kind == "elected")
        .filter_map(|e| e.node)
        .collect();
    assert!(
        elected
            .iter()
            .all(|n| ["node3", "node4", "node5"].contains(&n.as_str())),
        "only the majority side can elect: {elected:?}"
    );
    assert!(!elected.is_empty());
    let installs = c.events_of(&["install"]);
    assert!(
        !installs.is_empty() && installs.iter().all(|(_, n)| n == "node2"),
        "no node but node2 was touched: {installs:?}"
    );
}

#[test]
fn the_failed_install_message_says_the_node_is_back_on_its_old_version() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node2", "fail_install");
    let (_, stderr) = expect(&c.run(FAST), 3);
    assert!(
        stderr.contains(
            "node2: install failed: `cargo install neumann --version 0.11.0` exited with status"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("node2 was started again on 0.10.4 and has rejoined"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("node2: node2:"),
        "the node named once: {stderr}"
    );
    assert_eq!(c.versions()["node2"], "0.10.4");
    assert_eq!(c.not_up(), vec![]);
    assert_eq!(c.stats().client_writes_failed, 0);
}

/// Real-time-ish, so an install lasts 1.5 s: long enough to press Ctrl-C in the middle of it.
fn slow_cluster() -> Cluster {
    Cluster::with(neumann_script::sim::SimConfig {
        speed: 2.0,
        ..Default::default()
    })
}

#[test]
fn ctrl_c_during_an_install_finishes_the_restart_then_exits_130() {
    let c = slow_cluster();
    // The install lasts 1.5 s at this speed; the tool announces it as it begins.
    let out = c.run_until_stderr(
        &[
            "--yes",
            "--set",
            "prestage=false",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
        "node2: install (",
        |child| signal(child, "INT"),
    );
    let (_, stderr) = expect(&out, 130);
    assert!(
        stderr.contains("interrupted: finishing the restart of node2 first"),
        "{stderr}"
    );
    assert!(stderr.contains("state now:"), "{stderr}");
    // node2 was not left stopped: it was started before the run ended.
    let kinds: Vec<(String, String)> = c.events_of(&["stop", "start"]);
    assert_eq!(
        kinds.last(),
        Some(&("start".to_string(), "node2".to_string())),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(_, n)| n == "node3"),
        "stopped at the next safe point, not later: {kinds:?}"
    );
    assert_eq!(c.stats().client_writes_failed, 0);
}

#[test]
fn ctrl_c_cancels_a_blocked_wait() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node2", "slow_catchup");
    let mut sent = None;
    let out = c.run_until_stderr(
        &[
            "--yes",
            "--set",
            "catchup_timeout_secs=600",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
        "waiting for node2 to catch up",
        |child| {
            sent = Some(std::time::Instant::now());
            signal(child, "INT");
        },
    );
    let sent = sent.unwrap();
    let (_, stderr) = expect(&out, 130);
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        sent.elapsed()
    );
    assert!(
        stderr.contains("node2 to catch up (lag <= 100 ms): interrupted"),
        "{stderr}"
    );
    assert!(stderr.contains("node2 (changed by this run)"), "{stderr}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_says_what_it_leaves() {
    let c = slow_cluster();
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--set",
            "prestage=false",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("node2: install (");
    run.signal("INT");
    // Two signals sent back to back can arrive as one: the second goes once the first was taken.
    run.until("interrupted: finishing the restart of node2");
    run.signal("INT");
    let (_, seen) = expect(&run.finish(), 130);
    assert!(seen.contains("leaving node2 STOPPED"), "{seen}");
}

#[test]
fn the_journal_records_every_mutating_call() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    // The default journal lives under the user's state directory (HOME is the test's temp dir).
    let path = c.default_journal();
    assert!(path.exists(), "no journal at {}\n{stderr}", path.display());
    let lines = journal(&path);
    // The run's course: one run id on every line, opened by run_start and closed by run_end, with
    // each step's start before its end.
    let run_id = lines[0]["run_id"].as_str().unwrap().to_string();
    assert!(lines.iter().all(|l| l["run_id"] == run_id.as_str()));
    assert_eq!(lines[0]["event"], "run_start", "{}", lines[0]);
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["event"], &last["result"]),
        (&"run_end".into(), &"done".into())
    );
    let started = |name: &str| {
        lines
            .iter()
            .position(|l| l["event"] == "step_start" && l["name"] == name)
    };
    let ended = |name: &str| {
        lines
            .iter()
            .position(|l| l["event"] == "step_end" && l["name"] == name && l["result"] == "ok")
    };
    let checks = "pre-upgrade checks";
    assert!(
        started(checks).unwrap() < ended(checks).unwrap(),
        "{lines:?}"
    );
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .filter(|l| l.get("op").is_some())
        .collect();
    let stock = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/rolling_upgrade.rhai"
    ))
    .unwrap();
    let sha = neumann_script::journal::sha256_hex(&stock);
    for l in &lines {
        assert_eq!(l["script"], "<stock>/rolling_upgrade.rhai");
        assert_eq!(l["script_sha256"], sha.as_str());
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
    // Beside the run's course (`"event"` lines), every mutating call, each with its result.
    let calls: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l.get("event").is_none()).collect();
    for l in &calls {
        assert_eq!(l["result"], "ok", "{l}");
    }
    for node in ["node1", "node2", "node3"] {
        let ops: Vec<&str> = calls
            .iter()
            .filter(|l| l["node"] == node)
            .filter_map(|l| l["op"].as_str())
            .collect();
        for op in [
            "node::stage",
            "node::drain",
            "node::stop",
            "node::activate",
            "node::start",
        ] {
            assert!(ops.contains(&op), "{node}: {op} missing from {ops:?}");
        }
    }
    let staged = calls.iter().find(|l| l["op"] == "node::stage_all").unwrap();
    assert_eq!(staged["args"]["version"], "0.11.0");
    assert_eq!(
        staged["args"]["ids"],
        serde_json::json!(["node1", "node2", "node3"])
    );
    let activate = calls.iter().find(|l| l["op"] == "node::activate").unwrap();
    assert_eq!(activate["args"]["version"], "0.11.0");
    assert!(calls.iter().any(|l| l["op"] == "raft::transfer_leadership"));

    // --journal chooses the file; a failed call is recorded with its error.
    let j = c.dir.path().join("j.jsonl");
    expect(
        &c.run(&[
            "--journal",
            j.to_str().unwrap(),
            "-e",
            "node::install(\"node2\", \"0.11.9\")",
        ]),
        1,
    );
    let calls = journal_ops(&j);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let line = &calls[0];
    assert_eq!(
        (line["op"].as_str(), line["result"].as_str()),
        (Some("node::install"), Some("error"))
    );
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("could not find `neumann`"),
        "{line}"
    );
}

/// A slow follower that holds the commit index back: node3 down, node2 back from a stop and catching up
/// at its slow rate, so node1 and node2 are the majority and the commit index moves only at node2's pace,
/// seconds behind every write. The tool sees node2 lagging, and the simulator's stall and time without
/// quorum keep rising with the failed writes.
#[test]
fn a_follower_holding_the_commit_back_is_seen_lagging_and_stalls_the_writes() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node2", "slow_catchup");
    c.host("node2", "stop");
    c.wait_until_sim(c.clock() + 8.0);
    c.host("node2", "start");
    c.host("node3", "stop");
    // Past the commit index node3 left behind: the commit index moves again from here on.
    c.wait_until_sim(c.clock() + 12.0);
    let a = c.stats();
    c.wait_until_sim(c.clock() + 4.0);
    let b = c.stats();
    assert!(
        b.client_writes_failed > a.client_writes_failed + 900,
        "{a:?}\n{b:?}"
    );
    assert!(
        b.max_commit_stall_ms >= a.max_commit_stall_ms + 3900,
        "{a:?}\n{b:?}"
    );
    assert!(b.quorum_lost_ms >= a.quorum_lost_ms + 3900, "{a:?}\n{b:?}");
    let (stdout, _) = expect(
        &c.run(&["-e", "node::status(\"node2\").replication_lag_ms"]),
        0,
    );
    let lag: f64 = stdout.trim().parse().unwrap();
    assert!(lag > 3000.0, "node2's lag {lag} ms");
}

/// `cluster::test_transaction()` takes the clients' path: committed, it is logged with its index; with
/// both followers down it waits out its 2 s deadline and fails, counted with the failed writes.
#[test]
fn the_test_transaction_waits_for_its_commit_like_a_client_write() {
    let c = Cluster::start(3, "0.10.4");
    let (stdout, _) = expect(&c.run(&["-e", "cluster::test_transaction().leader"]), 0);
    assert_eq!(stdout.trim(), "node1");
    let probes = |c: &Cluster| -> Vec<String> {
        c.events()
            .into_iter()
            .filter(|e| e.kind == "probe")
            .map(|e| e.detail)
            .collect()
    };
    let seen = probes(&c);
    assert!(
        seen.len() == 1 && seen[0].starts_with("test transaction committed at index"),
        "{seen:?}"
    );
    c.inject("node2", "crash");
    c.inject("node3", "crash");
    let before = c.stats();
    let (_, stderr) = expect(&c.run(&["-e", "cluster::test_transaction()"]), 1);
    assert!(
        stderr.contains("test transaction not committed within its 2 s deadline"),
        "{stderr}"
    );
    let after = c.stats();
    assert!(
        after.client_writes_failed > before.client_writes_failed,
        "{after:?}"
    );
    assert!(
        probes(&c)[1..].iter().all(|p| p.starts_with("failed: ")) && probes(&c).len() > 1,
        "{:?}",
        probes(&c)
    );
}

// The data directory's faults (docs/SIMULATOR.md): the stock runbook on a member restored from an old
// backup, and a power cut on disks that acknowledge before they write.

#[test]
fn a_member_restored_from_an_old_backup_comes_back_through_a_snapshot() {
    let c = Cluster::start(3, "0.10.4");
    // The backup holds index 900; by 30 s the leader has compacted its log past it.
    c.wait_until_sim(30.0);
    c.inject_when("node3", "restore_backup", "stop", "node3");
    let before = c.stats();
    expect(&c.run(FAST), 0);
    let s = c.stats();
    assert_eq!(
        (
            s.client_writes_failed - before.client_writes_failed,
            s.lost_committed_writes,
            s.max_leaders_in_a_term
        ),
        (0, 0, 1),
        "{s:?}"
    );
    let events = c.events();
    let restored = events
        .iter()
        .find(|e| e.kind == "disk" && e.node.as_deref() == Some("node3"))
        .expect("node3 started on the backup");
    assert!(restored.detail.contains("index 900"), "{restored:?}");
    assert!(events.iter().any(|e| e.kind == "snapshot_installed"
        && e.node.as_deref() == Some("node3")
        && e.t > restored.t));
}

#[test]
fn a_power_cut_on_unsynced_disks_loses_acknowledged_writes() {
    let cluster = |unsynced: bool| {
        let faults = if unsynced {
            (1..=3)
                .map(|n| (format!("node{n}"), FaultKind::UnsyncedDisk))
                .collect()
        } else {
            Vec::new()
        };
        let c = Cluster::with(SimConfig {
            speed: SPEED,
            faults,
            ..SimConfig::default()
        });
        c.wait_until_sim(3.0);
        // All three at the same simulated instant, as a power cut takes them (one fault fires per
        // event, so each crash sets off the next).
        c.inject_when("node2", "crash", "crash", "node1");
        c.inject_when("node3", "crash", "crash", "node2");
        c.inject("node1", "crash");
        c
    };
    let c = cluster(true);
    let s = c.stats();
    assert!(s.lost_committed_writes > 100, "{s:?}");
    let disk = c.events_of(&["disk"]);
    assert_eq!(disk.len(), 3, "{disk:?}");
    // Disks that write before they acknowledge lose nothing in the same cut.
    let s = cluster(false).stats();
    assert_eq!(s.lost_committed_writes, 0, "{s:?}");
}
