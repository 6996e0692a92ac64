//! `neumann-script audit`: runs made against a simulated cluster, read back from the journal and
//! compared with what the simulator recorded.

use serde_json::Value;

use crate::support::{bare, expect, Cluster};

/// Stops two of three nodes, both followers: the quorum interlock refuses the second, a safe stop (exit 3).
fn two_stops(first: &str, second: &str) -> String {
    format!(
        "step(\"stop two of three\", || {{ node::stop(\"{first}\"); node::stop(\"{second}\"); }});\n"
    )
}

/// The two followers of a three-node cluster, in id order.
fn followers(c: &Cluster) -> (String, String) {
    let leader = c.leader();
    let f: Vec<String> = ["node1", "node2", "node3"]
        .iter()
        .filter(|n| **n != leader)
        .map(|n| n.to_string())
        .collect();
    (f[0].clone(), f[1].clone())
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn runs_are_listed_newest_first_and_shown_with_steps_and_changes() {
    let c = Cluster::start(3, "0.10.4");
    let journal = c.dir.path().join("audit.jsonl");
    let j = journal.to_str().unwrap();
    expect(
        &c.run(&["--journal", j, "--yes", "rolling_upgrade.rhai", "0.11.0"]),
        0,
    );
    let script = c.dir.path().join("two.rhai");
    let (first, second) = followers(&c);
    std::fs::write(&script, two_stops(&first, &second)).unwrap();
    expect(&c.run(&["--journal", j, script.to_str().unwrap()]), 3);

    // The list, newest first: the safe stop, then the upgrade.
    let list = json(&c.run(&["audit", "--journal", j, "--format", "json"]));
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert_eq!(runs[0]["result"], "stopped");
    assert_eq!(runs[0]["exit_code"], 3);
    assert!(runs[0]["script"].as_str().unwrap().ends_with("two.rhai"));
    assert_eq!(runs[1]["result"], "done");
    assert_eq!(runs[1]["script"], "rolling_upgrade.rhai");
    assert_eq!(runs[1]["args"], serde_json::json!(["0.11.0"]));
    assert!(runs[0]["started"].as_str() >= runs[1]["started"].as_str());
    let (stopped_id, done_id) = (
        runs[0]["run_id"].as_str().unwrap().to_string(),
        runs[1]["run_id"].as_str().unwrap().to_string(),
    );
    let (text, _) = expect(&c.run(&["audit", "--journal", j]), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("RUN ") && lines[0].contains("RESULT"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&stopped_id) && lines[1].contains("stopped"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&done_id) && lines[2].contains("rolling_upgrade.rhai 0.11.0  done"),
        "{text}"
    );

    // `show last`: the safe stop's step, failed, and its two calls: one done, one refused.
    let (text, _) = expect(&c.run(&["audit", "show", "last", "--journal", j]), 0);
    assert!(text.starts_with(&format!("run {stopped_id}\n")), "{text}");
    assert!(text.contains("result   stopped (exit 3)"), "{text}");
    assert!(
        text.contains(" step `stop two of three`: failed after "),
        "{text}"
    );
    assert!(text.contains(&format!("   node::stop {first} ")), "{text}");
    assert!(
        text.contains(&format!("   node::stop {second} ")) && text.contains("error after"),
        "{text}"
    );

    // The upgrade by a unique start of its id: every step with a duration, every change; as many
    // installs (staged builds activated, by default) as the simulator saw.
    let prefix = &done_id[..done_id.len() - 2];
    let shown = json(&c.run(&["--journal", j, "--format", "json", "audit", "show", prefix]));
    assert_eq!(shown["run_id"], done_id.as_str());
    let steps = shown["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s["result"] == "ok" && s["duration_ms"].is_u64()),
        "{steps:?}"
    );
    assert!(steps
        .iter()
        .any(|s| s["name"] == "upgrade follower node2 (1/3)"));
    let installs: Vec<&Value> = shown["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|ch| ch["op"] == "node::install" || ch["op"] == "node::activate")
        .collect();
    assert_eq!(installs.len(), c.events_of(&["install", "activate"]).len());
    assert_eq!(installs.len(), 3);
    let (text, _) = expect(&c.run(&["audit", "show", &done_id, "--journal", j]), 0);
    assert!(
        text.contains(" step `upgrade follower node2 (1/3)`: ok in "),
        "{text}"
    );
    assert!(text.contains("   node::activate node2 "), "{text}");
}

#[test]
fn unknown_ids_missing_journals_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("j.jsonl");
    let js = j.to_str().unwrap();
    // No journal yet: nothing to list, and that is said.
    let out = bare(dir.path())
        .args(["audit", "--journal", js])
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(
        stdout.is_empty() && stderr.contains("no runs recorded"),
        "{stderr}"
    );
    let out = bare(dir.path())
        .args(["audit", "--journal", js, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&out), serde_json::json!([]));
    let out = bare(dir.path())
        .args(["audit", "show", "last", "--journal", js])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(stderr.contains("records no runs"), "{stderr}");

    let rec = |run: &str, ts: f64, ev: &str| {
        serde_json::json!({"event": ev, "run_id": run, "ts": ts, "time": "2026-11-25T10:00:00Z",
            "script": "a.rhai", "cluster": "/c.toml", "user": "ops", "host": "h", "pid": 1,
            "result": "done", "exit_code": 0, "duration_ms": 5})
        .to_string()
    };
    let body = [
        rec("20261125T100000Z-aaaa", 1.0, "run_start"),
        "{torn line".to_string(),
        rec("20261125T100000Z-aaaa", 2.0, "run_end"),
        "garbage".to_string(),
    ]
    .join("\n");
    std::fs::write(&j, body).unwrap();
    let out = bare(dir.path())
        .args(["audit", "--journal", js])
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(stdout.contains("20261125T100000Z-aaaa"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("line 2 ") && warnings[0].contains("2 such lines"),
        "{stderr}"
    );
    let out = bare(dir.path())
        .args(["audit", "show", "zzz", "--journal", js])
        .output()
        .unwrap();
    let (_, stderr) = expect(&out, 2);
    assert!(
        stderr.contains("no run `zzz`") && stderr.contains("neumann-script audit"),
        "{stderr}"
    );
}

#[test]
fn read_only_sessions_are_listed_with_all_and_the_default_journal_is_read() {
    let c = Cluster::start(3, "0.10.4");
    // No --journal: against an inventory, the default journal under $HOME.
    expect(&c.run(&["-e", "cluster::health()"]), 0);
    expect(
        &c.run(&["-e", "node::drain(\"node2\"); node::undrain(\"node2\")"]),
        0,
    );
    let list = json(&c.run(&["audit", "--format", "json"]));
    let runs = list.as_array().unwrap();
    assert_eq!(
        runs.len(),
        1,
        "only the snippet that changed something: {list}"
    );
    assert_eq!(runs[0]["changes"], 2);
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    let all = json(&c.run(&["audit", "--all", "--format", "json"]));
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
}
