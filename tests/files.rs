//! The files an operator names besides inventories and scripts (the report, the journal, the REPL
//! history): regular files only, read within a bound, refused in bounded time before anything changes;
//! what is written honours the umask. And the environment's lease TTL, a usage error's place in a script,
//! and a run whose simulator stops under it.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{bare, expect, mkfifo, mode, poll_until, signal, text, Cluster, BIN};

/// Long enough for a loaded machine, far short of a hang: a refusal takes milliseconds.
const BOUND: Duration = Duration::from_secs(60);

const DRAIN: &str = "node::drain(\"node2\")";

#[test]
fn a_report_that_is_a_device_or_a_fifo_is_refused_before_anything_changes() {
    let c = Cluster::start(3, "0.10.4");
    let fifo = c.dir.path().join("fifo.html");
    mkfifo(&fifo);
    for (path, want) in [
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (
            Path::new("/dev/full"),
            "is a character device, not a regular file",
        ),
        (&*fifo, "is a FIFO (named pipe), not a regular file"),
    ] {
        // Before: /dev/zero was read to its (missing) end, a FIFO waited for a writer.
        let out = c
            .cmd()
            .timeout(BOUND)
            .arg("--report")
            .arg(path)
            .args(["-e", DRAIN])
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!("--report {}: {want}", path.display())),
            "{stderr}"
        );
    }
    assert_eq!(c.events_of(&["drain"]), vec![]);
    // The same run with a report it can write drains, and the check above would have seen it.
    let ok = c.dir.path().join("ok.html");
    let out = c
        .cmd()
        .timeout(BOUND)
        .arg("--report")
        .arg(&ok)
        .args(["-e", DRAIN])
        .output()
        .unwrap();
    expect(&out, 0);
    assert!(std::fs::read_to_string(&ok)
        .unwrap()
        .starts_with("<!doctype html>"));
    assert_eq!(
        c.events_of(&["drain"]),
        vec![("drain".to_string(), "node2".to_string())]
    );
}

#[test]
fn a_journal_that_is_a_fifo_or_a_device_is_refused_before_anything_changes() {
    let c = Cluster::start(3, "0.10.4");
    let fifo = c.dir.path().join("fifo.jsonl");
    mkfifo(&fifo);
    for (path, want) in [
        (&*fifo, "is a FIFO (named pipe), not a regular file"),
        (
            Path::new("/dev/full"),
            "is a character device, not a regular file",
        ),
        (c.dir.path(), "is a directory, not a regular file"),
    ] {
        for rehearse in [false, true] {
            let mut cmd = c.cmd();
            cmd.timeout(BOUND).arg("--journal").arg(path);
            if rehearse {
                // A rehearsal reads the journal only at its end: refused before the twin starts.
                cmd.arg("--rehearse");
            }
            let out = cmd.args(["-e", DRAIN]).output().unwrap();
            let (_, stderr) = expect(&out, 2);
            assert!(
                stderr.contains(&format!("--journal `{}`: {want}", path.display())),
                "{stderr}"
            );
        }
    }
    // The default journal, not named on the command line, is held to the same rule when it is opened.
    let state = c.dir.path().join(".local/state/neumann-script");
    std::fs::create_dir_all(&state).unwrap();
    mkfifo(&state.join("journal.jsonl"));
    let out = c.cmd().timeout(BOUND).args(["-e", DRAIN]).output().unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.contains("cannot open the journal `")
            && stderr.contains("journal.jsonl`: is a FIFO (named pipe), not a regular file"),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain"]), vec![]);
}

#[test]
fn audit_refuses_a_journal_that_is_not_a_regular_file_and_skips_an_endless_line() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.jsonl");
    mkfifo(&fifo);
    for (path, want) in [
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (&*fifo, "is a FIFO (named pipe), not a regular file"),
    ] {
        let out = bare(dir.path())
            .timeout(BOUND)
            .args(["audit", "--journal"])
            .arg(path)
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!(
                "cannot read the journal `{}`: {want}",
                path.display()
            )),
            "{stderr}"
        );
    }
    // A journal with a run, then a line of 3 MiB without a newline (a disk filled mid-write, a stray
    // paste): the run is listed, the line skipped and not held.
    let journal = dir.path().join("j.jsonl");
    let out = bare(dir.path())
        .args(["--sim", "--journal"])
        .arg(&journal)
        .args(["-e", DRAIN])
        .output()
        .unwrap();
    expect(&out, 0);
    let mut bytes = std::fs::read(&journal).unwrap();
    let records = bytes.iter().filter(|b| **b == b'\n').count();
    bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
    std::fs::write(&journal, bytes).unwrap();
    let out = bare(dir.path())
        .timeout(BOUND)
        .args(["audit", "--format", "json", "--journal"])
        .arg(&journal)
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    let runs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{stdout}");
    assert_eq!(runs[0]["changes"], 1);
    assert!(
        stderr.contains(&format!(
            "line {} is not a journal record and was skipped",
            records + 1
        )),
        "{stderr}"
    );
}

#[test]
fn a_repl_history_that_is_not_a_regular_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".local/state/neumann-script");
    std::fs::create_dir_all(&state).unwrap();
    let history = state.join("repl_history");
    for (setup, want) in [
        (
            &(|p: &Path| mkfifo(p)) as &dyn Fn(&Path),
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            &|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
            "is a character device, not a regular file",
        ),
    ] {
        let _ = std::fs::remove_file(&history);
        setup(&history);
        let out = bare(dir.path())
            .timeout(BOUND)
            .args(["--sim", "repl"])
            .write_stdin("40 + 2\nexit\n")
            .output()
            .unwrap();
        let (stdout, stderr) = expect(&out, 0);
        assert!(stdout.contains("42"), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "the REPL history `{}`: {want}; this session keeps no history",
                history.display()
            )),
            "{stderr}"
        );
    }
}

#[test]
fn a_lease_ttl_from_the_environment_out_of_range_is_a_usage_error() {
    let c = Cluster::start(3, "0.10.4");
    for bad in ["0", "abc", "-1", "1e9", "NaN", "0.2"] {
        let out = c
            .cmd()
            .env("NEUMANN_SCRIPT_LEASE_TTL_SECS", bad)
            .args(["-e", DRAIN])
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!(
                "NEUMANN_SCRIPT_LEASE_TTL_SECS={bad}: expected the run lease's time to live in seconds, from 0.3 to 3600"
            )),
            "{bad}: {stderr}"
        );
    }
    assert_eq!(c.events_of(&["drain"]), vec![]);
    // In range, it is taken, and the run goes on.
    let out = c
        .cmd()
        .env("NEUMANN_SCRIPT_LEASE_TTL_SECS", "5")
        .args(["-e", DRAIN])
        .output()
        .unwrap();
    expect(&out, 0);
    assert_eq!(
        c.events_of(&["drain"]),
        vec![("drain".to_string(), "node2".to_string())]
    );
}

/// Runs `sh -c 'umask MASK; exec neumann-script ARGS'` in `dir`.
fn under_umask(dir: &Path, mask: &str, args: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env("TERM", "dumb")
        .env_remove("NEUMANN_CLUSTER")
        .env_remove("XDG_STATE_HOME")
        .arg("-c")
        .arg(format!("umask {mask}; exec {BIN} {args}"));
    cmd
}

#[test]
fn the_report_and_a_simulators_inventory_honour_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (mask, want) in [("077", 0o600), ("022", 0o644)] {
        let report = dir.path().join(format!("r{mask}.html"));
        let out = under_umask(
            dir.path(),
            mask,
            &format!("--sim --report {} -e 1", report.display()),
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(mode(&report), want, "report under umask {mask}");

        let inventory = dir.path().join(format!("c{mask}.toml"));
        let mut sim = under_umask(
            dir.path(),
            mask,
            &format!("sim --nodes 3 --inventory {}", inventory.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        poll_until("sim to write its inventory", BOUND, || inventory.exists());
        let got = mode(&inventory);
        signal(&sim, "INT");
        sim.wait().unwrap();
        assert_eq!(got, want, "inventory under umask {mask}");
    }
}

#[test]
fn a_simulators_inventory_is_not_written_over_a_fifo_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    for (path, want) in [
        (&*fifo, "is a FIFO (named pipe), not a regular file"),
        (
            Path::new("/dev/zero"),
            "is a character device, not a regular file",
        ),
    ] {
        let out = bare(dir.path())
            .timeout(BOUND)
            .args(["sim", "--inventory"])
            .arg(path)
            .output()
            .unwrap();
        let (_, stderr) = expect(&out, 2);
        assert!(
            stderr.contains(&format!(
                "--inventory `{}`: {want}: refusing to overwrite it",
                path.display()
            )),
            "{stderr}"
        );
    }
}

#[test]
fn a_usage_error_from_a_call_in_a_script_names_its_line() {
    let c = Cluster::start(3, "0.10.4");
    std::fs::write(
        c.dir.path().join("drain9.rhai"),
        "let n = cluster::members().len();\nnode::drain(\"node9\");\n",
    )
    .unwrap();
    let (_, stderr) = expect(&c.run(&["drain9.rhai"]), 2);
    assert!(
        stderr.contains(
            "error: unknown node `node9`: the inventory has node1, node2, node3 (drain9.rhai:2)"
        ),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain"]), vec![]);
}

#[test]
fn a_run_whose_simulator_stops_says_so_and_ends_in_bounded_time() {
    let c = Cluster::start(3, "0.10.4");
    let stopped = std::cell::Cell::new(None);
    // node2 stays down, so the wait could only end at its timeout (300 s) without the check.
    let out = c.run_until_stderr(
        &[
            "-e",
            "node::stop(\"node2\"); node::wait_rejoined(\"node2\", 300)",
        ],
        "waiting for node2 to rejoin",
        |_| {
            c.stop_simulator();
            stopped.set(Some(Instant::now()));
        },
    );
    let took = stopped.get().unwrap().elapsed();
    let (_, stderr) = expect(&out, 1);
    assert!(
        stderr.contains("every node (node1, node2, node3) and the simulator's control API (")
            && stderr.contains(
                "stopped answering: connections refused, so the simulator has stopped; gave up waiting for node2 to rejoin"
            ),
        "{stderr}"
    );
    assert!(
        took < BOUND,
        "the run took {took:?} to end after its simulator stopped"
    );
}
