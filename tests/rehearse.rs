//! Rehearsals of the stock runbooks against twins of live simulated clusters of several shapes: the plan
//! printed is the expected sequence, and the live cluster sees only reads.

use crate::support::{expect, Cluster};

/// Event kinds that mean something changed.
const MUTATIONS: &[&str] = &[
    "drain", "undrain", "stop", "start", "install", "stage", "activate", "transfer", "pause",
    "resume", "snapshot", "crash",
];

/// Runs a rehearsal and checks the live cluster saw no change; returns (exit code, stdout, stderr).
fn rehearse(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let before = c.events_of(MUTATIONS).len();
    let mut all = vec!["--rehearse"];
    all.extend(args);
    let out = c.run(&all);
    let after = c.events_of(MUTATIONS);
    assert_eq!(
        after.len(),
        before,
        "the rehearsal changed the live cluster: {:?}",
        &after[before..]
    );
    let code = out.status.code().unwrap_or(-1);
    (
        code,
        crate::support::text(&out.stdout),
        crate::support::text(&out.stderr),
    )
}

/// The plan's lines, without numbering (and without the headings of the steps that made them).
fn plan(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("plan ("))
        .skip(1)
        .filter(|l| !l.trim_start().starts_with("> "))
        .take_while(|l| {
            l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(". ")
        })
        .map(|l| l.split_once(". ").unwrap().1.to_string())
        .collect()
}

/// One node's steps on the default, pre-staged path: staged again (cargo's quick "already installed"
/// after `stage_all`) while it serves, then drained, stopped, switched to the staged build, started.
fn node_steps(node: &str) -> Vec<String> {
    staged_steps(node, "0.11.0")
}

fn staged_steps(node: &str, version: &str) -> Vec<String> {
    vec![
        format!(
            "node::stage {node}: `cargo install neumann --version {version} --root /opt/neumann/{version}`"
        ),
        format!("node::drain {node}"),
        format!("node::stop {node}: `systemctl stop neumann`"),
        format!(
            "node::activate {node}: `ln -sfn /opt/neumann/{version}/bin/neumann /usr/local/bin/neumann`"
        ),
        format!("node::start {node}: `systemctl start neumann`"),
    ]
}

/// One node's steps with `prestage=false`: the install inside the outage.
fn in_window_steps(node: &str) -> Vec<String> {
    vec![
        format!("node::drain {node}"),
        format!("node::stop {node}: `systemctl stop neumann`"),
        format!("node::install {node}: `cargo install neumann --version 0.11.0`"),
        format!("node::start {node}: `systemctl start neumann`"),
    ]
}

#[test]
fn leader_on_node1_upgrades_followers_then_hands_over() {
    let c = Cluster::start(3, "0.10.4");
    let (code, stdout, stderr) = rehearse(&c, &["rolling_upgrade.rhai", "0.11.0"]);
    assert_eq!(code, 0, "{stderr}");
    // Every node staged before any is drained or stopped.
    let mut want = vec![
        "node::stage_all node1, node2, node3: `cargo install neumann --version 0.11.0 --root /opt/neumann/0.11.0`"
            .to_string(),
    ];
    want.extend(node_steps("node2"));
    want.extend(node_steps("node3"));
    let p = plan(&stdout);
    assert_eq!(&p[..11], &want[..], "{stdout}");
    assert!(
        p[11] == "raft::transfer_leadership to node2"
            || p[11] == "raft::transfer_leadership to node3",
        "{stdout}"
    );
    assert_eq!(&p[12..], &node_steps("node1")[..], "{stdout}");
    assert!(stdout.contains("guards: none fired"), "{stdout}");
    assert!(stdout.contains("predicted duration:"), "{stdout}");
    assert!(
        stdout.contains("node1  ") && stdout.contains("0.11.0"),
        "{stdout}"
    );
    assert!(c.versions().values().all(|v| v == "0.10.4"));
}

#[test]
fn leader_on_node3_is_upgraded_last() {
    let c = Cluster::start(3, "0.10.4");
    expect(&c.run(&["-e", "raft::transfer_leadership(\"node3\")"]), 0);
    let (code, stdout, stderr) = rehearse(&c, &["rolling_upgrade.rhai", "0.11.0"]);
    assert_eq!(code, 0, "{stderr}");
    let p = plan(&stdout);
    assert!(p[0].starts_with("node::stage_all "), "{stdout}");
    assert_eq!(&p[1..6], &node_steps("node1")[..], "{stdout}");
    assert_eq!(&p[6..11], &node_steps("node2")[..], "{stdout}");
    assert!(
        p[11].starts_with("raft::transfer_leadership to node"),
        "{stdout}"
    );
    assert_eq!(&p[12..], &node_steps("node3")[..], "{stdout}");
    // The same order in the window: no staging, the install between stop and start.
    let (code, stdout, stderr) = rehearse(
        &c,
        &["--set", "prestage=false", "rolling_upgrade.rhai", "0.11.0"],
    );
    assert_eq!(code, 0, "{stderr}");
    let p = plan(&stdout);
    assert_eq!(&p[..4], &in_window_steps("node1")[..], "{stdout}");
    assert_eq!(&p[4..8], &in_window_steps("node2")[..], "{stdout}");
    assert!(
        p[8].starts_with("raft::transfer_leadership to node"),
        "{stdout}"
    );
    assert_eq!(&p[9..], &in_window_steps("node3")[..], "{stdout}");
}

#[test]
fn a_node_already_upgraded_is_not_in_the_plan() {
    let c = Cluster::start(3, "0.10.4");
    expect(
        &c.run(&[
            "--yes",
            "canary_upgrade.rhai",
            "0.11.0",
            "node2",
            "--set",
            "monitor_secs=1",
        ]),
        2,
    );
    expect(
        &c.run(&[
            "--yes",
            "--set",
            "monitor_secs=1",
            "--set",
            "interval_secs=1",
            "canary_upgrade.rhai",
            "0.11.0",
            "node2",
        ]),
        0,
    );
    assert_eq!(c.versions()["node2"], "0.11.0");
    let (code, stdout, stderr) = rehearse(&c, &["rolling_upgrade.rhai", "0.11.0"]);
    assert_eq!(code, 0);
    let p = plan(&stdout);
    assert_eq!(p.len(), 12, "{stdout}");
    // node2 is already done: never staged, drained, stopped or reinstalled (it may receive leadership).
    assert!(
        !p.iter()
            .any(|l| l.starts_with("node::") && l.contains(" node2")),
        "{stdout}"
    );
    let staging = stderr
        .lines()
        .find(|l| l.contains("staging 0.11.0 on "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        staging.contains("node1") && staging.contains("node3") && !staging.contains("node2"),
        "{staging}"
    );
    assert!(p[0].starts_with("node::stage_all "), "{stdout}");
    assert_eq!(&p[1..6], &node_steps("node3")[..], "{stdout}");
}

#[test]
fn a_drained_node_stops_the_rehearsal_as_it_would_stop_the_run() {
    let c = Cluster::start(3, "0.10.4");
    expect(
        &c.run(&[
            "-e",
            "node::drain(\"node3\"); node::wait_drained(\"node3\", 10)",
        ]),
        0,
    );
    let (code, stdout, stderr) = rehearse(
        &c,
        &[
            "--set",
            "healthy_timeout_secs=1",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(plan(&stdout), Vec::<String>::new(), "{stdout}");
    assert!(
        stdout.contains("guards: stopped safely: the cluster is not healthy"),
        "{stdout}"
    );
    // The real run stops with the same message.
    let real = c.run(&[
        "--yes",
        "--set",
        "healthy_timeout_secs=1",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, real_err) = expect(&real, 3);
    let stop = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("stopped safely:"))
            .map(|l| l.split(" (").next().unwrap_or("").to_string())
    };
    assert_eq!(
        stop(&stderr).map(|s| s.replace("after 1 s", "")),
        stop(&real_err).map(|s| s.replace("after 1 s", ""))
    );
}

#[test]
fn an_incompatible_version_is_refused_in_rehearsal_too() {
    let c = Cluster::start(3, "0.10.4");
    let (code, stdout, stderr) = rehearse(&c, &["rolling_upgrade.rhai", "1.0.0"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("changes the major version: the runbook requires a blue-green upgrade"),
        "{stderr}"
    );
    assert!(stdout.contains("plan (0 changes"), "{stdout}");
}

#[test]
fn the_rollback_and_canary_runbooks_rehearse_too() {
    let c = Cluster::start(3, "0.10.4");
    let (code, stdout, stderr) = rehearse(
        &c,
        &[
            "--set",
            "monitor_secs=1",
            "--set",
            "interval_secs=1",
            "canary_upgrade.rhai",
            "0.11.0",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan(&stdout), node_steps("node3"), "{stdout}");
    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    let (code, stdout, stderr) = rehearse(&c, &["rollback.rhai", "0.10.4", "node2"]);
    assert_eq!(code, 0, "{stderr}");
    let p = plan(&stdout);
    // The old version is staged (still there: cargo's "already installed") before the pause, so a
    // version that does not build stops the rollback with client requests still served.
    assert_eq!(
        p[..2],
        [
            "node::stage_all node2: `cargo install neumann --version 0.10.4 --root /opt/neumann/0.10.4`"
                .to_string(),
            "cluster::pause".to_string()
        ],
        "{stdout}"
    );
    assert_eq!(
        p.last().map(String::as_str),
        Some("cluster::resume"),
        "{stdout}"
    );
    // Then activated, not compiled again.
    let want = staged_steps("node2", "0.10.4");
    assert_eq!(&p[2..p.len() - 1], &want[..], "{stdout}");
    assert!(
        !p.iter().any(|l| l.starts_with("node::install")),
        "{stdout}"
    );
}

/// "2 h 3 min", "3 min 12 s", "45 s" or "800 ms" as printed after "predicted duration: ", in seconds.
fn predicted_secs(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("predicted duration: "))
        .unwrap_or_else(|| panic!("no predicted duration:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        [h, "h", m, "min", ..] => {
            h.parse::<f64>().unwrap() * 3600.0 + m.parse::<f64>().unwrap() * 60.0
        }
        [m, "min", s, "s", ..] => m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap(),
        [s, "s", ..] => s.parse().unwrap(),
        [ms, "ms", ..] => ms.parse::<f64>().unwrap() / 1000.0,
        _ => panic!("unreadable duration: {line}"),
    }
}

#[test]
fn the_predicted_duration_holds_the_soak_the_run_will_wait_through() {
    let c = Cluster::start(3, "0.10.4");
    let (code, plain, stderr) = rehearse(&c, &["rolling_upgrade.rhai", "0.11.0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!plain.contains("waits on purpose"), "{plain}");
    let (code, soaked, stderr) = rehearse(
        &c,
        &["--set", "soak_secs=60", "rolling_upgrade.rhai", "0.11.0"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(soaked.contains("waits on purpose"), "{soaked}");
    // A soak of a minute after each of the three nodes: three minutes more than the plain run's, give or
    // take what the twin's outages vary by between two rehearsals on a loaded machine.
    let (p, s) = (predicted_secs(&plain), predicted_secs(&soaked));
    assert!(
        s - p > 150.0,
        "predicted {s} s with the soak, {p} s without:\n{soaked}"
    );
}

#[test]
fn a_long_canary_watch_rehearses_in_seconds_and_counts_in_full() {
    // Two hours of watch: paced at the twin's speed (x20) that would be six minutes, past this command's
    // own three-minute limit; the twin fast-forwards the script's waits, simulating them flat out.
    let c = Cluster::start(3, "0.10.4");
    let (code, stdout, stderr) = rehearse(
        &c,
        &[
            "--set",
            "monitor_secs=7200",
            "--set",
            "interval_secs=600",
            "canary_upgrade.rhai",
            "0.11.0",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("guards: none fired"), "{stdout}");
    // What the script says of the twin is on stderr, marked as the twin's: stdout is the report.
    assert!(
        stderr.contains("rehearsal, on the twin: canary node3 healthy on 0.11.0 after 12 checks"),
        "{stderr}"
    );
    // The prediction holds the watch: two hours and the upgrade's few seconds.
    let predicted = predicted_secs(&stdout);
    assert!(
        (7200.0..7800.0).contains(&predicted),
        "{predicted} s:\n{stdout}"
    );
}
