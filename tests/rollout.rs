//! The stock rolling upgrade's rollout options: batches (`max_unavailable`), selection (`only`), order
//! (`order_by` over inventory labels), soak, hooks and gates. Judged by the simulator's records
//! (`/sim/events`, `/sim/stats`), never by what the tool says of itself.

use neumann_script::sim::{SimConfig, SimEvent};

use crate::support::{expect, text, Cluster, SPEED};

/// Kinds of event that change a node: none of them may appear when a run refuses its input.
const CHANGES: &[&str] = &[
    "drain", "undrain", "stop", "start", "install", "stage", "activate", "transfer",
];

/// Nodes out of service at once, at worst: a node is out from its `stop` until its next `caught_up`.
/// Returns (most out at once, the nodes out then).
fn most_down(events: &[SimEvent]) -> (usize, Vec<String>) {
    let mut down: Vec<String> = Vec::new();
    let mut worst = (0, Vec::new());
    for e in events {
        let Some(node) = e.node.clone() else { continue };
        match e.kind.as_str() {
            "stop" if !down.contains(&node) => down.push(node),
            "caught_up" => down.retain(|n| *n != node),
            _ => continue,
        }
        if down.len() > worst.0 {
            worst = (down.len(), down.clone());
        }
    }
    worst
}

/// The never-below-quorum check: at no event were more nodes out than the cluster can spare.
fn never_below_quorum(events: &[SimEvent], nodes: usize) -> Result<usize, String> {
    let spare = nodes - (nodes / 2 + 1);
    let (worst, which) = most_down(events);
    if worst > spare {
        return Err(format!(
            "{worst} nodes out at once ({}), more than the {spare} a {nodes}-node cluster can spare",
            which.join(", ")
        ));
    }
    Ok(worst)
}

/// Simulated seconds from the first `stop` to the last `caught_up`: how long the rollout took.
fn span(events: &[SimEvent]) -> f64 {
    let first = events.iter().find(|e| e.kind == "stop").unwrap().t;
    let last = events
        .iter()
        .rev()
        .find(|e| e.kind == "caught_up")
        .unwrap()
        .t;
    last - first
}

/// Simulated seconds during which some node was out (from its `stop` to its `caught_up`), overlapping
/// outages counted once: the rollout's cost to the cluster, without the time between nodes, which on a
/// loaded machine is mostly the tool waiting for a CPU.
fn time_out(events: &[SimEvent]) -> f64 {
    let mut windows: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e.kind == "stop")
        .map(|s| {
            let back = events
                .iter()
                .find(|c| c.kind == "caught_up" && c.node == s.node && c.t >= s.t)
                .map_or(f64::INFINITY, |c| c.t);
            (s.t, back)
        })
        .collect();
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut reach) = (0.0, f64::NEG_INFINITY);
    for (from, to) in windows {
        total += (to - from.max(reach)).max(0.0);
        reach = reach.max(to);
    }
    total
}

/// Upgrades a fresh cluster of `nodes` with `extra` options; every node ends on 0.11.0 with no write lost.
fn upgrade(nodes: usize, extra: &[&str]) -> Cluster {
    let c = Cluster::start(nodes, "0.10.4");
    let mut args = vec!["--yes"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["rolling_upgrade.rhai", "0.11.0"]);
    expect(&c.run(&args), 0);
    assert_eq!(c.version_list(), vec!["0.11.0".to_string(); nodes]);
    let stats = c.stats();
    assert_eq!(stats.lost_committed_writes, 0, "{stats:?}");
    assert_eq!(stats.client_writes_failed, 0, "{stats:?}");
    c
}

#[test]
fn batches_of_two_on_seven_nodes_keep_the_quorum_and_are_faster() {
    // In the window, where each node's outage holds its install: batches overlap them. (Pre-staged,
    // outages are short and the run's fixed parts dominate; see the test after this one.)
    let batched = upgrade(
        7,
        &["--set", "prestage=false", "--set", "max_unavailable=2"],
    );
    let ev = batched.events();
    assert_eq!(
        never_below_quorum(&ev, 7),
        Ok(2),
        "two at once, never more: {ev:?}"
    );
    let stats = batched.stats();
    assert!(stats.min_healthy_seen >= 4, "{stats:?}");
    assert_eq!(stats.quorum_lost_ms, 0, "{stats:?}");
    // The leader alone and last: nothing else is out while it is, and it is the last to stop.
    let stops: Vec<&SimEvent> = ev.iter().filter(|e| e.kind == "stop").collect();
    assert_eq!(stops.last().unwrap().node.as_deref(), Some("node1"));
    let leader_stop = stops.last().unwrap().t;
    assert!(ev
        .iter()
        .filter(|e| e.kind == "caught_up" && e.node.as_deref() != Some("node1"))
        .all(|e| e.t < leader_stop));

    let one = upgrade(7, &["--set", "prestage=false"]);
    assert_eq!(never_below_quorum(&one.events(), 7), Ok(1));
    let (b, s) = (span(&ev), span(&one.events()));
    let (bo, so) = (time_out(&ev), time_out(&one.events()));
    eprintln!(
        "7 nodes: batches of 2 took {b:.1} s simulated, one at a time {s:.1} s; some node out for {bo:.1} s against {so:.1} s"
    );
    // Three batches and the leader against seven turns: about 4/7 of the time with a node out. The
    // time between nodes is left out: on a loaded machine it is the tool waiting for a CPU, 20 simulated
    // seconds per real one.
    assert!(
        bo < 0.8 * so,
        "some node out for {bo:.1} s batched against {so:.1} s one at a time"
    );
}

#[test]
fn batches_overlap_with_prestaged_builds_too() {
    let c = upgrade(7, &["--set", "max_unavailable=3", "--set", "prestage=true"]);
    let ev = c.events();
    assert_eq!(never_below_quorum(&ev, 7), Ok(3), "{ev:?}");
    assert_eq!(c.events_of(&["activate"]).len(), 7);
    assert!(c.events_of(&["install"]).is_empty());
    assert_eq!(c.stats().quorum_lost_ms, 0);
}

#[test]
fn three_nodes_never_have_two_down_whatever_max_unavailable_says() {
    let c = upgrade(3, &["--set", "max_unavailable=2"]);
    assert_eq!(
        never_below_quorum(&c.events(), 3),
        Ok(1),
        "{:?}",
        c.events()
    );
    assert!(c.stats().min_healthy_seen >= 2);
}

#[test]
fn the_quorum_check_catches_an_oversized_batch() {
    // Four of seven stopped at once with the interlock overridden: what no rollout may do.
    let c = Cluster::start(7, "0.10.4");
    let code = r#"
        for id in ["node2", "node3", "node4", "node5"] { node::stop(id, #{force: true}); }
        for id in ["node2", "node3", "node4", "node5"] { node::start(id); }
        for id in ["node2", "node3", "node4", "node5"] { node::wait_caught_up(id, 100, 120); }
    "#;
    expect(&c.run(&["-e", code]), 0);
    let err = never_below_quorum(&c.events(), 7).unwrap_err();
    assert!(err.starts_with("4 nodes out at once"), "{err}");
    let stats = c.stats();
    assert!(stats.min_healthy_seen < 4, "{stats:?}");
    assert!(stats.quorum_lost_ms > 0, "{stats:?}");
}

#[test]
fn only_touches_the_nodes_named_and_the_leader_goes_last_through_a_hand_over() {
    let c = Cluster::start(5, "0.10.4");
    let (stdout, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "only=node3,node1",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        0,
    );
    assert!(stderr.contains("post-upgrade verification"), "{stderr}");
    // The last word does not claim every node: it names the ones left as they were.
    assert!(
        stdout.contains("rolling upgrade complete for the selected nodes (--set only=node3,node1): they run 0.11.0; 3 other node(s) left as they were: node2, node4, node5"),
        "{stdout}"
    );
    let touched: Vec<(String, String)> = c.events_of(&["drain", "stop", "install", "start"]);
    assert!(
        touched.iter().all(|(_, n)| n == "node1" || n == "node3"),
        "{touched:?}"
    );
    let v = c.versions();
    assert_eq!(v["node1"], "0.11.0");
    assert_eq!(v["node3"], "0.11.0");
    for n in ["node2", "node4", "node5"] {
        assert_eq!(v[n], "0.10.4", "{n}");
    }
    // node3 first; then leadership moved to it; then node1.
    let ev = c.events();
    let at = |kind: &str, node: &str| {
        ev.iter()
            .position(|e| e.kind == kind && e.node.as_deref() == Some(node))
            .unwrap_or_else(|| panic!("no {kind} for {node}: {ev:?}"))
    };
    let transfer = ev.iter().position(|e| e.kind == "transfer").unwrap();
    assert!(at("caught_up", "node3") < transfer);
    assert!(transfer < at("stop", "node1"));
    assert_eq!(c.leader(), "node3");
}

#[test]
fn only_with_an_unknown_node_is_a_usage_error_before_anything_changes() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "only=node2,node9",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        2,
    );
    assert!(stderr.contains("only=node2,node9"), "{stderr}");
    assert!(stderr.contains("unknown node \"node9\""), "{stderr}");
    assert!(c.events_of(CHANGES).is_empty(), "{:?}", c.events());
}

#[test]
fn unknown_option_values_are_usage_errors_naming_the_option() {
    let c = Cluster::start(3, "0.10.4");
    for (set, needle) in [
        (
            "pause_before=sometimes",
            "--set pause_before=sometimes: expected leader, each or none",
        ),
        (
            "max_unavailable=0",
            "--set max_unavailable=0: expected a whole number of at least 1",
        ),
        (
            "max_unavailable=two",
            "--set max_unavailable=two: expected a whole number",
        ),
        (
            "order_by=zone",
            "--set order_by=zone: no node in the inventory carries the label \"zone\"",
        ),
        ("soak_secs=-5", "--set soak_secs=-5"),
    ] {
        let (_, stderr) = expect(
            &c.run(&["--yes", "--set", set, "rolling_upgrade.rhai", "0.11.0"]),
            2,
        );
        assert!(stderr.contains(needle), "{set}: {stderr}");
    }
    // The canary checks the rolling upgrade's selection before it touches its canary.
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "only=nodeX",
            "canary_upgrade.rhai",
            "0.11.0",
        ]),
        2,
    );
    assert!(stderr.contains("unknown node \"nodeX\""), "{stderr}");
    assert!(c.events_of(CHANGES).is_empty(), "{:?}", c.events());
}

/// Adds `labels = { zone = ... }` to the nodes of the test cluster's inventory.
fn label(c: &Cluster, zones: &[(&str, &str)]) {
    let mut inv = std::fs::read_to_string(&c.inventory).unwrap();
    for (node, zone) in zones {
        let line = format!("id = \"{node}\"\n");
        assert!(inv.contains(&line), "{inv}");
        inv = inv.replace(&line, &format!("{line}labels = {{ zone = \"{zone}\" }}\n"));
    }
    std::fs::write(&c.inventory, inv).unwrap();
}

/// The order check: every node of a group stops only once every node of the groups before it has
/// caught up. `Err` names the first node that started early.
fn groups_in_order(events: &[SimEvent], groups: &[&[&str]]) -> Result<(), String> {
    for (k, later) in groups.iter().enumerate().skip(1) {
        for earlier in &groups[..k] {
            let done = events
                .iter()
                .filter(|e| e.kind == "caught_up")
                .filter(|e| earlier.contains(&e.node.as_deref().unwrap_or("")))
                .map(|e| e.t)
                .fold(f64::NEG_INFINITY, f64::max);
            for e in events.iter().filter(|e| e.kind == "stop") {
                let n = e.node.as_deref().unwrap_or("");
                if later.contains(&n) && e.t < done {
                    return Err(format!(
                        "{n} stopped at {:.1} s, before {earlier:?} were done at {done:.1} s",
                        e.t
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn order_by_zone_finishes_one_group_before_the_next_starts() {
    let zones: &[(&str, &str)] = &[
        ("node1", "eu-1a"),
        ("node2", "eu-1b"),
        ("node3", "eu-1a"),
        ("node4", "eu-1a"),
        ("node5", "eu-1b"),
        ("node7", "eu-1a"),
    ];
    // Followers of eu-1a, then eu-1b, then node6 without the label; the leader node1 last.
    let groups: &[&[&str]] = &[
        &["node3", "node4", "node7"],
        &["node2", "node5"],
        &["node6"],
        &["node1"],
    ];
    let c = Cluster::start(7, "0.10.4");
    label(&c, zones);
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "order_by=zone",
            "--set",
            "max_unavailable=2",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        0,
    );
    for g in ["group zone=eu-1a", "group zone=eu-1b", "group without zone"] {
        assert!(stderr.contains(g), "{g}: {stderr}");
    }
    let ev = c.events();
    assert_eq!(groups_in_order(&ev, groups), Ok(()));
    assert_eq!(never_below_quorum(&ev, 7), Ok(2));
    assert_eq!(c.version_list(), vec!["0.11.0".to_string(); 7]);

    // The same check on a run in the cluster's own order catches node2 (eu-1b) going first.
    let plain = Cluster::start(7, "0.10.4");
    label(&plain, zones);
    expect(&plain.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let err = groups_in_order(&plain.events(), groups).unwrap_err();
    assert!(err.starts_with("node2 stopped at"), "{err}");
}

/// Writes a copy of the stock rolling upgrade and `hooks` beside it in the cluster's directory.
fn with_hooks(c: &Cluster, hooks: &str) -> String {
    let dir = c.dir.path().join("runbook");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("rolling_upgrade.rhai");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rolling_upgrade.rhai"),
        &script,
    )
    .unwrap();
    std::fs::write(dir.join("hooks.rhai"), hooks).unwrap();
    script.display().to_string()
}

/// Hooks that leave a mark the simulator records (an `undrain` of a serving node changes nothing) and
/// print what they were given.
const TRACING_HOOKS: &str = r#"
fn before_node(id, ctx) {
    print(`before_node ${id} ${ctx.index}/${ctx.total} from ${ctx.from} to ${ctx.target} batch ${ctx.batch} leader ${ctx.leader}`);
    node::undrain(id);
}
fn after_node(id, ctx) {
    print(`after_node ${id} on ${node::status(id).version}`);
    node::undrain(id);
}
fn before_hand_over(leader, to) {
    print(`before_hand_over ${leader} ${to}`);
    node::undrain(to);
}
fn on_stop(reason) {
    print(`on_stop ${reason}`);
}
"#;

#[test]
fn hooks_beside_the_script_are_called_in_order() {
    let c = Cluster::start(3, "0.10.4");
    let script = with_hooks(&c, TRACING_HOOKS);
    let (stdout, _) = expect(&c.run(&["--yes", &script, "0.11.0"]), 0);
    let calls: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("rolling"))
        .collect();
    assert_eq!(
        calls,
        vec![
            "before_node node2 1/3 from 0.10.4 to 0.11.0 batch node2 leader false",
            "after_node node2 on 0.11.0",
            "before_node node3 2/3 from 0.10.4 to 0.11.0 batch node3 leader false",
            "after_node node3 on 0.11.0",
            "before_hand_over node1 node2",
            "before_node node1 3/3 from 0.10.4 to 0.11.0 batch node1 leader true",
            "after_node node1 on 0.11.0",
        ],
        "{stdout}"
    );
    // In the simulator's record: each node's hooks before its drain and after it caught up; the
    // hand-over hook before the transfer.
    let ev: Vec<(String, String)> = c
        .events()
        .into_iter()
        .filter(|e| ["undrain", "drain", "caught_up", "transfer"].contains(&e.kind.as_str()))
        .map(|e| (e.kind, e.node.unwrap_or_default()))
        .collect();
    let pair = |k: &str, n: &str| (k.to_string(), n.to_string());
    let expected = vec![
        pair("undrain", "node2"),
        pair("drain", "node2"),
        pair("caught_up", "node2"),
        pair("undrain", "node2"),
        pair("undrain", "node3"),
        pair("drain", "node3"),
        pair("caught_up", "node3"),
        pair("undrain", "node3"),
        pair("undrain", "node2"),
    ];
    assert_eq!(ev[..expected.len()], expected[..], "{ev:?}");
    assert_eq!(ev[expected.len()].0, "transfer", "{ev:?}");
    assert_eq!(
        ev[expected.len() + 1..],
        [
            pair("undrain", "node1"),
            pair("drain", "node1"),
            pair("caught_up", "node1"),
            pair("undrain", "node1"),
        ],
        "{ev:?}"
    );
}

#[test]
fn a_throwing_hook_stops_the_run_safely_and_on_stop_hears_why() {
    let c = Cluster::start(3, "0.10.4");
    let hooks = TRACING_HOOKS.replace(
        "    node::undrain(id);\n}\nfn before_hand_over",
        "    if id == \"node2\" { throw \"probe failed: 3 of 10 reads timed out\"; }\n}\nfn before_hand_over",
    );
    assert_ne!(hooks, TRACING_HOOKS);
    let script = with_hooks(&c, &hooks);
    let (stdout, stderr) = expect(&c.run(&["--yes", &script, "0.11.0"]), 3);
    assert!(
        stderr.contains("hook after_node(node2) failed: probe failed: 3 of 10 reads timed out"),
        "{stderr}"
    );
    assert!(stderr.contains("state now:"), "{stderr}");
    assert!(
        stdout.contains("on_stop hook after_node(node2) failed: probe failed"),
        "{stdout}"
    );
    // Stopped after node2, before anything else was touched; every node up.
    let touched = c.events_of(&["drain", "stop"]);
    assert!(touched.iter().all(|(_, n)| n == "node2"), "{touched:?}");
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
    assert_eq!(c.versions()["node2"], "0.11.0");
}

#[test]
fn soak_catches_a_bad_version_before_the_second_node() {
    let c = Cluster::with(SimConfig {
        nodes: 3,
        version: semver::Version::new(0, 10, 4),
        speed: SPEED,
        bad_versions: vec![semver::Version::new(0, 11, 0)],
        ..SimConfig::default()
    });
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "soak_secs=60",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        3,
    );
    assert!(
        stderr.contains("soak failed on node2 (0.11.0): error rate"),
        "{stderr}"
    );
    assert!(stderr.contains("is at or above 0.1%"), "{stderr}");
    let touched = c.events_of(&["drain", "stop", "install"]);
    assert!(touched.iter().all(|(_, n)| n == "node2"), "{touched:?}");
    assert_eq!(c.version_list(), vec!["0.10.4", "0.11.0", "0.10.4"]);
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
}

#[test]
fn a_good_version_soaks_for_the_time_asked_after_each_batch() {
    let c = upgrade(5, &["--set", "soak_secs=20", "--set", "max_unavailable=2"]);
    // From each batch's last catch-up to the next drain: at least the soak, in simulated time.
    let ev = c.events();
    let mut gaps = Vec::new();
    for (k, e) in ev.iter().enumerate().filter(|(_, e)| e.kind == "caught_up") {
        if let Some(next) = ev[k..].iter().find(|x| x.kind == "drain") {
            if !ev[k + 1..]
                .iter()
                .take_while(|x| x.t < next.t)
                .any(|x| x.kind == "caught_up")
            {
                gaps.push(next.t - e.t);
            }
        }
    }
    // Two batches, then the leader: two gaps before a next drain.
    assert_eq!(gaps.len(), 2, "{gaps:?} {ev:?}");
    assert!(gaps.iter().all(|g| *g >= 20.0), "{gaps:?}");
}

#[test]
fn pause_before_leader_waits_for_a_resume_before_the_hand_over() {
    let c = Cluster::start(3, "0.10.4");
    let out = c.run_until_stderr(
        &[
            "--yes",
            "--set",
            "pause_before=leader",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
        "paused",
        |_| {
            // Paused: both followers done, nothing done to the leader, no hand-over.
            let ev = c.events();
            let caught: Vec<&str> = ev
                .iter()
                .filter(|e| e.kind == "caught_up")
                .filter_map(|e| e.node.as_deref())
                .collect();
            assert!(caught.contains(&"node2") && caught.contains(&"node3"), "{ev:?}");
            assert!(!ev.iter().any(|e| e.kind == "transfer"), "{ev:?}");
            assert!(!c
                .events_of(&["drain", "stop"])
                .iter()
                .any(|(_, n)| n == "node1"));
            let url = format!("http://{}/admin/lease/request", c.admin_addrs()[0]);
            c.tokio.block_on(async {
                let r = reqwest::Client::new()
                    .post(&url)
                    .json(&serde_json::json!({"action": "resume", "by": "test", "reason": "looks fine"}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            });
        },
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("pause_before: before the leader node1's turn"),
        "{stderr}"
    );
    assert_eq!(c.version_list(), vec!["0.11.0".to_string(); 3]);
}

#[test]
fn a_rehearsal_shows_batches_groups_hooks_and_gates() {
    let c = Cluster::start(5, "0.10.4");
    label(
        &c,
        &[("node2", "eu-1a"), ("node3", "eu-1a"), ("node4", "eu-1b")],
    );
    // A team's hooks.rhai beside its copy of the runbook: here the embedded no-op one, copied.
    let script = with_hooks(&c, include_str!("../stdlib/hooks.rhai"));
    let (stdout, _) = expect(
        &c.run(&[
            "--rehearse",
            // The in-window path, whose batch installs on both nodes at once (one plan line).
            "--set",
            "prestage=false",
            "--set",
            "max_unavailable=2",
            "--set",
            "order_by=zone",
            "--set",
            "pause_before=leader",
            &script,
            "0.11.0",
        ]),
        0,
    );
    let plan = stdout
        .split("plan (")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    for needle in [
        "> group zone=eu-1a",
        "> batch 1/3: node2, node3",
        "node::install_all node2, node3: `cargo install neumann --version 0.11.0`",
        "> group zone=eu-1b",
        "> batch 2/3: node4",
        "> group without zone",
        "> hook after_node(node5)",
        "gate: pause_before: before the leader node1's turn",
        "> hook before_hand_over(node1, node2)",
    ] {
        assert!(plan.contains(needle), "{needle}:\n{plan}");
    }
    // The embedded hooks do nothing and are no step: neither in the plan nor in a run's output.
    let (stdout, stderr) = expect(&c.run(&["--rehearse", "rolling_upgrade.rhai", "0.11.0"]), 0);
    assert!(!stdout.contains("> hook "), "{stdout}");
    assert!(!stderr.contains("hook "), "{stderr}");
    // A rehearsal changes nothing on the live cluster.
    assert!(c.events_of(CHANGES).is_empty());
}

#[test]
fn a_batch_larger_than_the_quorum_allows_is_refused_before_anything_changes() {
    // Called directly, past the runbook's own sizing: four of seven would leave three, below the quorum.
    let c = Cluster::start(7, "0.10.4");
    let code = r#"import "upgrade" as u; u::batch(["node2", "node3", "node4", "node5"], "0.11.0", u::default_opts())"#;
    let (_, stderr) = expect(&c.run(&["-e", code]), 3);
    assert!(
        stderr.contains("not taking them down together: only 3 other healthy, caught-up member(s), and the cluster needs 4 for quorum"),
        "{stderr}"
    );
    assert!(c.events_of(CHANGES).is_empty(), "{:?}", c.events());
}

#[test]
fn a_failed_install_in_a_batch_brings_the_whole_batch_back_and_stops() {
    let c = Cluster::start(7, "0.10.4");
    c.inject("node3", "fail_install");
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            // In the window: with builds staged first, the failure would stop the run before any stop.
            "--set",
            "prestage=false",
            "--set",
            "max_unavailable=2",
            "rolling_upgrade.rhai",
            "0.11.0",
        ]),
        3,
    );
    assert!(
        stderr.contains("batch node2, node3: install failed"),
        "{stderr}"
    );
    assert!(stderr.contains("node3: install failed"), "{stderr}");
    // Both were started again and are back; node2's install went through, node3 kept its old build.
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
    let v = c.versions();
    assert_eq!(v["node2"], "0.11.0");
    assert_eq!(v["node3"], "0.10.4");
    let touched = c.events_of(&["drain", "stop"]);
    assert!(
        touched.iter().all(|(_, n)| n == "node2" || n == "node3"),
        "{touched:?}"
    );
    assert_eq!(never_below_quorum(&c.events(), 7), Ok(2));
}
