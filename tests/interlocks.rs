//! The interlocks (docs/SAFETY.md): calls that would break quorum, the version skew policy or a safe
//! leadership transfer are refused with exit 3 before anything changes, whoever makes them; `#{force:
//! true}` goes past them, loudly and journaled. What happened is read from the simulator's event log.

use crate::support::{expect, journal_ops, Cluster};

fn has(events: &[(String, String)], kind: &str, node: &str) -> bool {
    events.iter().any(|(k, n)| k == kind && n == node)
}

#[test]
fn a_second_stop_that_would_lose_quorum_is_refused_and_changes_nothing() {
    let c = Cluster::start(3, "0.10.4");
    let out = c.run(&["-e", r#"node::stop("node2"); node::stop("node3")"#]);
    let (_, stderr) = expect(&out, 3);
    assert!(
        stderr.contains("node3: stop refused by the quorum interlock"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("afterwards only 1 of 3 members would be up, healthy, joined and caught up"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"node::stop("node3", #{force: true})"#),
        "{stderr}"
    );
    let ev = c.events_of(&["stop"]);
    assert!(has(&ev, "stop", "node2"), "{ev:?}");
    assert!(
        !has(&ev, "stop", "node3"),
        "the refused stop reached the cluster: {ev:?}"
    );
    // The refused call was neither announced as running nor counted as a change of this run.
    assert!(stderr.contains("node2: stop (`"), "{stderr}");
    assert!(!stderr.contains("node3: stop (`"), "{stderr}");
    assert!(!stderr.contains("node3 (changed by this run)"), "{stderr}");
}

#[test]
fn force_goes_past_the_quorum_interlock_loudly_and_journaled() {
    let c = Cluster::start(3, "0.10.4");
    let j = c.dir.path().join("j.jsonl");
    let out = c.run(&[
        "--journal",
        j.to_str().unwrap(),
        "-e",
        r#"node::stop("node2"); node::stop("node3", #{force: true})"#,
    ]);
    let (_, stderr) = expect(&out, 0);
    assert!(
        stderr.contains("warning: FORCED: node3: stop goes past the quorum interlock"),
        "{stderr}"
    );
    assert!(has(&c.events_of(&["stop"]), "stop", "node3"));
    let lines = journal_ops(&j);
    let stop3 = lines
        .iter()
        .find(|l| l["op"] == "node::stop" && l["node"] == "node3")
        .unwrap_or_else(|| panic!("no node3 stop in {lines:?}"));
    assert_eq!(stop3["override"]["rule"], "quorum", "{stop3}");
    assert_eq!(stop3["args"]["force"], true, "{stop3}");
    assert!(
        stop3["override"]["reason"]
            .as_str()
            .unwrap()
            .contains("afterwards only 1 of 3"),
        "{stop3}"
    );
    // The stop that needed no override is journaled without one.
    let stop2 = lines
        .iter()
        .find(|l| l["op"] == "node::stop" && l["node"] == "node2")
        .unwrap();
    assert!(stop2.get("override").is_none(), "{stop2}");
}

#[test]
fn drain_and_restart_are_held_to_the_quorum_too() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(
        &c.run(&["-e", r#"node::drain("node2"); node::drain("node3")"#]),
        3,
    );
    assert!(
        stderr.contains("node3: drain refused by the quorum interlock"),
        "{stderr}"
    );
    // The run that stopped does not leave node2 out of service.
    let ev = c.events_of(&["drain", "undrain"]);
    assert_eq!(
        ev,
        vec![
            ("drain".to_string(), "node2".to_string()),
            ("undrain".to_string(), "node2".to_string())
        ]
    );

    // Drained by a run that meant it, node2 stays drained: restarting node3 would leave node1 alone.
    expect(&c.run(&["-e", r#"node::drain("node2")"#]), 0);
    let (_, stderr) = expect(&c.run(&["-e", r#"node::restart("node3")"#]), 3);
    assert!(
        stderr.contains("node3: restart refused by the quorum interlock"),
        "{stderr}"
    );
    assert!(stderr.contains("node2 drained"), "{stderr}");
    assert!(!has(&c.events_of(&["stop", "restart"]), "stop", "node3"));

    // Forced, the drain happens.
    expect(
        &c.run(&["-e", r#"node::drain("node3", #{force: true})"#]),
        0,
    );
    assert!(has(&c.events_of(&["drain"]), "drain", "node3"));
}

#[test]
fn stopping_a_node_that_is_already_down_is_not_refused() {
    let c = Cluster::start(3, "0.10.4");
    // node2 and node3 down is a lost quorum, but a second stop of node3 changes nothing.
    expect(
        &c.run(&[
            "-e",
            r#"node::stop("node2"); node::stop("node3", #{force: true}); node::stop("node3")"#,
        ]),
        0,
    );
}

#[test]
fn a_member_still_catching_up_does_not_count() {
    let c = Cluster::start(3, "0.10.4");
    // node3 restarts with catch-up as slow as the client write rate, so it stays behind.
    c.inject("node3", "slow_catchup");
    expect(
        &c.run(&[
            "-e",
            r#"node::drain("node3"); node::stop("node3"); node::start("node3"); node::wait_rejoined("node3", 60)"#,
        ]),
        0,
    );
    let lag = c.run(&["-e", r#"node::status("node3").replication_lag_ms"#]);
    let (lag, _) = expect(&lag, 0);
    assert!(lag.trim().parse::<i64>().unwrap() > 100, "lag {lag}");
    let (_, stderr) = expect(&c.run(&["-e", r#"node::stop("node2")"#]), 3);
    assert!(
        stderr.contains("node2: stop refused by the quorum interlock"),
        "{stderr}"
    );
    assert!(stderr.contains("node3 catching up, lag"), "{stderr}");
    assert!(!has(&c.events_of(&["stop"]), "stop", "node2"));
}

#[test]
fn an_install_the_skew_policy_forbids_is_refused_before_it_runs() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["-e", r#"node::install("node2", "0.12.1")"#]), 3);
    assert!(
        stderr.contains("node2: install 0.12.1 refused by the version skew interlock"),
        "{stderr}"
    );
    assert!(
        stderr.contains("node1 runs 0.10.4, node3 runs 0.10.4"),
        "{stderr}"
    );
    let kinds = ["install", "install_failed"];
    assert!(c.events_of(&kinds).is_empty(), "{:?}", c.events_of(&kinds));

    // One minor version is within the policy; forced, even two are installed.
    let j = c.dir.path().join("j.jsonl");
    expect(
        &c.run(&[
            "--journal",
            j.to_str().unwrap(),
            "-e",
            r#"node::install("node2", "0.11.0"); node::install("node3", "0.12.1", #{force: true})"#,
        ]),
        0,
    );
    let ev = c.events_of(&kinds);
    assert!(
        has(&ev, "install", "node2") && has(&ev, "install", "node3"),
        "{ev:?}"
    );
    let lines = journal_ops(&j);
    let forced = lines.iter().find(|l| l["node"] == "node3").unwrap();
    assert_eq!(forced["override"]["rule"], "version skew", "{forced}");
}

#[test]
fn a_transfer_to_an_older_or_lagging_node_is_refused_before_the_cluster_is_asked() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node3", "slow_catchup");
    // node2 on 0.11.0 and leading; node3 restarted and behind.
    expect(
        &c.run(&[
            "-e",
            r#"
            node::drain("node2"); node::wait_drained("node2", 30); node::stop("node2");
            node::install("node2", "0.11.0"); node::start("node2");
            node::wait_rejoined("node2", 60); node::wait_caught_up("node2", 100, 60);
            raft::transfer_leadership("node2");
            node::drain("node3"); node::stop("node3"); node::start("node3"); node::wait_rejoined("node3", 60);
            "#,
        ]),
        0,
    );
    let transfers = || c.events_of(&["transfer", "transfer_failed"]).len();
    let before = transfers();

    let (_, stderr) = expect(&c.run(&["-e", r#"raft::transfer_leadership("node1")"#]), 3);
    assert!(
        stderr.contains("node1: transfer leadership refused by the transfer target interlock"),
        "{stderr}"
    );
    assert!(
        stderr.contains("node1 runs 0.10.4, older than the leader node2's 0.11.0"),
        "{stderr}"
    );
    assert!(!stderr.contains("waiting for node1 to lead"), "{stderr}");
    let (_, stderr) = expect(
        &c.run(&["-e", r#"raft::transfer_leadership("node3", 5)"#]),
        3,
    );
    assert!(stderr.contains("node3 runs 0.10.4, older"), "{stderr}");
    assert_eq!(transfers(), before);
    assert_eq!(c.leader(), "node2");

    // Forced, the request reaches the cluster, whose own rule answers (HTTP 409): proof that without
    // force the tool refused before asking.
    let (_, stderr) = expect(
        &c.run(&[
            "-e",
            r#"raft::transfer_leadership("node1", #{force: true})"#,
        ]),
        1,
    );
    assert!(
        stderr.contains("FORCED: node1: transfer leadership"),
        "{stderr}"
    );
    assert!(
        stderr.contains("refused: HTTP 409: node1 runs 0.10.4, older than the leader's 0.11.0"),
        "{stderr}"
    );
    assert_eq!(c.leader(), "node2");
}

#[test]
fn a_lagging_target_is_refused_even_on_the_leaders_version() {
    let c = Cluster::start(3, "0.10.4");
    c.inject("node3", "slow_catchup");
    expect(
        &c.run(&[
            "-e",
            r#"node::drain("node3"); node::stop("node3"); node::start("node3"); node::wait_rejoined("node3", 60)"#,
        ]),
        0,
    );
    let (_, stderr) = expect(&c.run(&["-e", r#"raft::transfer_leadership("node3")"#]), 3);
    assert!(
        stderr.contains("node3: transfer leadership refused by the transfer target interlock: node3 is catching up, lag"),
        "{stderr}"
    );
    assert!(c.events_of(&["transfer"]).is_empty());
}

#[test]
fn scripts_can_tell_a_refusal_by_its_rule_and_a_misspelt_option_is_an_error() {
    let c = Cluster::start(3, "0.10.4");
    let (stdout, _) = expect(
        &c.run(&[
            "-e",
            r#"node::stop("node2"); let r = (); try { node::stop("node3") } catch (e) { r = e.rule } r"#,
        ]),
        0,
    );
    assert_eq!(stdout.trim(), "quorum");
    let (_, stderr) = expect(&c.run(&["-e", r#"node::stop("node3", #{froce: true})"#]), 2);
    assert!(
        stderr.contains("node::stop: unknown option `froce` (the options are: force)"),
        "{stderr}"
    );
    assert!(!has(&c.events_of(&["stop"]), "stop", "node3"));
}
