//! The canary, rollback and metrics analysis on the simulator, judged by what the cluster recorded.

use neumann_script::sim::SimConfig;

use crate::support::{expect, Cluster};

/// Windows of 10 simulated seconds (half a second of real time): a broken release aborts 5% of its
/// writes, and a 1 s window of a freshly restarted node can hold too few writes to show one.
const WATCH: &[&str] = &[
    "--yes",
    "--set",
    "monitor_secs=20",
    "--set",
    "interval_secs=10",
];

#[test]
fn a_bad_release_is_caught_and_the_canary_rolled_back() {
    let c = Cluster::with_bad(5, "0.11.0");
    let mut args = WATCH.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.0"]);
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains("stopped safely: canary node5 failed on 0.11.0: error rate"),
        "{stderr}"
    );
    assert!(stderr.contains("is at or above 0.1%"), "{stderr}");
    assert!(
        stderr.contains("It was rolled back to 0.10.4: every node runs 0.10.4 again"),
        "{stderr}"
    );
    assert!(c.versions().values().all(|v| v == "0.10.4"));
    // Pre-staged both ways: the canary activated 0.11.0, then its old 0.10.4, still staged, without
    // compiling anything while down.
    let switched: Vec<(String, String, String)> = c
        .events()
        .into_iter()
        .filter(|e| e.kind == "install" || e.kind == "activate")
        .map(|e| (e.kind, e.node.unwrap_or_default(), e.detail))
        .collect();
    assert_eq!(
        switched,
        vec![
            ("activate".into(), "node5".into(), "0.11.0 activated".into()),
            ("activate".into(), "node5".into(), "0.10.4 activated".into())
        ]
    );
    assert_eq!(c.stats().client_writes_failed, 0);
}

#[test]
fn a_good_release_passes_with_only_the_canary_upgraded() {
    let c = Cluster::with_bad(3, "0.11.0");
    let mut args = WATCH.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.1", "node2"]);
    let (stdout, stderr) = expect(&c.run(&args), 0);
    // The watch runs on the simulator's clock: on a busy machine the time between checks counts too, so
    // the 20 s watch holds one or two checks.
    assert!(
        stdout.contains("canary node2 healthy on 0.11.1 after 2 checks")
            || stdout.contains("canary node2 healthy on 0.11.1 after 1 check over"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("next: neumann-script rolling_upgrade.rhai 0.11.1"),
        "{stdout}"
    );
    assert_eq!(c.version_list(), ["0.10.4", "0.11.1", "0.10.4"]);

    // proceed=true goes on into the rolling upgrade; the canary is skipped as already done.
    let mut args = WATCH.to_vec();
    args.extend([
        "--set",
        "proceed=true",
        "canary_upgrade.rhai",
        "0.11.1",
        "node2",
    ]);
    let (stdout, _) = expect(&c.run(&args), 0);
    assert!(
        stdout.contains("rolling upgrade complete: every node runs 0.11.1"),
        "{stdout}"
    );
    assert!(c.versions().values().all(|v| v == "0.11.1"));
    // The canary was switched once, by the first run; the second skipped it.
    let switched = c.events_of(&["install", "activate"]);
    assert_eq!(
        switched.iter().filter(|(_, n)| n == "node2").count(),
        1,
        "{switched:?}"
    );
    assert!(
        !switched.iter().any(|(k, _)| k == "install"),
        "{switched:?}"
    );
}

#[test]
fn the_canary_must_be_a_follower_of_this_cluster() {
    let c = Cluster::start(3, "0.10.4");
    let mut args = WATCH.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.0", "node1"]);
    let (_, stderr) = expect(&c.run(&args), 2);
    assert!(
        stderr.contains("node1 is the leader; the canary must be a follower"),
        "{stderr}"
    );
    let mut args = WATCH.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.0", "node9"]);
    let (_, stderr) = expect(&c.run(&args), 2);
    assert!(stderr.contains("unknown node \"node9\""), "{stderr}");
    assert_eq!(c.events_of(&["drain", "stop"]), vec![]);
}

#[test]
fn rollback_restores_the_named_nodes_and_resumes() {
    let c = Cluster::start(3, "0.10.4");
    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let (stdout, _) = expect(&c.run(&["--yes", "rollback.rhai", "0.10.4", "node3"]), 0);
    assert!(
        stdout.contains("rollback complete: node3 run 0.10.4"),
        "{stdout}"
    );
    assert_eq!(c.version_list(), ["0.11.0", "0.11.0", "0.10.4"]);
    let pauses = c.events_of(&["pause", "resume"]);
    assert_eq!(
        pauses.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["pause", "resume"]
    );

    // Without names: every node not on the old version, the leader last.
    let leader = c.leader();
    expect(&c.run(&["--yes", "rollback.rhai", "0.10.4"]), 0);
    assert!(c.versions().values().all(|v| v == "0.10.4"));
    let stops: Vec<String> = c.events_of(&["stop"]).into_iter().map(|(_, n)| n).collect();
    assert_eq!(stops.last(), Some(&leader), "{stops:?}");
    let st = c.stats();
    assert_eq!((st.lost_committed_writes, st.max_leaders_in_a_term), (0, 1));
}

#[test]
fn rollback_refuses_after_a_schema_change_and_changes_nothing() {
    let c = Cluster::start(3, "0.10.4");
    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let before = c.events().len();
    c.mark_rollback_limit("feature", "tx_v2 batching", "0.11.0");
    let (_, stderr) = expect(&c.run(&["--yes", "rollback.rhai", "0.10.4"]), 3);
    assert!(
        stderr.contains(
            "cannot roll back to 0.10.4: feature \"tx_v2 batching\" (since 0.11.0). The runbook forbids"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    assert!(c.versions().values().all(|v| v == "0.11.0"));
    let after: Vec<_> = c
        .events()
        .into_iter()
        .skip(before)
        .filter(|e| ["pause", "drain", "stop"].contains(&e.kind.as_str()))
        .collect();
    assert!(after.is_empty(), "{after:?}");
    let (stdout, _) = expect(
        &c.run(&["-e", "cluster::health().rollback_limits[0].since"]),
        0,
    );
    assert_eq!(stdout.trim(), "0.11.0");
}

#[test]
fn compare_and_sample_measure_a_bad_node_against_its_peers() {
    let c = Cluster::with_bad(3, "0.11.0");
    let script = r#"
        node::drain("node3"); node::wait_drained("node3", 10); node::stop("node3");
        node::install("node3", "0.11.0"); node::start("node3"); node::wait_rejoined("node3", 20);
        // 10 s holds some 900 writes: a 5% abort rate cannot hide in it, as it could in 160.
        let c = metrics::compare("node3", ["node1", "node2"], 10);
        let s = metrics::sample("node1", 1);
        let seen = [];
        let n = metrics::watch("node2", 10, 0.5, |f| { seen.push(f.tx_per_sec); seen.len() < 2 });
        #{ compare: c, sample: s, watched: n, seen: seen.len() }
    "#;
    let (stdout, _) = expect(&c.run(&["--format", "json", "-e", script]), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let cmp = &v["compare"];
    assert!(
        cmp["error_rate"]["canary"].as_f64().unwrap() > 0.01,
        "{cmp}"
    );
    assert_eq!(cmp["error_rate"]["baseline"].as_f64(), Some(0.0));
    assert!(
        cmp["latency_p99_ms"]["ratio"].as_f64().unwrap() > 2.0,
        "{cmp}"
    );
    // About 1.6x, give or take the 4% each process and 1% each scrape varies by: clearly above
    // the +-10% healthy nodes differ by, but not always above 1.5.
    assert!(
        (1.3..2.0).contains(&cmp["memory_bytes"]["ratio"].as_f64().unwrap()),
        "{cmp}"
    );
    assert!(cmp["tx_per_sec"]["canary"].as_f64().unwrap() > 0.0);
    assert_eq!(v["sample"]["error_rate"].as_f64(), Some(0.0));
    assert!(v["sample"]["latency_p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (v["watched"].as_i64(), v["seen"].as_i64()),
        (Some(2), Some(2))
    );
}

#[test]
fn a_team_edits_a_threshold_in_a_copy_and_the_canary_stops_for_investigation() {
    let c = Cluster::start(3, "0.10.4");
    // The thresholds live in stdlib/criteria.rhai; a copy beside the script wins.
    let stock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib/criteria.rhai"))
            .unwrap();
    let edited = stock.replace("max_memory_ratio: 1.5", "max_memory_ratio: 0.5");
    assert_ne!(stock, edited);
    std::fs::write(c.dir.path().join("criteria.rhai"), edited).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/canary_upgrade.rhai"),
        c.dir.path().join("our_canary.rhai"),
    )
    .unwrap();
    let mut args = WATCH.to_vec();
    args.extend(["our_canary.rhai", "0.11.0"]);
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains("canary node3 on 0.11.0 needs investigation"),
        "{stderr}"
    );
    assert!(stderr.contains("the baseline (limit 0.5x)"), "{stderr}");
    assert!(
        stderr.contains("node3 stays on 0.11.0; the other nodes were not touched"),
        "{stderr}"
    );
    assert_eq!(c.version_list(), ["0.10.4", "0.10.4", "0.11.0"]);
}

#[test]
fn a_rollback_whose_install_fails_puts_the_node_back_and_resumes_the_cluster() {
    let c = Cluster::start(3, "0.10.4");
    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    c.inject("node1", "fail_install");
    // In the window: the install fails with node1 down.
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "prestage=false",
            "--set",
            "healthy_timeout_secs=5",
            "rollback.rhai",
            "0.10.4",
            "node1",
        ]),
        3,
    );
    assert!(stderr.contains("node1: install failed"), "{stderr}");
    // node1 was put back on the version it had, and is serving: nothing this run changed is down, so
    // the pause is lifted as the run stops.
    assert_eq!(c.versions()["node1"], "0.11.0");
    assert_eq!(c.not_up(), vec![]);
    assert!(
        stderr.contains("resumed the cluster: this run paused it and stopped before resuming it"),
        "{stderr}"
    );
    assert!(!stderr.contains("still PAUSED"), "{stderr}");
    assert!(!c.paused());

    // Pre-staged (the default), the same broken build does not matter: 0.10.4 is still staged on
    // node1, so the rollback activates it, compiles nothing, and finishes.
    let before = c.events().len();
    let (stdout, _) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "healthy_timeout_secs=5",
            "rollback.rhai",
            "0.10.4",
            "node1",
        ]),
        0,
    );
    assert!(stdout.contains("rollback complete"), "{stdout}");
    assert_eq!(c.versions()["node1"], "0.10.4");
    let switched: Vec<String> = c.events()[before..]
        .iter()
        .filter(|e| ["install", "install_failed", "activate"].contains(&e.kind.as_str()))
        .map(|e| format!("{} {}", e.kind, e.detail))
        .collect();
    assert_eq!(switched, vec!["activate 0.10.4 activated"]);
}

#[test]
fn a_cluster_that_does_not_report_rollback_limits_is_said_so_and_asked() {
    let c = Cluster::with(SimConfig {
        nodes: 3,
        version: semver::Version::new(0, 10, 4),
        speed: crate::support::SPEED,
        rollback_limits_reported: false,
        ..Default::default()
    });
    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let before = c.events().len();

    // No terminal and no --yes: the question cannot be asked, so nothing is changed.
    let (_, stderr) = expect(&c.run(&["rollback.rhai", "0.10.4", "node3"]), 2);
    assert!(
        stderr.contains("the cluster does not report rollback_limits in /health"),
        "{stderr}"
    );
    let changed: Vec<String> = c.events()[before..]
        .iter()
        .filter(|e| ["pause", "drain", "stop"].contains(&e.kind.as_str()))
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(changed, Vec::<String>::new());

    // Said to go on without asking: it warns and rolls back.
    let (_, stderr) = expect(
        &c.run(&[
            "--set",
            "no_rollback_limits_ok=true",
            "--yes",
            "rollback.rhai",
            "0.10.4",
            "node3",
        ]),
        0,
    );
    assert!(stderr.contains("cannot be checked"), "{stderr}");
    assert_eq!(c.version_list(), ["0.11.0", "0.11.0", "0.10.4"]);
}
