//! SIGTERM and SIGHUP do what Ctrl-C does, and a closed stdout never ends a run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    bare_command, expect, journal_ops, poll_until, signal, text, Cluster, Running,
};

/// Real time, so an install lasts 3 s: a signal sent on seeing the node's `stop` lands in the middle of
/// it even on a loaded machine. The runs install in the window (`upgrade_in_the_window`) for that 3 s
/// critical section; a pre-staged node is down only 1.5 s, and interrupts there are the resume matrix's
/// (tests/resume.rs).
fn slow_cluster() -> Cluster {
    Cluster::with(neumann_script::sim::SimConfig {
        speed: 1.0,
        ..Default::default()
    })
}

/// The rolling upgrade, installing in the window and journaling to `journal`, in the background.
fn upgrade_in_the_window(c: &Cluster, journal: &Path) -> Running {
    Running::start(
        c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--set",
            "prestage=false",
            "--yes",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    )
}

/// Waits (up to 60 s) until every member is up and healthy, as the cluster reports it.
fn wait_all_up(c: &Cluster) {
    poll_until("every member up", Duration::from_secs(60), || {
        let down = c.not_up();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("not up: {down:?}"))
        }
    });
}

/// A signal while node2 is between stop and start: the run finishes node2's restart, reports, journals the
/// interruption and exits 128 + the signal; a re-run completes the upgrade with no failed write.
fn signal_mid_node(sig: &str, code: i32, name: &str) {
    let c = slow_cluster();
    let j = c.dir.path().join("journal.jsonl");
    let run = upgrade_in_the_window(&c, &j);
    // `stop` is logged as the node goes down; its install follows and lasts 3 s at this speed.
    c.wait_for_event("stop", "node2");
    let before = c.events().len();
    run.signal(sig);
    let (_, stderr) = expect(&run.finish(), code);
    assert!(
        stderr.contains(&format!(
            "interrupted by {name}: finishing the restart of node2 first"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("state now:"), "{stderr}");

    // The simulator saw node2 started after the signal, and nothing done to node3.
    assert_eq!(
        c.events_since(before, &["stop", "start"]),
        vec![("start".to_string(), "node2".to_string())],
        "events after the signal"
    );
    wait_all_up(&c);

    // The journal has node2's start and then the interruption with its signal.
    let lines = journal_ops(&j);
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
    let mut run = upgrade_in_the_window(&c, &j);
    c.wait_for_event("stop", "node2");
    run.signal("TERM");
    // Two signals sent back to back can arrive as one; the second goes once the first was taken.
    run.until("interrupted by SIGTERM");
    run.signal("TERM");
    let (_, seen) = expect(&run.finish(), 143);
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
    let last = journal_ops(&j).pop().unwrap();
    assert_eq!(last["op"], "interrupted", "{last}");
    assert_eq!(
        last["args"],
        serde_json::json!({"signal": "SIGTERM", "exit_code": 143, "at_once": true, "left_stopped": ["node2"]})
    );
}

/// Runs the binary with stdout a pipe whose reader is gone before it writes (as `| head -0` would).
fn closed_stdout(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = bare_command(dir)
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
    let mut child = bare_command(dir.path())
        .args(["--sim", "repl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The banner comes once the session is open; stdin stays open, so the REPL would wait for ever.
    // Kept open until the end too: a closed stdout must not be what ends the REPL.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("REPL on") {
            break;
        }
    }
    assert!(
        seen.contains("REPL on"),
        "the REPL never said it was on:\n{seen}"
    );
    // Held open until the end: the REPL must end on the signal, not on end of input.
    let stdin = child.stdin.take();
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SIGTERM"),
        "{}",
        text(&out.stderr)
    );
}
