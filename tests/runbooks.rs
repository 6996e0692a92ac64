//! The stock rolling upgrade against simulated clusters, judged by what the cluster itself recorded.

use crate::support::{expect, Cluster};

/// Runs the rolling upgrade and checks the runbook's promises: every node and the leader on the
/// target, no client write failed, quorum held, one leader per term, followers before the leader.
fn upgrade_and_verify(nodes: usize) -> Cluster {
    let c = Cluster::start(nodes, "0.10.4");
    let first_leader = c.leader();
    let out = c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]);
    let (stdout, stderr) = expect(&out, 0);
    assert!(
        stdout.contains("rolling upgrade complete: every node runs 0.11.0"),
        "{stdout}"
    );
    for step in [
        "pre-upgrade checks",
        "upgrade follower",
        "transfer leadership from",
        "upgrade the old leader",
        "post-upgrade verification",
    ] {
        assert!(stderr.contains(step), "missing step {step:?} in\n{stderr}");
    }

    let versions = c.versions();
    assert_eq!(versions.len(), nodes);
    assert!(versions.values().all(|v| v == "0.11.0"), "{versions:?}");
    let leader = c.leader();
    assert_eq!(versions[&leader], "0.11.0");

    let st = c.stats();
    assert_eq!(st.client_writes_failed, 0, "{st:?}");
    assert!(st.client_writes_ok > 0, "{st:?}");
    assert_eq!(st.lost_committed_writes, 0);
    assert_eq!(st.max_leaders_in_a_term, 1, "{st:?}");
    let quorum = nodes / 2 + 1;
    assert!(st.min_healthy_seen as usize >= quorum, "{st:?}");
    // The hand-over is the only election, a completed one; a majority stayed up and caught up, and
    // commits paused only for the hand-over itself.
    assert_eq!((st.leader_losses, st.quorum_lost_ms), (0, 0), "{st:?}");
    assert_eq!(st.elections, 1, "{st:?}");
    assert!(st.max_commit_stall_ms <= 100, "{st:?}");

    // Every node stopped exactly once, and the first leader last, after leadership left it.
    let stops = c.events_of(&["stop", "transfer"]);
    let stop_nodes: Vec<&str> = stops
        .iter()
        .filter(|(k, _)| k == "stop")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(stop_nodes.len(), nodes, "{stops:?}");
    assert_eq!(*stop_nodes.last().unwrap(), first_leader, "{stops:?}");
    // Every stop comes after a drain of that node with no undrain in between. Whether writes then fail
    // depends on load-balancer timing, so the order itself is checked.
    let mut drained = std::collections::BTreeSet::new();
    for (kind, node) in c.events_of(&["drain", "undrain", "stop", "start"]) {
        match kind.as_str() {
            "drain" => {
                drained.insert(node);
            }
            "undrain" | "start" => {
                drained.remove(&node);
            }
            _ => assert!(
                drained.contains(&node),
                "{node} stopped without being drained"
            ),
        }
    }
    let transfer_at = stops
        .iter()
        .position(|(k, _)| k == "transfer")
        .expect("a leadership transfer");
    assert_eq!(
        transfer_at,
        stops.len() - 2,
        "transfer right before the old leader stops: {stops:?}"
    );
    c
}

#[test]
fn three_nodes_upgrade_with_no_failed_write() {
    upgrade_and_verify(3);
}

#[test]
fn five_nodes_upgrade_with_no_failed_write() {
    upgrade_and_verify(5);
}

#[test]
fn a_second_run_is_a_no_op() {
    let c = upgrade_and_verify(3);
    let before = c
        .events_of(&[
            "drain", "stop", "install", "stage", "activate", "start", "transfer",
        ])
        .len();
    let (stdout, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    assert!(
        stderr.contains("every node already runs 0.11.0: nothing to upgrade"),
        "{stderr}"
    );
    assert!(stdout.contains("rolling upgrade complete"));
    assert_eq!(
        c.events_of(&["drain", "stop", "install", "stage", "activate", "start", "transfer"])
            .len(),
        before
    );
}

#[test]
fn node10_is_never_confused_with_node1() {
    let c = Cluster::start(11, "0.10.4");
    let (stdout, _) = expect(&c.run(&["-e", "node::status(\"node10\").id"]), 0);
    assert_eq!(stdout.trim(), "node10");
    expect(&c.run(&["-e", "node::drain(\"node10\"); node::wait_drained(\"node10\", 10); node::undrain(\"node10\")"]), 0);
    let drains = c.events_of(&["drain", "undrain"]);
    assert_eq!(
        drains,
        vec![
            ("drain".into(), "node10".into()),
            ("undrain".into(), "node10".into())
        ]
    );

    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    // Pre-staged: each node's staged build is activated exactly once, on that node.
    let switched = c.events_of(&["install", "activate"]);
    for i in 1..=11 {
        let id = format!("node{i}");
        assert_eq!(
            switched
                .iter()
                .filter(|(k, n)| k == "activate" && *n == id)
                .count(),
            1,
            "{id}: {switched:?}"
        );
    }
    assert!(
        !switched.iter().any(|(k, _)| k == "install"),
        "{switched:?}"
    );
    assert_eq!(c.stats().client_writes_failed, 0);
}

/// An incompatible jump stops with exit 3 before touching anything.
fn refused(from: &str, to: &str, why: &str) {
    let c = Cluster::start(3, from);
    let (_, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai", to]), 3);
    assert!(stderr.contains("stopped safely:"), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("nothing was changed"),
        "{stderr}"
    );
    assert!(c.versions().values().all(|v| v == from));
    assert_eq!(
        c.events_of(&["drain", "stop", "install", "start", "transfer", "pause"]),
        vec![]
    );
}

#[test]
fn refuses_two_minor_versions_at_once() {
    refused("0.8.2", "0.10.0", "blue-green");
}

#[test]
fn refuses_zero_x_to_one_zero() {
    refused("0.11.2", "1.0.0", "changes the major version");
}

#[test]
fn refuses_a_downgrade() {
    refused("0.11.0", "0.10.4", "downgrade");
}

#[test]
fn without_a_terminal_or_yes_it_asks_and_changes_nothing() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["rolling_upgrade.rhai", "0.11.0"]), 2);
    assert!(
        stderr.contains("there is no terminal to ask on: re-run with --yes"),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain", "stop", "install"]), vec![]);
}

#[test]
fn an_unhealthy_cluster_is_not_touched() {
    let c = Cluster::start(3, "0.10.4");
    expect(&c.run(&["-e", "node::drain(\"node3\")"]), 0);
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "healthy_timeout_secs=1",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        3,
    );
    assert!(
        stderr.contains("the cluster is not healthy") && stderr.contains("node3: drained"),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["stop", "install"]), vec![]);
}

#[test]
fn the_readme_command_runs_on_the_embedded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::bare(dir.path())
        .args([
            "--sim",
            "--sim-speed",
            "20",
            "rolling_upgrade.rhai",
            "0.11.0",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(stdout.contains("every node runs 0.11.0"));
    // The embedded simulator's closing line reports its own stats; read the figures, not a substring
    // ("10 failed" contains "0 failed").
    let line = sim_line(&stderr);
    assert!(figure(&line, " client writes ok") > 0, "{line}");
    assert_eq!(figure(&line, " failed"), 0, "{line}");
    assert_eq!(figure(&line, " committed writes lost"), 0, "{line}");
    // The leader was handed over, never lost; one node down at a time keeps a quorum.
    assert_eq!(figure(&line, " leader losses"), 0, "{line}");
    assert_eq!(figure(&line, " ms without quorum"), 0, "{line}");
}

/// The embedded simulator's closing line, after "simulator: ".
fn sim_line(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("simulator: ")
                .map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_else(|| panic!("no simulator stats line:\n{stderr}"))
}

/// The number just before `label` in the simulator's line.
fn figure(line: &str, label: &str) -> u64 {
    let before = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no `{label}` in: {line}"))
        .0;
    let n = before
        .trim_end()
        .rsplit([' ', ',', ';'])
        .next()
        .unwrap_or("");
    n.parse()
        .unwrap_or_else(|e| panic!("`{n}` before `{label}` in {line}: {e}"))
}

#[test]
fn the_simulator_line_counts_a_lost_leader_and_time_without_quorum() {
    // Both followers forced down: the leader loses its majority and steps down. The line's figures are
    // the simulator's own, and not always zero.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::bare(dir.path())
        .args([
            "--sim",
            "--sim-speed",
            "20",
            "-e",
            r#"node::stop("node2", #{force: true}); node::stop("node3", #{force: true}); sleep(5); node::start("node2"); node::start("node3"); 1"#,
        ])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 0);
    let line = sim_line(&stderr);
    assert!(figure(&line, " leader losses") >= 1, "{line}");
    assert!(figure(&line, " ms without quorum") >= 1000, "{line}");
}
