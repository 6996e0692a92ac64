//! SIGTERM and SIGHUP do what Ctrl-C does, and a closed stdout never ends a run.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::support::{expect, text, Cluster, BIN};

/// Real time, so an install lasts 3 s: a signal sent on seeing the node's `stop` lands in the middle of
/// it even on a loaded machine. The runs install in the window (`IN_WINDOW`) for that 3 s critical
/// section; a pre-staged node is down only 1.5 s, and interrupts there are the resume matrix's
/// (tests/resume.rs).
fn slow_cluster() -> Cluster {
    Cluster::with(neumann_script::sim::SimConfig {
        speed: 1.0,
        ..Default::default()
    })
}

const IN_WINDOW: [&str; 2] = ["--set", "prestage=false"];

fn kill(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Reads a child's output until a line contains `want`; returns what was read.
fn read_until(stderr: &mut impl BufRead, want: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if n == 0 || line.contains(want) {
            assert!(n > 0, "the output ended without {want:?}:\n{seen}");
            return seen;
        }
    }
}

/// Waits (up to 60 s) until every member is up and healthy, as the cluster reports it.
fn wait_all_up(c: &Cluster) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let down = c.not_up();
        if down.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still not up after 60 s: {down:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn journal(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        // The mutating calls, not the run's course (run_start, step_start, ...).
        .filter(|l| l.get("op").is_some())
        .collect()
}

/// A signal while node2 is between stop and start: the run finishes node2's restart, reports, journals the
/// interruption and exits 128 + the signal; a re-run completes the upgrade with no failed write.
fn signal_mid_node(signal: &str, code: i32, name: &str) {
    let c = slow_cluster();
    let j = c.dir.path().join("journal.jsonl");
    let child = c.spawn(&[
        "--journal",
        j.to_str().unwrap(),
        IN_WINDOW[0],
        IN_WINDOW[1],
        "--yes",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    // `stop` is logged as the node goes down; its install follows and lasts 3 s at this speed.
    c.wait_for_event("stop", "node2");
    let before = c.events().len();
    kill(&child, signal);
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = expect(&out, code);
    assert!(
        stderr.contains(&format!(
            "interrupted by {name}: finishing the restart of node2 first"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("state now:"), "{stderr}");

    // The simulator saw node2 started after the signal, and nothing done to node3.
    let after: Vec<(String, String)> = c
        .events()
        .into_iter()
        .skip(before)
        .filter(|e| e.kind == "stop" || e.kind == "start")
        .map(|e| (e.kind, e.node.unwrap_or_default()))
        .collect();
    assert_eq!(
        after,
        vec![("start".to_string(), "node2".to_string())],
        "events after the signal"
    );
    wait_all_up(&c);

    // The journal has node2's start and then the interruption with its signal.
    let lines = journal(&j);
    let start = lines
        .iter()
        .position(|l| l["op"] == "node::start" && l["node"] == "node2" && l["result"] == "ok")
        .unwrap_or_else(|| panic!("no node::start of node2 in {lines:?}"));
    let stop = lines
        .iter()
        .position(|l| l["op"] == "interrupted")
        .unwrap_or_else(|| panic!("no interruption in {lines:?}"));
    assert!(start < stop, "{lines:?}");
    assert_eq!(lines[stop]["args"]["signal"], name);
    assert_eq!(lines[stop]["args"]["exit_code"], code);

    expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    assert_eq!(c.version_list(), vec!["0.11.0"; 3]);
    assert_eq!(c.not_up(), vec![]);
    assert_eq!(c.stats().client_writes_failed, 0);
}

#[test]
fn sigterm_mid_node_puts_the_node_back_and_exits_143() {
    signal_mid_node("TERM", 143, "SIGTERM");
}

#[test]
fn sighup_mid_node_puts_the_node_back_and_exits_129() {
    signal_mid_node("HUP", 129, "SIGHUP");
}

#[test]
fn a_second_sigterm_exits_at_once_and_says_what_it_leaves() {
    let c = slow_cluster();
    let j = c.dir.path().join("journal.jsonl");
    let mut child = c.spawn(&[
        "--journal",
        j.to_str().unwrap(),
        IN_WINDOW[0],
        IN_WINDOW[1],
        "--yes",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    c.wait_for_event("stop", "node2");
    kill(&child, "TERM");
    // Two signals sent back to back can arrive as one; the second goes once the first was taken.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = read_until(&mut stderr, "interrupted by SIGTERM");
    kill(&child, "TERM");
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{seen}");
    assert!(
        seen.contains("interrupted again by SIGTERM: exiting now, leaving node2 STOPPED"),
        "{seen}"
    );
    // It did not wait for the install: node2 was not started by this run.
    assert!(
        !c.events_of(&["start"]).iter().any(|(_, n)| n == "node2"),
        "{seen}"
    );
    // The journal's last word is the exit, and the node it left stopped.
    let last = journal(&j).pop().unwrap();
    assert_eq!(last["op"], "interrupted", "{last}");
    assert_eq!(
        last["args"],
        serde_json::json!({"signal": "SIGTERM", "exit_code": 143, "at_once": true, "left_stopped": ["node2"]})
    );
}

/// Runs the binary with stdout a pipe whose reader is gone before it writes (as `| head -0` would).
fn closed_stdout(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_remove("NEUMANN_CLUSTER")
        .env("HOME", dir)
        .env("TERM", "dumb")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn read_only_commands_end_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["functions"][..],
        &["check"],
        &["--sim", "-e", "for i in 0..100000 { print(i) }"],
        &["--sim", "-e", "cluster::health()"],
    ] {
        let (code, stderr) = closed_stdout(dir.path(), args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("failed printing"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_closed_stdout_does_not_stop_a_mutating_run() {
    let c = Cluster::start(3, "0.10.4");
    let mut args = vec!["--cluster".to_string(), c.inventory.display().to_string()];
    args.extend(
        [
            "-e",
            "print(\"stopping\"); node::stop(\"node2\"); print(\"starting\"); node::start(\"node2\"); print(\"done\")",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stderr) = closed_stdout(c.dir.path(), &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        c.events_of(&["stop", "start"]),
        vec![
            ("stop".to_string(), "node2".to_string()),
            ("start".to_string(), "node2".to_string())
        ]
    );
}

#[test]
fn sigterm_ends_a_repl_waiting_for_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("NEUMANN_CLUSTER")
        .env("HOME", dir.path())
        .env("TERM", "dumb")
        .args(["--sim", "repl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The banner comes once the session is open; stdin stays open, so the REPL would wait for ever.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut stdout, "REPL on");
    // Held open until the end: the REPL must end on the signal, not on end of input.
    let stdin = child.stdin.take();
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SIGTERM"),
        "{}",
        text(&out.stderr)
    );
}
