//! Steering a running rollout from a second process: `pause`, `resume`, `abort` and `status` through the
//! run lease, and `gate()`. Judged by the simulator's event log: what was stopped, started and drained,
//! and when relative to the run's own "paused" line.

use std::time::Duration;

use neumann_script::sim::SimConfig;
use serde_json::Value;

use crate::support::{
    binary_or_skip, expect, journal, poll_until, text, Cluster, Running, Term, TMUX,
};

/// Slow enough that one node's procedure spans far more real time than a request takes to land.
fn cluster(nodes: usize) -> Cluster {
    Cluster::with(SimConfig {
        nodes,
        version: semver::Version::new(0, 10, 4),
        speed: 5.0,
        ..SimConfig::default()
    })
}

/// `stop` events in the log between two lengths of it (the events are appended, never reordered).
fn stops_between(c: &Cluster, from: usize, to: usize) -> Vec<String> {
    c.events()[from..to]
        .iter()
        .filter(|e| e.kind == "stop")
        .map(|e| e.node.clone().unwrap_or_default())
        .collect()
}

/// The lease as the cluster reports it.
fn lease(c: &Cluster) -> Value {
    let out = c.run(&["--format", "json", "status"]);
    let (o, _) = expect(&out, 0);
    serde_json::from_str::<Value>(&o).unwrap()["run"].clone()
}

/// The first follower the rolling upgrade takes: the first member, in inventory order, that does not lead.
fn first_follower(c: &Cluster) -> String {
    let leader = c.leader();
    ["node1", "node2", "node3", "node4", "node5"]
        .into_iter()
        .find(|n| *n != leader)
        .unwrap()
        .to_string()
}

#[test]
fn a_paused_rollout_stops_no_node_until_resumed_and_status_shows_it() {
    // Five nodes: once the first follower is done, four more nodes' worth of run that must wait while paused.
    let c = cluster(5);
    let first = first_follower(&c);
    // Back up, the first follower catches up no faster than writes arrive until it is healed: the run is
    // held mid-procedure, so the pause lands before that node's step ends however loaded the machine,
    // and is taken at that step's end, never before the node is back.
    c.inject_when(&first, "slow_catchup", "start", &first);
    let mut run = Running::start(&c, &["--yes", "rolling_upgrade.rhai", "0.11.0"]);
    c.wait_for_event("start", &first);
    let out = c.run(&["pause", "--reason", "dashboards red"]);
    c.inject(&first, "heal");
    let (o, _) = expect(&out, 0);
    assert!(o.contains("to pause at its next safe point"), "{o}");
    let paused = run.until("paused by");
    let at_pause = c.events().len();
    assert!(paused.contains(": dashboards red"), "{paused}");
    // It says how to resume, with this cluster's inventory.
    let how = run.until("Resume it from any terminal with: neumann-script --cluster");
    assert!(how.contains("cluster.toml resume"), "{how}");

    // Paused for 20 simulated seconds, several nodes' worth of procedure: nothing is stopped.
    c.wait_until_sim(c.clock() + 20.0);
    // The first follower was finished, not left down.
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());

    // status, text and JSON, from a third process.
    let out = c.run(&["status"]);
    let (o, _) = expect(&out, 0);
    let pid = format!("pid {}", run.child().id());
    assert!(o.contains(&pid), "{o}");
    assert!(o.contains("PAUSED by "), "{o}");
    assert!(o.contains("dashboards red"), "{o}");
    assert!(o.contains("rolling_upgrade.rhai 0.11.0"), "{o}");
    assert!(o.contains("left: "), "{o}");
    let l = lease(&c);
    assert!(l["holder"].as_str().unwrap().ends_with(&pid), "{l}");
    assert_eq!(l["paused"]["reason"], "dashboards red", "{l}");
    assert_eq!(l["target"], "0.11.0", "{l}");
    assert!(
        l["done"].as_array().unwrap().iter().any(|d| d == &first),
        "{l}"
    );
    assert!(!l["left"].as_array().unwrap().is_empty(), "{l}");
    assert_eq!(l["request"], Value::Null, "the pause was acknowledged: {l}");

    let before_resume = c.events().len();
    assert_eq!(
        stops_between(&c, at_pause, before_resume),
        Vec::<String>::new(),
        "a node was stopped while the run was paused"
    );
    let out = c.run(&["resume"]);
    expect(&out, 0);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    assert!(e.contains("resumed by "), "{e}");
    assert_eq!(c.version_list(), vec!["0.11.0"; 5]);
    // The same check over the span after the resume finds the nodes that were left: it would have fired
    // had the run gone on while paused.
    let after = stops_between(&c, before_resume, c.events().len());
    assert!(
        !after.is_empty(),
        "the nodes left were stopped after the resume"
    );
    // And the abort test's "untouched" check, run here, finds the nodes after the first one changed.
    let others = c
        .events_of(&["stop", "drain", "install"])
        .into_iter()
        .filter(|(_, n)| *n != first)
        .count();
    assert!(others > 0, "the check for untouched nodes can fire");
    // A resume is acted on once: the lease is gone with the run, and nothing is waiting.
    assert_eq!(lease(&c), Value::Null);
}

#[test]
fn abort_finishes_the_node_in_progress_then_stops_safely_leaving_the_rest_untouched() {
    let c = cluster(5);
    let first = first_follower(&c);
    // Back up, the first follower catches up no faster than writes arrive until it is healed: the run
    // waits in the middle of its procedure for as long as the abort takes to land, however loaded the
    // machine, and the next safe point is the end of that node's step.
    c.inject_when(&first, "slow_catchup", "start", &first);
    let run = Running::start(&c, &["--yes", "rolling_upgrade.rhai", "0.11.0"]);
    c.wait_for_event("start", &first);
    let out = c.run(&["abort", "--reason", "change freeze"]);
    expect(&out, 0);
    c.inject(&first, "heal");
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(e.contains("aborted by "), "{e}");
    assert!(e.contains("change freeze"), "{e}");
    assert!(e.contains("state now:"), "the usual state report:\n{e}");
    assert!(e.contains("to continue, run it again"), "{e}");
    // Nothing left down or drained; the node in progress was finished on the target.
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
    assert_eq!(c.versions()[&first], "0.11.0");
    let touched: Vec<String> = c
        .events_of(&["stop", "drain", "install"])
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| *n != first)
        .collect();
    assert_eq!(
        touched,
        Vec::<String>::new(),
        "nodes after the abort were touched"
    );
    assert_eq!(
        c.version_list().iter().filter(|v| *v == "0.10.4").count(),
        4
    );
}

#[test]
fn asking_with_no_run_in_progress_is_a_clear_error_naming_the_cluster() {
    let c = cluster(3);
    for action in ["pause", "resume", "abort"] {
        let out = c.run(&[action, "--reason", "x"]);
        let (_, e) = expect(&out, 2);
        assert!(e.contains("no run in progress on cluster"), "{e}");
        assert!(e.contains("cluster.toml"), "{e}");
        assert!(e.contains(&format!("nothing to {action}")), "{e}");
    }
    let out = c.run(&["status"]);
    let (o, _) = expect(&out, 0);
    assert!(o.contains("run: none in progress"), "{o}");
    assert!(o.contains("leader node"), "{o}");
    let out = c.run(&["--format", "json", "status"]);
    let (o, _) = expect(&out, 0);
    let v: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v["run"], Value::Null);
    // The options may follow the subcommand too, as people type them.
    let out = crate::support::bare(c.dir.path())
        .arg("status")
        .arg("--cluster")
        .arg(&c.inventory)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let (o, _) = expect(&out, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&o).unwrap()["run"],
        Value::Null
    );
    assert_eq!(v["health"]["members"].as_array().unwrap().len(), 3);
    // Nothing was changed by asking.
    assert!(c.events_of(&["stop", "drain"]).is_empty());
    // --sim would be a new, empty cluster: refused as usage.
    let out = crate::support::bare(c.dir.path())
        .args(["--sim", "pause"])
        .output()
        .unwrap();
    let (_, e) = expect(&out, 2);
    assert!(e.contains("--cluster FILE"), "{e}");
}

#[test]
fn a_request_waits_while_a_node_is_between_its_stop_and_start() {
    let c = cluster(3);
    let script = c.dir.path().join("manual.rhai");
    std::fs::write(
        &script,
        r#"
        node::drain("node3");
        node::stop("node3");
        sleep(30);
        checkpoint();
        node::start("node3");
        node::wait_rejoined("node3", 120);
        checkpoint();
        info("after the pause");
        "#,
    )
    .unwrap();
    let mut run = Running::start(&c, &[script.to_str().unwrap()]);
    c.wait_for_event("stop", "node3");
    expect(&c.run(&["pause", "--reason", "look"]), 0);
    // The checkpoint inside the stop..start span only says it waits.
    run.until("taken at the next safe point, once node3 is started again");
    run.until("paused by");
    let at_pause = c.events().len();
    let node3 = |kind: &str| {
        c.events()[..at_pause]
            .iter()
            .filter(|e| e.kind == kind && e.node.as_deref() == Some("node3"))
            .count()
    };
    assert_eq!(
        (node3("stop"), node3("start")),
        (1, 1),
        "paused with node3 down"
    );
    assert!(
        c.not_up().iter().all(|(n, _)| n != "node3"),
        "{:?}",
        c.not_up()
    );
    expect(&c.run(&["resume"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    assert!(e.contains("after the pause"), "{e}");
}

#[test]
fn a_gate_waits_for_resume_from_another_process() {
    let c = cluster(3);
    let script = c.dir.path().join("gated.rhai");
    std::fs::write(
        &script,
        r#"
        gate("check the dashboards");
        node::drain("node2");
        node::undrain("node2");
        "#,
    )
    .unwrap();
    let mut run = Running::start(&c, &["--yes", script.to_str().unwrap()]);
    run.until("gate: check the dashboards");
    // --yes does not pass it: the run holds the lease, paused, and changes nothing.
    c.wait_until_sim(c.clock() + 10.0);
    assert!(c.events_of(&["drain"]).is_empty());
    let l = lease(&c);
    assert_eq!(l["paused"]["by"], "gate", "{l}");
    let out = c.run(&["status"]);
    let (o, _) = expect(&out, 0);
    assert!(o.contains("PAUSED at a gate: check the dashboards"), "{o}");
    expect(&c.run(&["resume"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    assert!(e.contains("resumed by "), "{e}");
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    // The run's events, from its journal.
    let kinds: Vec<String> = journal(&c.default_journal())
        .iter()
        .filter_map(|v| v["event"].as_str().map(str::to_string))
        .filter(|k| ["gate", "paused", "resumed", "abort"].contains(&k.as_str()))
        .collect();
    assert_eq!(kinds, ["gate", "paused", "resumed"]);
}

#[test]
fn an_aborted_gate_stops_safely_and_a_rehearsal_or_the_embedded_simulator_does_not_wait() {
    let c = cluster(3);
    let script = c.dir.path().join("gated.rhai");
    std::fs::write(
        &script,
        "gate(\"approve the leader\");\nnode::drain(\"node2\");\n",
    )
    .unwrap();
    let mut run = Running::start(&c, &[script.to_str().unwrap()]);
    run.until("gate: approve the leader");
    expect(&c.run(&["abort"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(e.contains("aborted by "), "{e}");
    assert!(c.events_of(&["drain"]).is_empty());

    let out = c.run(&["--rehearse", script.to_str().unwrap()]);
    let (o, e) = expect(&out, 0);
    assert!(e.contains("a live run pauses here"), "{e}");
    assert!(o.contains("gate: approve the leader"), "{o}");
    assert!(o.contains("1 change, 1 gate"), "{o}");

    let out = crate::support::bare(c.dir.path())
        .args(["--sim", "-e", "gate(\"x\"); 7"])
        .output()
        .unwrap();
    let (o, e) = expect(&out, 0);
    assert!(e.contains("gate: x: passed (embedded simulator"), "{e}");
    assert_eq!(text(&out.stdout).trim(), "7", "{o}");
}

/// Sets the cluster's client-request pause flag straight through a node's admin API: the test's signal
/// to a script that polls it, without going through the tool (the run holds the lease).
fn flag(c: &Cluster, on: bool) {
    let url = format!(
        "http://{}/admin/cluster/{}",
        c.admin_addrs()[0],
        if on { "pause" } else { "resume" }
    );
    c.tokio.block_on(async {
        let r = reqwest::Client::new().post(&url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
    });
}

#[test]
fn a_resume_with_nothing_paused_is_dropped_once_and_a_later_pause_still_holds() {
    let c = cluster(3);
    let script = c.dir.path().join("loop.rhai");
    std::fs::write(
        &script,
        r#"
        hold_lease();
        info("holding");
        while !cluster::health().paused { checkpoint(); sleep(1); }
        info("phase two");
        while cluster::health().paused { checkpoint(); sleep(1); }
        info("finished");
        "#,
    )
    .unwrap();
    let mut run = Running::start(&c, &[script.to_str().unwrap()]);
    run.until("holding");
    expect(&c.run(&["resume"]), 0);
    run.until("the run was not paused; going on");
    assert_eq!(lease(&c)["request"], Value::Null, "acknowledged");
    flag(&c, true);
    run.until("phase two");
    expect(&c.run(&["pause", "--reason", "second look"]), 0);
    run.until("paused by");
    expect(&c.run(&["resume"]), 0);
    run.until("resumed by");
    // Many checkpoints after the resume: none acts on it again.
    flag(&c, false);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    assert!(e.contains("finished"), "{e}");
    assert_eq!(e.matches("resumed by").count(), 1, "{e}");
    assert_eq!(e.matches("was not paused").count(), 1, "{e}");
    assert_eq!(e.matches("paused by").count(), 1, "{e}");
}

/// A run held at two gates, one outside any step and one inside the second, so a watch is seen at two
/// known points of it.
const TWO_GATES: &str = r#"
hold_lease();
step("first", || { info("one"); });
gate("first look");
step("second", || { gate("second look"); });
info("past both gates");
"#;

/// The line of the screen that starts with `id` (a node's row in the table).
fn row<'a>(screen: &'a str, id: &str) -> Option<&'a str> {
    screen
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(id))
}

/// A table row's cells: columns are two or more spaces apart.
fn cells(row: &str) -> Vec<String> {
    row.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Seconds in a lag written for people ("438 ms", "7.5 s", "7 min 19 s"); `None` for anything else,
/// such as a bare number of milliseconds.
fn lag_secs(lag: &str) -> Option<f64> {
    let w: Vec<&str> = lag.split_whitespace().collect();
    match w.as_slice() {
        [n, "ms"] if n.len() <= 3 => n.parse::<f64>().ok().map(|ms| ms / 1000.0),
        [n, "s"] => n.parse().ok(),
        [m, "min", s, "s"] => Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?),
        [h, "h", m, "min"] => Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0),
        _ => None,
    }
}

#[test]
fn status_watch_follows_a_run_on_a_terminal_until_it_ends() {
    if binary_or_skip(
        "control::status_watch_follows_a_run_on_a_terminal_until_it_ends",
        &TMUX,
    )
    .is_none()
    {
        return;
    }
    let c = cluster(3);
    let script = c.dir.path().join("two_gates.rhai");
    std::fs::write(&script, TWO_GATES).unwrap();
    let mut run = Running::start(&c, &["--yes", script.to_str().unwrap()]);
    run.until("gate: first look");
    let pid = format!("pid {}", run.child().id());
    let t = Term::run(
        &format!("ns-watch-{}", std::process::id()),
        c.dir.path(),
        &format!("--cluster {} status --watch", c.inventory.display()),
    );
    let s = t.wait_until("the watch at the first gate", |s| {
        s.contains(&pid) && s.contains("PAUSED at a gate: first look")
    });
    let header = s
        .lines()
        .find(|l| l.starts_with("NODE "))
        .unwrap_or_else(|| panic!("no header row:\n{s}"));
    assert_eq!(
        cells(header),
        ["NODE", "ROLE", "STATE", "VERSION", "HEALTHY", "LAG"],
        "{s}"
    );
    for (id, version) in c.versions() {
        let r = row(&s, &id).unwrap_or_else(|| panic!("no row for {id}:\n{s}"));
        assert_eq!(cells(r)[3], version.as_str().unwrap(), "{s}");
    }
    assert!(s.contains("run: ") && s.contains("two_gates.rhai"), "{s}");
    assert!(s.contains("between steps (1 begun so far)"), "{s}");
    assert!(s.contains("✔ 1 first ("), "{s}");
    assert!(
        s.contains("resume it with: neumann-script --cluster "),
        "{s}"
    );

    // A follower stopped behind the run's back: its row says it is down, with a lag that grows in
    // units a person reads, while the simulator agrees it is down.
    let leader = c.leader();
    let down = ["node3", "node2"]
        .into_iter()
        .find(|n| *n != leader)
        .unwrap();
    c.host(down, "stop");
    let s = t.wait_until(&format!("{down} down with seconds of lag"), |s| {
        row(s, down).is_some_and(|r| {
            let r = cells(r);
            r[2] == "down" && lag_secs(&r[5]).is_some_and(|l| l >= 2.0)
        })
    });
    assert!(c.not_up().iter().any(|(n, _)| n == down), "{s}");
    for l in s.lines().filter(|l| l.starts_with("node")) {
        let lag = &cells(l)[5];
        assert!(
            lag_secs(lag).is_some(),
            "a lag not for people: {lag:?} in {l}"
        );
    }
    c.host(down, "start");

    // Resumed, the run moves on to its second step and its second gate: the page follows.
    expect(&c.run(&["resume"]), 0);
    let s = t.wait_until("the watch at the second gate", |s| {
        s.contains("PAUSED at a gate: second look")
    });
    assert!(s.contains("step 2: second, for "), "{s}");
    assert!(
        s.contains("✔ 1 first (") && s.contains("▶ 2 second ("),
        "{s}"
    );
    expect(&c.run(&["resume"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    assert!(e.contains("past both gates"), "{e}");
    // The watch ends with the run, and says how it ended.
    let s = t.wait_for("EXIT=", 1);
    assert!(s.contains("the run ended: done (exit 0)"), "{s}");
    assert!(s.contains("EXIT=0"), "{s}");

    // With no run, a watch waits for one; Ctrl-C ends it without a word, with the signal's code.
    let t = Term::run(
        &format!("ns-watch-int-{}", std::process::id()),
        c.dir.path(),
        &format!("--cluster {} status -w", c.inventory.display()),
    );
    t.wait_for("watching for a run to take the lease", 1);
    t.key("C-c");
    let s = t.wait_for("EXIT=", 1);
    assert!(s.contains("EXIT=130"), "{s}");
    assert!(!s.contains("error") && !s.contains("interrupted"), "{s}");
}

#[test]
fn status_watch_as_json_is_one_document_per_change_until_the_run_ends() {
    let c = cluster(3);
    let script = c.dir.path().join("two_gates.rhai");
    std::fs::write(&script, TWO_GATES).unwrap();
    let mut run = Running::start(&c, &["--yes", script.to_str().unwrap()]);
    run.until("gate: first look");
    let mut watch = c
        .command()
        .args(["--format", "json", "status", "--watch"])
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let docs = || -> Vec<Value> {
        lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let at_gate = poll_until(
        "a document of the run at its gate",
        Duration::from_secs(30),
        || {
            docs()
                .into_iter()
                .find(|d| d["run"]["paused"]["reason"] == "first look")
        },
    );
    let run_id = at_gate["run"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(at_gate["run"]["history"][0]["name"], "first", "{at_gate}");
    assert_eq!(at_gate["run"]["history"][0]["ok"], true, "{at_gate}");
    assert_eq!(at_gate["health"]["members"].as_array().unwrap().len(), 3);
    // Paused, the run changes nothing the page shows: the watch looks every second and writes no
    // document for a look like the last one.
    let before = docs().len();
    c.wait_until_sim(c.clock() + 20.0);
    let quiet = docs().len() - before;
    assert!(
        quiet <= 1,
        "{quiet} documents while nothing changed: {:?}",
        &docs()[before..]
    );

    expect(&c.run(&["abort", "--reason", "seen enough"]), 0);
    let out = run.finish();
    expect(&out, 3);
    let status = poll_until(
        "the watch to end with the run",
        Duration::from_secs(30),
        || watch.try_wait().unwrap(),
    );
    reader.join().unwrap();
    // The run's own exit code: an aborted run stopped safely, so `status -w && next-step` stops too.
    assert_eq!(status.code(), Some(3));
    let all = docs();
    let last = all.last().unwrap();
    assert_eq!(last["run"], Value::Null, "{last}");
    assert_eq!(last["ended"]["run_id"], run_id.as_str(), "{last}");
    assert_eq!(last["ended"]["result"], "stopped", "{last}");
    assert_eq!(
        last["ended"]["exit_code"],
        out.status.code().unwrap(),
        "the run's own exit code: {last}"
    );
    assert!(
        all[..all.len() - 1]
            .iter()
            .all(|d| d.get("ended").is_none()),
        "only the last document ends the watch"
    );
}

#[test]
fn status_wide_adds_indexes_and_addresses() {
    let c = cluster(3);
    let (o, _) = expect(&c.run(&["status", "-o", "wide"]), 0);
    let header = o.lines().find(|l| l.starts_with("NODE ")).unwrap();
    assert_eq!(
        cells(header),
        [
            "NODE", "ROLE", "STATE", "VERSION", "HEALTHY", "LAG", "COMMIT", "APPLIED", "ADDRESS",
            "LABELS"
        ]
    );
    for addr in c.admin_addrs() {
        assert!(
            o.lines()
                .any(|l| l.starts_with("node") && l.contains(&addr)),
            "{addr} missing:\n{o}"
        );
    }
    let (o, _) = expect(&c.run(&["status"]), 0);
    assert!(!o.contains("COMMIT"), "{o}");
}
