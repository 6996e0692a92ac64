//! Recovery is judged by the cluster: after a run is killed, interrupted or stopped, one plain re-run
//! leaves every node on target, nothing drained, nothing paused, nothing lost, by the simulator's own
//! records. And the edges of a rollback: what can refuse is asked before the pause, and a rollback that
//! stops after it resumes the cluster unless a node it changed is down.

use neumann_script::sim::SimConfig;

use crate::support::{bare, bare_command, expect, journal, text, Cluster, Running, Trigger};

fn upgrade_in_the_window() -> Vec<&'static str> {
    vec![
        "--yes",
        "--set",
        "prestage=false",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]
}

/// At real speed the in-window install after a stop lasts 3 s: the kill lands between stop and start.
#[test]
fn a_run_killed_between_stop_and_start_is_finished_by_the_next_run() {
    let c = Cluster::with(SimConfig {
        speed: 1.0,
        ..Default::default()
    });
    let mut run = Running::start(&c, &upgrade_in_the_window());
    run.wait_for(&c, Trigger::Event("stop", "node2"));
    run.signal("KILL");
    assert_eq!(run.finish().status.code(), None);
    // What the kill left, in the simulator's own log: node2 stopped and not started again.
    assert_eq!(
        c.events_of(&["stop", "start"]).last(),
        Some(&("stop".to_string(), "node2".to_string()))
    );
    let killed_at = c.events().len();

    // `status` tells that the lease's holder is gone, before anyone waits for it to expire.
    let (out, _) = expect(&c.run(&["status"]), 0);
    assert!(
        out.contains("its process is no longer running on this machine"),
        "{out}"
    );

    let (_, stderr) = expect(&c.run(&upgrade_in_the_window()), 0);
    assert!(
        stderr.contains("the cluster's lease was held by a process of this machine that is no longer running: this run took it over"),
        "{stderr}"
    );
    assert!(stderr.contains("resuming run "), "{stderr}");
    assert!(stderr.contains("node2 stopped"), "{stderr}");
    // node2 was started again before the re-run took any node down.
    let after = c.events_since(killed_at, &["start", "drain", "stop"]);
    let started = after
        .iter()
        .position(|e| *e == ("start".to_string(), "node2".to_string()))
        .unwrap_or_else(|| panic!("node2 never started: {after:?}\n{stderr}"));
    let first_drain = after.iter().position(|(k, _)| k == "drain").unwrap();
    assert!(started < first_drain, "{after:?}");
    assert_eq!(c.version_list(), vec!["0.11.0", "0.11.0", "0.11.0"]);
    assert_eq!(c.not_up(), vec![]);
    assert!(!c.paused());
    let st = c.stats();
    assert_eq!((st.client_writes_failed, st.lost_committed_writes), (0, 0));

    // Journaled: the start names the run it finished, and that run is recorded as recovered.
    let records = journal(&c.default_journal());
    let killed = records.iter().find(|r| r["event"] == "run_start").unwrap()["run_id"].clone();
    assert!(
        records.iter().any(|r| r["op"] == "node::start"
            && r["node"] == "node2"
            && r["args"]["recovering"] == killed),
        "no journaled start of node2 recovering {killed}"
    );
    assert!(records
        .iter()
        .any(|r| r["event"] == "recovered" && r["runs"][0] == killed));

    // A run recovered is not recovered twice.
    let (_, stderr) = expect(&c.run(&upgrade_in_the_window()), 0);
    assert!(!stderr.contains("resuming run"), "{stderr}");
}

/// A run that ended `done` meant what it left: a node stopped on purpose stays stopped.
#[test]
fn what_a_finished_run_left_on_purpose_is_left_alone() {
    let c = Cluster::start(5, "0.10.4");
    expect(&c.run(&["-e", r#"node::stop("node5")"#]), 0);
    let (_, stderr) = expect(&c.run(&["-e", r#"node::drain("node4")"#]), 0);
    assert!(!stderr.contains("resuming run"), "{stderr}");
    let left: Vec<String> = c.not_up().into_iter().map(|(id, _)| id).collect();
    assert_eq!(left, vec!["node4", "node5"]);
    assert_eq!(
        c.events_of(&["stop", "start", "drain", "undrain"]),
        vec![
            ("stop".to_string(), "node5".to_string()),
            ("drain".to_string(), "node4".to_string())
        ]
    );
}

/// A snippet that fails after a change it would have undone: the next run finishes it.
#[test]
fn a_failed_snippets_stop_is_undone_by_the_next_run_that_changes_the_cluster() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(
        &c.run(&["-e", r#"node::stop("node3"); fail("gave up")"#]),
        1,
    );
    assert!(stderr.contains("gave up"), "{stderr}");
    assert_eq!(c.not_up(), vec![("node3".to_string(), "down".to_string())]);
    // Reading changes nothing and finishes nothing.
    expect(&c.run(&["-e", "cluster::health()"]), 0);
    assert_eq!(c.not_up().len(), 1);
    let (_, stderr) = expect(&c.run(&["-e", r#"node::undrain("node1")"#]), 0);
    assert!(stderr.contains("resuming run"), "{stderr}");
    assert!(
        stderr.contains("node3: start (`systemctl start neumann`)"),
        "{stderr}"
    );
    assert_eq!(c.not_up(), vec![]);
}

/// After the two-signal exit at once, which leaves the node it was restarting stopped, the same
/// command again starts it first and finishes the upgrade.
#[test]
fn the_same_command_after_an_exit_at_once_starts_the_node_it_left_stopped() {
    let c = Cluster::with(SimConfig {
        speed: 2.0,
        ..Default::default()
    });
    let mut run = Running::start(&c, &upgrade_in_the_window());
    run.wait_for(&c, Trigger::Event("stop", "node2"));
    run.signal("INT");
    run.wait_for(&c, Trigger::Said("finishing the restart of node2 first"));
    run.signal("INT");
    let (_, stderr) = expect(&run.finish(), 130);
    assert!(
        stderr.contains("or run the same command again: it starts it first"),
        "{stderr}"
    );
    let (_, stderr2) = expect(&c.run(&upgrade_in_the_window()), 0);
    assert!(stderr2.contains("resuming run"), "{stderr2}");
    assert_eq!(c.version_list(), vec!["0.11.0", "0.11.0", "0.11.0"]);
    assert_eq!(c.not_up(), vec![]);
    assert_eq!(c.stats().lost_committed_writes, 0);
}

/// A rollback the skew policy forbids, or to a version that does not exist, is refused before the
/// pause: client requests are never rejected.
#[test]
fn a_rollback_that_cannot_proceed_is_refused_before_the_pause() {
    let c = Cluster::start(3, "0.11.0");
    for (old, why) in [
        ("0.8.3", "more than one minor version from 0.8.3"),
        ("0.10.9", "could not find `neumann` in registry"),
    ] {
        let (_, stderr) = expect(&c.run(&["--yes", "rollback.rhai", old]), 3);
        assert!(stderr.contains(why), "{old}: {stderr}");
        assert!(!stderr.contains("PAUSED"), "{stderr}");
    }
    assert_eq!(c.events_of(&["pause", "stop", "drain"]), vec![]);
    assert_eq!(c.stats().client_writes_failed, 0);
    assert_eq!(c.version_list(), vec!["0.11.0", "0.11.0", "0.11.0"]);
}

/// A rollback whose install fails after the pause puts the node back on its version; nothing it changed
/// is down, so the cluster is resumed as the run stops.
#[test]
fn a_rollback_that_stops_after_the_pause_resumes_the_cluster() {
    let c = Cluster::start(3, "0.11.0");
    let leader = c.leader();
    let follower = if leader == "node2" { "node3" } else { "node2" };
    c.inject(follower, "fail_install");
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "prestage=false",
            "rollback.rhai",
            "0.10.3",
            follower,
        ]),
        3,
    );
    assert!(
        stderr.contains("resumed the cluster: this run paused it and stopped before resuming it"),
        "{stderr}"
    );
    let kinds: Vec<String> = c
        .events_of(&["pause", "resume"])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, vec!["pause", "resume"]);
    assert!(!c.paused());
    assert_eq!(c.not_up(), vec![]);
}

/// A rollback that leaves a node down on the version it put there keeps the cluster paused, says so,
/// and so does the next run until the node runs; then the next run resumes it and finishes.
#[test]
fn a_rollback_that_leaves_a_changed_node_down_keeps_the_cluster_paused_until_it_runs() {
    let c = Cluster::start(3, "0.11.0");
    let leader = c.leader();
    let follower = if leader == "node2" { "node3" } else { "node2" };
    // Every start of the follower crashes it: after its install, and again when the run puts its old
    // version back.
    c.inject_when(follower, "crash", "start", follower);
    c.inject_when(follower, "crash", "start", follower);
    let args = [
        "--yes",
        "--set",
        "prestage=false",
        "--set",
        "rejoin_timeout_secs=5",
        "rollback.rhai",
        "0.10.3",
        follower,
    ];
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains(&format!(
            "the cluster stays PAUSED (client requests are rejected): {follower} is down on"
        )),
        "{stderr}"
    );
    assert!(c.paused());

    // The next run does not resume a cluster with that node down either.
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(stderr.contains("could not finish what run"), "{stderr}");
    assert!(stderr.contains("the cluster stays PAUSED"), "{stderr}");
    assert!(c.paused());

    // Once the node runs, the same command resumes the cluster and finishes the rollback.
    c.inject(follower, "heal");
    c.host(follower, "start");
    let (_, stderr) = expect(&c.run(&args), 0);
    assert!(
        stderr.contains("resume the cluster (left paused by"),
        "{stderr}"
    );
    assert!(!c.paused());
    assert_eq!(c.versions()[follower], "0.10.3");
    assert_eq!(c.not_up(), vec![]);
}

/// A rollback interrupted after its pause: Ctrl-C resumes the cluster as the run stops; SIGKILL leaves
/// it paused with a node stopped, and the plain re-run starts the node, resumes, and finishes.
#[test]
fn an_interrupted_or_killed_rollback_is_resumed_and_finished() {
    for (signal, code) in [("INT", Some(130)), ("KILL", None)] {
        let c = Cluster::with(SimConfig {
            speed: 2.0,
            version: semver::Version::new(0, 11, 0),
            ..Default::default()
        });
        let args = [
            "--yes",
            "--set",
            "prestage=false",
            "rollback.rhai",
            "0.10.3",
        ];
        let mut run = Running::start(&c, &args);
        run.wait_for(&c, Trigger::Said("node2: install (`cargo install"));
        run.signal(signal);
        let out = run.finish();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), code, "{signal}\n{stderr}");
        if code.is_some() {
            assert!(!c.paused(), "{signal}: still paused\n{stderr}");
            assert!(stderr.contains("resumed the cluster"), "{stderr}");
        } else {
            assert!(c.paused(), "a killed run cannot resume anything");
        }
        let (_, stderr2) = expect(&c.run(&args), 0);
        assert!(!c.paused(), "{signal}\n{stderr2}");
        assert_eq!(c.version_list(), vec!["0.10.3", "0.10.3", "0.10.3"]);
        assert_eq!(c.not_up(), vec![]);
        assert_eq!(c.stats().lost_committed_writes, 0);
        if code.is_none() {
            assert!(stderr2.contains("resuming run"), "{stderr2}");
            assert!(stderr2.contains("the cluster paused"), "{stderr2}");
        }
    }
}

/// Under `--sim` the cluster ends with the run: a hint shows the code, never a command that would start
/// a new simulator, and an interrupted run does not offer to continue.
#[test]
fn hints_under_sim_do_not_point_at_a_new_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args(["--sim", "-e", r#"recovery_command("cluster::resume()")"#])
        .output()
        .unwrap();
    let (hint, _) = expect(&out, 0);
    assert!(!hint.contains("neumann-script"), "{hint}");
    assert!(
        hint.contains("`cluster::resume()` on a cluster that outlives the run (the embedded simulated cluster ends with this run"),
        "{hint}"
    );

    let child = bare_command(dir.path())
        .args([
            "--sim",
            "--sim-speed",
            "2",
            "--yes",
            "rolling_upgrade.rhai",
            "0.11.0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut run = Running::of(child);
    run.until("▶ upgrade follower");
    run.signal("INT");
    let (_, seen) = expect(&run.finish(), 130);
    assert!(
        seen.contains(
            "the embedded simulated cluster ends with this run, so there is nothing to continue"
        ),
        "{seen}"
    );
    assert!(!seen.contains("neumann-script --sim"), "{seen}");
}
