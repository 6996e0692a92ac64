//! The canary's journaled, resumable watch, its comparison with its own history (a real Prometheus), and
//! the post-upgrade analysis of rolling upgrades: judged by the simulator's clock and records.

use std::path::Path;

use serde_json::Value;

use crate::prometheus_support::scraping;
use crate::support::{
    bare, binary_or_skip, expect, journal_events, journal_events_so_far, text, Cluster, Running,
    PROMETHEUS,
};

/// Starts the binary, waits until the journal holds a new event of `kind`, sends SIGINT, and returns the
/// exit code and stderr: the run is stopped at a known point whatever the machine's load.
fn interrupt_after_journaled(
    c: &Cluster,
    args: &[&str],
    journal: &Path,
    kind: &str,
) -> (Option<i32>, String) {
    let before = journal_events_so_far(journal, kind).len();
    let mut run = Running::start(c, args);
    run.wait_until(&format!("a new `{kind}` in the journal"), |_| {
        journal_events_so_far(journal, kind).len() > before
    });
    run.signal("INT");
    let out = run.finish();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn an_interrupted_canary_watch_resumes_where_it_stopped() {
    let c = Cluster::start(3, "0.10.4");
    let journal = c.dir.path().join("journal.jsonl");
    let j = journal.to_str().unwrap();
    let args = [
        "--yes",
        "--journal",
        j,
        "--set",
        "monitor_secs=240",
        "--set",
        "interval_secs=60",
        "canary_upgrade.rhai",
        "0.11.0",
        "node3",
    ];

    // First run: stopped by Ctrl-C once a check is journaled.
    let (code, stderr) = interrupt_after_journaled(&c, &args, &journal, "canary_check");
    assert_eq!(code, Some(130), "{stderr}");
    let first = journal_events(&journal, "canary_check");
    let run1 = first[0]["run_id"].as_str().unwrap().to_string();
    let watched = first.last().unwrap()["elapsed_secs"].as_f64().unwrap();
    assert!((60.0..240.0).contains(&watched), "{first:?}");
    assert_eq!(first[0]["canary"], "node3");
    assert_eq!(first[0]["verdict"], "ok");
    assert!(first[0]["figures"]["error_rate"]["canary"].is_number());

    // Second run: resumes. Judged by the simulator's clock: the rest of the watch, not all of it.
    let t0 = c.clock();
    let (stdout, stderr) = expect(&c.run(&args), 0);
    let took = c.clock() - t0;
    assert!(
        stderr.contains("resuming the canary watch at ")
            && stderr.contains(&format!("of 4m (run {run1})")),
        "{stderr}"
    );
    eprintln!(
        "the second run took {took:.0} simulated seconds; {watched:.0} of 240 were watched before"
    );
    assert!(
        stdout.contains("canary node3 healthy on 0.11.0"),
        "{stdout}"
    );
    let second: Vec<Value> = journal_events(&journal, "canary_check")
        .into_iter()
        .filter(|e| e["run_id"] != run1.as_str())
        .collect();
    assert!(
        second[0]["elapsed_secs"].as_f64().unwrap() > watched + 30.0,
        "{second:?}"
    );
    // Only the rest of the watch: a watch from zero checks four times, at 1m, 2m, 3m and 4m.
    assert!(
        !second.is_empty() && second.len() < 4,
        "{} checks in the resumed watch: {second:?}",
        second.len()
    );
    let watch = journal_events(&journal, "canary_watch");
    assert_eq!(watch[1]["resumed_from"], run1.as_str());
    assert!((watch[1]["elapsed_secs"].as_f64().unwrap() - watched).abs() < 1e-6);
    // The canary was upgraded once, by the first run.
    // (Pre-staged by default: staged while it served, then activated in its window.)
    let installs: Vec<_> = c.events_of(&["install", "activate"]);
    assert_eq!(installs, vec![("activate".into(), "node3".into())]);

    // Third run: the watch ended healthy, so a re-run starts from zero (and is stopped at once).
    let (code, stderr) = interrupt_after_journaled(&c, &args, &journal, "canary_watch");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("the last canary watch for 0.11.0 ended (healthy, run ")
            && stderr.contains("this watch starts from zero"),
        "{stderr}"
    );
    let watch = journal_events(&journal, "canary_watch");
    assert_eq!(watch.len(), 3, "{watch:?}");
    assert_eq!(watch[2]["elapsed_secs"].as_f64(), Some(0.0));
    assert_eq!(watch[2]["resumed_from"], Value::Null);
}

#[test]
fn another_canary_node_starts_the_watch_afresh() {
    let c = Cluster::start(5, "0.10.4");
    let journal = c.dir.path().join("journal.jsonl");
    let j = journal.to_str().unwrap();
    let args = |node: &'static str| {
        vec![
            "--yes",
            "--journal",
            j,
            "--set",
            "monitor_secs=600",
            "--set",
            "interval_secs=60",
            "canary_upgrade.rhai",
            "0.11.0",
            node,
        ]
    };
    let (code, stderr) = interrupt_after_journaled(&c, &args("node3"), &journal, "canary_check");
    assert_eq!(code, Some(130), "{stderr}");
    let run1 = journal_events(&journal, "canary_check")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut short = args("node4");
    short[4] = "monitor_secs=60";
    let (_, stderr) = expect(&c.run(&short), 0);
    assert!(
        stderr.contains(&format!(
            "the unfinished canary watch for 0.11.0 (run {run1}) was of node3, not node4: this watch starts from zero"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("resuming the canary watch"), "{stderr}");
    let watch = journal_events(&journal, "canary_watch");
    assert_eq!(watch[1]["elapsed_secs"].as_f64(), Some(0.0));
}

#[test]
fn without_a_journal_the_canary_says_it_cannot_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args([
            "--sim",
            "--sim-speed",
            "20",
            "--set",
            "monitor_secs=2",
            "--set",
            "interval_secs=1",
            "canary_upgrade.rhai",
            "0.11.0",
        ])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 0);
    assert!(
        stderr.contains("this run keeps no journal (the embedded simulator without --journal FILE, or a rehearsal): if this canary watch stops, a re-run cannot resume it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the inventory names no Prometheus (prometheus_url): the comparison of the canary with its own history before the upgrade is skipped"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("comparison of the canary with its own history")
            .count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn the_canary_compares_itself_with_its_own_history_and_catches_a_bad_version() {
    if binary_or_skip(
        "analysis::the_canary_compares_itself_with_its_own_history",
        &PROMETHEUS,
    )
    .is_none()
    {
        return;
    }
    let c = Cluster::with_bad(5, "0.11.0");
    // The canary's own history before the upgrade must cover one check's window (100 s simulated, 5 s
    // of the wall clock Prometheus keeps at speed 20, five scrapes): ten scrapes leave room to spare.
    let _prom = scraping(&c);
    let journal = c.dir.path().join("journal.jsonl");
    let j = journal.to_str().unwrap();
    let watch = [
        "--yes",
        "--journal",
        j,
        "--set",
        "monitor_secs=200",
        "--set",
        "interval_secs=100",
    ];

    // A bad release: its p99 against its own history before the upgrade is named with the peers' verdict.
    let mut args = watch.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.0", "node3"]);
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains("stopped safely: canary node3 failed on 0.11.0: error rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("p99 latency") && stderr.contains("its own before the upgrade"),
        "{stderr}"
    );
    let bad = journal_events(&journal, "canary_check");
    let last = bad.last().unwrap();
    assert_eq!(last["canary"], "node3");
    assert_eq!(last["verdict"], "rollback");
    assert!(
        last["past"]["latency_p99_ms"]["ratio"].as_f64().unwrap() >= 2.0,
        "{last}"
    );
    assert!(
        last["past"]["error_rate"]["canary"].as_f64().unwrap() > 0.001,
        "{last}"
    );
    assert_eq!(
        last["past"]["error_rate"]["baseline"].as_f64(),
        Some(0.0),
        "{last}"
    );
    assert_eq!(c.versions()["node3"], "0.10.4", "rolled back");

    // A good release: the past comparison runs on every check and does not fire.
    let mut args = watch.to_vec();
    args.extend(["canary_upgrade.rhai", "0.11.1", "node2"]);
    let (stdout, stderr) = expect(&c.run(&args), 0);
    assert!(
        stdout.contains("canary node2 healthy on 0.11.1"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("is skipped"), "{stderr}");
    let checks: Vec<Value> = journal_events(&journal, "canary_check")
        .into_iter()
        .filter(|e| e["canary"] == "node2")
        .collect();
    assert!(!checks.is_empty());
    for check in &checks {
        let p99 = check["past"]["latency_p99_ms"]["ratio"].as_f64().unwrap();
        let memory = check["past"]["memory_bytes"]["ratio"].as_f64().unwrap();
        assert!(p99 < 2.0 && memory < 1.5, "{check}");
    }
    let since = checks[0]["since"].as_f64().unwrap();

    // The function itself: node4, never upgraded, against its own past is unchanged.
    let (stdout, _) = expect(
        &c.run(&[
            "--format",
            "json",
            "-e",
            &format!("metrics::compare_past(\"node4\", {since}, 10)"),
        ]),
        0,
    );
    let same: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        same["latency_p99_ms"]["ratio"].as_f64().unwrap() < 2.0,
        "{same}"
    );
    assert_eq!(same["error_rate"]["canary"].as_f64(), Some(0.0), "{same}");

    // A time that is not in the past is refused, naming the argument.
    let (_, stderr) = expect(
        &c.run(&[
            "-e",
            "metrics::compare_past(\"node3\", wall_now() + 3600, 3)",
        ]),
        1,
    );
    assert!(
        stderr.contains("`since`") && stderr.contains("wall_now()"),
        "{stderr}"
    );
}

const ROLLING: &[&str] = &["--yes", "--set", "analysis_secs=120"];

#[test]
fn a_bad_version_fails_the_post_upgrade_analysis_and_stops_safely() {
    let c = Cluster::with_bad(3, "0.11.0");
    let mut args = ROLLING.to_vec();
    args.extend(["rolling_upgrade.rhai", "0.11.0"]);
    let (stdout, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains("post-upgrade analysis failed after 1m")
            && stderr.contains(" of 2m on 0.11.0: error rate")
            && stderr.contains("is at or above 0.1%"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Stopped safely without rolling back: every node stays on 0.11.0"),
        "{stderr}"
    );
    assert!(!stdout.contains("rolling upgrade complete"), "{stdout}");
    assert!(
        c.versions().values().all(|v| v == "0.11.0"),
        "{:?}",
        c.versions()
    );
    assert_eq!(c.events_of(&["install", "activate"]).len(), 3);
}

#[test]
fn with_rollback_on_failure_every_node_goes_back_to_the_old_version() {
    let c = Cluster::with_bad(3, "0.11.0");
    let mut args = ROLLING.to_vec();
    args.extend([
        "--set",
        "rollback_on_failure=true",
        "rolling_upgrade.rhai",
        "0.11.0",
    ]);
    let (_, stderr) = expect(&c.run(&args), 3);
    assert!(
        stderr.contains("post-upgrade analysis failed after 1m")
            && stderr.contains(" of 2m on 0.11.0: error rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Rolled back: every node runs 0.10.4 again (3 nodes checked just now)"),
        "{stderr}"
    );
    assert!(
        c.versions().values().all(|v| v == "0.10.4"),
        "{:?}",
        c.versions()
    );
    // Three installs up, three back down, each node once each way.
    // Up by activating the staged 0.11.0, back by activating 0.10.4, still staged beside it.
    let installs = c.events_of(&["install", "activate"]);
    assert_eq!(installs.len(), 6, "{installs:?}");
    assert_eq!(c.stats().lost_committed_writes, 0);
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
}

#[test]
fn a_good_version_passes_the_post_upgrade_analysis() {
    let c = Cluster::with_bad(3, "0.11.0");
    let journal = c.dir.path().join("journal.jsonl");
    let mut args = ROLLING.to_vec();
    args.extend([
        "--journal",
        journal.to_str().unwrap(),
        "rolling_upgrade.rhai",
        "0.11.1",
    ]);
    let (stdout, stderr) = expect(&c.run(&args), 0);
    assert!(
        stdout.contains("rolling upgrade complete: every node runs 0.11.1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("post-upgrade analysis passed: 2 checks over 2m"),
        "{stderr}"
    );
    let checks = journal_events(&journal, "analysis_check");
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks.iter().all(|e| e["verdict"] == "ok"), "{checks:?}");
    assert!(c.versions().values().all(|v| v == "0.11.1"));

    // rollback_on_failure without an analysis to fail is a usage error, and changes nothing.
    let (_, stderr) = expect(
        &c.run(&[
            "--yes",
            "--set",
            "rollback_on_failure=true",
            "rolling_upgrade.rhai",
            "0.11.2",
        ]),
        2,
    );
    assert!(
        stderr.contains("rollback_on_failure=true needs"),
        "{stderr}"
    );
    assert!(c.versions().values().all(|v| v == "0.11.1"));
}

#[test]
fn scripts_journal_their_own_events_and_read_the_newest_back() {
    let c = Cluster::start(3, "0.10.4");
    let journal = c.dir.path().join("journal.jsonl");
    let j = journal.to_str().unwrap();
    let (stdout, _) = expect(
        &c.run(&[
            "--journal",
            j,
            "--format",
            "json",
            "-e",
            r#"journal::event("drill", #{ n: 1, who: "a" });
               journal::event("drill", #{ n: 2, who: "b" });
               journal::event("drill", #{ n: 3, who: "a" });
               [journal::enabled(), journal::last_event("drill", #{ who: "a" }).n,
                journal::last_event(["drill", "other"], #{}).n, journal::last_event("drill", #{ who: "c" })]"#,
        ]),
        0,
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v, serde_json::json!([true, 3, 3, null]), "{stdout}");
    assert_eq!(journal_events(&journal, "drill").len(), 3);

    // Another cluster's events are not this one's.
    let other = Cluster::start(3, "0.10.4");
    let (stdout, _) = expect(
        &other.run(&["--journal", j, "-e", r#"journal::last_event("drill", #{})"#]),
        0,
    );
    assert_eq!(stdout.trim(), "", "{stdout}");

    // The runtime's own kinds cannot be forged: what `audit` and the next run's recovery read.
    for kind in ["run_end", "recovered", "declined"] {
        let code = format!("journal::event(\"{kind}\", #{{}})");
        let (_, stderr) = expect(&c.run(&["--journal", j, "-e", &code]), 2);
        assert!(
            stderr.contains(&format!("`{kind}` is journaled by the runtime itself")),
            "{stderr}"
        );
    }
    let (_, stderr) = expect(
        &c.run(&["--journal", j, "-e", r#"journal::event("no spaces", #{})"#]),
        2,
    );
    assert!(stderr.contains("letters, digits and `_`"), "{stderr}");
}
