//! The run lease: one mutating run per cluster, judged by the simulator's own record of the lease
//! (`GET /admin/lease`, `lease` events) and of what was done to the nodes.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use neumann_script::sim::SimConfig;
use serde_json::Value;

use crate::support::{expect, journal_ops, kill9, poll_until, text, Cluster, SPEED};

/// Holds the lease (pause and resume are mutating calls) and then waits for the test to end it.
const HOLD: &str = "step(\"hold\", || { cluster::pause(); cluster::resume(); sleep(600); })";

/// The binary against `c` in the background, with the local state directory in the test's temp dir.
fn spawn(c: &Cluster, env: &[(&str, &str)], args: &[&str]) -> Child {
    c.command()
        .env("XDG_STATE_HOME", state_dir(c))
        .envs(env.iter().copied())
        .args(args)
        .spawn()
        .unwrap()
}

fn run(c: &Cluster, args: &[&str]) -> std::process::Output {
    c.cmd()
        .env("XDG_STATE_HOME", state_dir(c))
        .args(args)
        .output()
        .unwrap()
}

fn state_dir(c: &Cluster) -> PathBuf {
    c.dir.path().join("state")
}

/// The lease as the cluster reports it, asked of the first node.
fn lease(c: &Cluster) -> Value {
    let url = format!("http://{}/admin/lease", c.admin_addrs()[0]);
    let v: Value = c
        .tokio
        .block_on(async { reqwest::get(&url).await.unwrap().json().await.unwrap() });
    v["lease"].clone()
}

/// How long a wait on the lease may take.
const WAIT: Duration = Duration::from_secs(60);

fn holder_is(c: &Cluster, child: &Child) -> bool {
    lease(c)["holder"]
        .as_str()
        .is_some_and(|h| h.ends_with(&format!(" pid {}", child.id())))
}

/// The `lease` events' details, in order.
fn lease_events(c: &Cluster) -> Vec<String> {
    c.events()
        .into_iter()
        .filter(|e| e.kind == "lease")
        .map(|e| e.detail)
        .collect()
}

fn stopped_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("stopped safely:"))
        .unwrap_or_else(|| panic!("no stop line in\n{stderr}"))
}

#[test]
fn two_concurrent_upgrades_one_refused_naming_the_other() {
    let c = Cluster::start(3, "0.10.4");
    let args = ["--yes", "rolling_upgrade.rhai", "0.11.0"];
    let a = spawn(&c, &[], &args);
    let b = spawn(&c, &[], &args);
    let (pid_a, pid_b) = (a.id(), b.id());
    let (out_a, out_b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [out_a.status.code(), out_b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(3)],
        "one finishes, one stops safely\n--- events {:?}\n--- a\n{}\n--- b\n{}",
        c.events()
            .iter()
            .filter(|e| e.kind == "lease" || e.kind == "stop")
            .map(|e| format!("{:.2} {} {:?} {}", e.t, e.kind, e.node, e.detail))
            .collect::<Vec<_>>(),
        text(&out_a.stderr),
        text(&out_b.stderr)
    );
    let (loser, winner_pid) = if out_a.status.code() == Some(3) {
        (&out_a, pid_b)
    } else {
        (&out_b, pid_a)
    };
    let stderr = text(&loser.stderr);
    let stop = stopped_line(&stderr);
    assert!(
        stop.contains(&format!(
            " pid {winner_pid} running `<stock>/rolling_upgrade.rhai 0.11.0` since "
        )),
        "{stop}"
    );
    assert!(stop.contains("This run changed nothing"), "{stop}");

    // The cluster's record: every node stopped exactly once, all on the target.
    let mut stops: Vec<String> = c.events_of(&["stop"]).into_iter().map(|(_, n)| n).collect();
    stops.sort();
    assert_eq!(stops, ["node1", "node2", "node3"]);
    assert!(c.versions().values().all(|v| v == "0.11.0"));
    let events = lease_events(&c);
    let acquired: Vec<&String> = events
        .iter()
        .filter(|d| d.starts_with("acquired by"))
        .collect();
    assert_eq!(acquired.len(), 1, "{events:?}");
    assert!(
        acquired[0].contains(&format!(" pid {winner_pid} ")),
        "{events:?}"
    );
    assert!(lease(&c).is_null(), "released at the end: {}", lease(&c));
}

#[test]
fn a_mutating_snippet_is_refused_while_a_run_holds_the_lease_and_a_read_is_not() {
    let c = Cluster::start(3, "0.10.4");
    let holder = spawn(&c, &[], &["-e", HOLD]);
    poll_until("the first run to hold the lease", WAIT, || {
        holder_is(&c, &holder)
    });
    assert_eq!(lease(&c)["step"], "hold");

    let out = run(&c, &["-e", "node::drain(\"node2\")"]);
    let (_, stderr) = expect(&out, 3);
    let stop = stopped_line(&stderr);
    assert!(
        stop.starts_with("stopped safely: another run holds this cluster's lease: "),
        "{stop}"
    );
    assert!(
        stop.contains(&format!(" pid {} running `<-e>` since ", holder.id())),
        "{stop}"
    );
    assert!(stop.contains(", at step \"hold\""), "{stop}");
    assert!(
        !stderr.contains("node2: drain"),
        "announced a change it did not make:\n{stderr}"
    );
    assert!(
        c.events_of(&["drain"]).is_empty(),
        "the cluster was changed"
    );

    let out = run(&c, &["-e", "cluster::health().healthy"]);
    let (stdout, _) = expect(&out, 0);
    assert_eq!(stdout.trim(), "true");

    // In the REPL the refusal is shown and the session goes on; reads still answer.
    let out = c
        .cmd()
        .env("XDG_STATE_HOME", state_dir(&c))
        .arg("repl")
        .write_stdin("node::undrain(\"node3\")\ncluster::leader()\n")
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(
        stderr.contains("stopped safely: another run holds this cluster's lease: ")
            && stderr.contains(&format!(" pid {} running `<-e>`", holder.id())),
        "{stderr}"
    );
    assert!(stdout.contains("node1"), "{stdout}");
    assert!(c.events_of(&["undrain"]).is_empty());
    kill9(holder);
}

#[test]
fn an_expired_lease_is_taken_over_after_its_ttl() {
    let c = Cluster::start(3, "0.10.4");
    let holder = spawn(&c, &[("NEUMANN_SCRIPT_LEASE_TTL_SECS", "2")], &["-e", HOLD]);
    poll_until("the run to hold the lease", WAIT, || holder_is(&c, &holder));
    assert_eq!(lease(&c)["ttl_secs"], 2.0);
    let dead = holder.id();
    kill9(holder);
    poll_until("the dead holder's lease to expire", WAIT, || {
        lease(&c).is_null()
    });
    let events = lease_events(&c);
    assert!(
        events
            .iter()
            .any(|d| d.starts_with("expired: ") && d.contains(&format!(" pid {dead} "))),
        "{events:?}"
    );
    let out = run(
        &c,
        &["-e", "node::drain(\"node2\"); node::undrain(\"node2\")"],
    );
    expect(&out, 0);
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    let last = lease_events(&c);
    assert!(
        last.iter()
            .any(|d| d.starts_with("acquired by ") && !d.contains(&format!(" pid {dead} "))),
        "{last:?}"
    );
}

#[test]
fn a_gone_holder_on_this_machine_is_taken_over_at_once_and_journaled() {
    let c = Cluster::start(3, "0.10.4");
    let holder = spawn(&c, &[], &["-e", HOLD]);
    poll_until("the run to hold the lease", WAIT, || holder_is(&c, &holder));
    let journal = c.dir.path().join("journal.jsonl");
    let journal_arg = journal.to_str().unwrap();
    let drain = "node::drain(\"node2\"); node::undrain(\"node2\")";

    // The holder still runs here: no steal.
    let out = run(
        &c,
        &["--journal", journal_arg, "--steal-lease", "-e", drain],
    );
    let (_, stderr) = expect(&out, 3);
    assert!(
        stopped_line(&stderr)
            .contains("--steal-lease refused: the lease's holder is still running on this machine"),
        "{stderr}"
    );
    assert!(c.events_of(&["drain"]).is_empty());

    let dead = holder.id();
    kill9(holder);
    // Its lease outlives it (30 s TTL), but its process is known to be gone: the next run takes it over
    // without waiting and without being told to.
    let out = run(&c, &["--journal", journal_arg, "-e", drain]);
    let (_, stderr) = expect(&out, 0);
    assert!(
        stderr.contains("the cluster's lease was held by a process of this machine that is no longer running: this run took it over from "),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    let events = lease_events(&c);
    assert!(
        events
            .iter()
            .any(|d| d.starts_with("taken from ") && d.contains(&format!(" pid {dead} by "))),
        "{events:?}"
    );
    let steal = steal_records(&journal);
    assert_eq!(steal.len(), 1, "{steal:?}");
    assert!(
        steal[0]["args"]["from"]
            .as_str()
            .unwrap()
            .ends_with(&format!(" pid {dead}")),
        "{:?}",
        steal[0]
    );
    assert_eq!(steal[0]["args"]["holder_gone"], true);
    assert!(lease(&c).is_null());
}

/// The journal's `lease::steal` records.
fn steal_records(journal: &Path) -> Vec<Value> {
    journal_ops(journal)
        .into_iter()
        .filter(|r| r["op"] == "lease::steal")
        .collect()
}

/// A holder on another machine cannot be checked from here: refused until `--steal-lease` says it is gone.
#[test]
fn steal_lease_takes_over_from_a_holder_on_another_machine() {
    let c = Cluster::start(3, "0.10.4");
    let admin = format!("http://{}/admin/lease", c.admin_addrs()[0]);
    let body = serde_json::json!({
        "run_id": "elsewhere-1", "holder": "ops@another-machine pid 4242", "script": "x.rhai",
        "args": [], "ttl_secs": 600.0, "step": null,
    });
    let status = c.tokio.block_on(async {
        reqwest::Client::new()
            .post(&admin)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");
    let journal = c.dir.path().join("journal.jsonl");
    let journal_arg = journal.to_str().unwrap();
    let drain = "node::drain(\"node2\"); node::undrain(\"node2\")";

    let (_, stderr) = expect(&run(&c, &["--journal", journal_arg, "-e", drain]), 3);
    assert!(
        stopped_line(&stderr)
            .contains("another run holds this cluster's lease: ops@another-machine pid 4242"),
        "{stderr}"
    );
    assert!(c.events_of(&["drain"]).is_empty());

    let (_, stderr) = expect(
        &run(
            &c,
            &["--journal", journal_arg, "--steal-lease", "-e", drain],
        ),
        0,
    );
    assert!(
        stderr.contains("--steal-lease: this run took over the cluster's lease from ops@another-machine pid 4242"),
        "{stderr}"
    );
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    let steal = steal_records(&journal);
    assert_eq!(steal.len(), 1, "{steal:?}");
    assert_eq!(steal[0]["args"]["holder_gone"], false);
}

fn lock_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("neumann-script/leases"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_cluster_without_the_lease_endpoint_falls_back_to_a_local_lock_file() {
    let c = Cluster::with(SimConfig {
        speed: SPEED,
        lease_api: false,
        ..SimConfig::default()
    });
    let holder = spawn(&c, &[], &["-e", HOLD]);
    let state = state_dir(&c);
    poll_until("a lock file naming the holder", WAIT, || {
        lock_files(&state).iter().any(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.contains(&format!(" pid {}\"", holder.id())))
        })
    });

    let out = run(&c, &["-e", "node::drain(\"node2\")"]);
    let (_, stderr) = expect(&out, 3);
    let stop = stopped_line(&stderr);
    assert!(
        stop.starts_with("stopped safely: another run on this machine holds the lock file `"),
        "{stop}"
    );
    assert!(
        stop.contains(&format!(" pid {} running `<-e>`", holder.id())),
        "{stop}"
    );
    assert!(c.events_of(&["drain"]).is_empty());
    expect(&run(&c, &["-e", "cluster::health().healthy"]), 0);

    let holder_err = kill9(holder);
    assert!(
        holder_err.contains("warning: the cluster does not serve a run lease (node1: HTTP 404: no such endpoint: POST /admin/lease): this run holds the local lock file `"),
        "{holder_err}"
    );
    assert!(
        holder_err.contains("runs from other machines are not excluded"),
        "{holder_err}"
    );
    // The lock dies with its process.
    let out = run(
        &c,
        &["-e", "node::drain(\"node2\"); node::undrain(\"node2\")"],
    );
    expect(&out, 0);
    assert_eq!(c.events_of(&["drain"]).len(), 1);
}

#[test]
fn a_rehearsal_gives_its_twins_lease_back_before_the_twin_goes() {
    let c = Cluster::start(3, "0.10.4");
    let out = run(
        &c,
        &[
            "--rehearse",
            "-e",
            "node::drain(\"node2\"); node::undrain(\"node2\")",
        ],
    );
    let (_, stderr) = expect(&out, 0);
    assert!(!stderr.contains("could not release"), "{stderr}");
    // The live cluster was only read: no lease, no drain.
    assert!(lease_events(&c).is_empty());
    assert!(c.events_of(&["drain"]).is_empty());
}
