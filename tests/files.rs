//! What the tool takes from outside besides inventories and scripts, checked before anything changes:
//! the environment's lease TTL. What it writes honours the umask. A usage error's place in a script, and
//! a run whose simulator stops under it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{expect, text, Cluster, BIN};

/// Long enough for a loaded machine, far short of a hang: a refusal takes milliseconds.
const BOUND: Duration = Duration::from_secs(60);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const DRAIN: &str = "node::drain(\"node2\")";

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
        let deadline = Instant::now() + BOUND;
        while !inventory.exists() {
            assert!(Instant::now() < deadline, "no inventory written");
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = mode(&inventory);
        crate::support::sigint(&sim);
        sim.wait().unwrap();
        assert_eq!(got, want, "inventory under umask {mask}");
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
