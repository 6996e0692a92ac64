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

/// Each run's `run_start` in the journal, oldest first.
fn starts(path: &std::path::Path) -> Vec<Value> {
    crate::support::journal_events(path, "run_start")
}

#[test]
fn run_start_records_the_options_the_command_line_and_the_build_with_secrets_cut() {
    use std::os::unix::fs::PermissionsExt;
    const TOKEN: &str = "tk-58e2c0a7f1";
    const HOOK: &str = "hook-path-secret-93b1";
    let c = Cluster::start(3, "0.10.4");
    let inventory = c.dir.path().join("with-token.toml");
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    let token = c.dir.path().join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &inventory,
        format!("[cluster]\ntoken_file = \"admin.token\"\n{text}"),
    )
    .unwrap();
    let script = c.dir.path().join("greet.rhai");
    std::fs::write(
        &script,
        "print(`${option(\"greeting\", \"hi\")} ${args[0].len()}`);\n",
    )
    .unwrap();
    let hook = format!("http://127.0.0.1:9/{HOOK}");
    let out = bare(c.dir.path())
        .arg("--cluster")
        .arg(&inventory)
        .args(["--set", "greeting=hello", "--notify", &hook])
        .arg(&script)
        .arg(TOKEN)
        .output()
        .unwrap();
    let (stdout, _) = expect(&out, 0);
    // The token did reach the script as its argument (13 characters): what the journal shows of it is cut.
    assert_eq!(stdout.trim(), format!("hello {}", TOKEN.len()));

    let journal = c.default_journal();
    let start = &starts(&journal)[0];
    assert_eq!(start["options"], serde_json::json!({"greeting": "hello"}));
    let words: Vec<&str> = start["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(words[0].ends_with("neumann-script"), "{words:?}");
    let tail = &words[words.len() - 6..];
    let want = [
        "--set",
        "greeting=hello",
        "--notify",
        "http://127.0.0.1:9/…",
        script.to_str().unwrap(),
        "<redacted>",
    ];
    assert_eq!(tail, want, "{words:?}");
    let everything = std::fs::read_to_string(&journal).unwrap();
    assert!(!everything.contains(TOKEN), "{everything}");
    assert!(!everything.contains(HOOK), "{everything}");
    // The build: this package's version, and the commit `--version` names.
    assert_eq!(start["tool_version"], env!("CARGO_PKG_VERSION"));
    let out = bare(c.dir.path()).arg("--version").output().unwrap();
    let (version, _) = expect(&out, 0);
    let commit = start["commit"].as_str().unwrap();
    assert!(
        version.contains(&format!("(commit {commit}, rhai ")),
        "{version} / {commit}"
    );
    assert!(commit == "unknown" || commit.len() >= 7, "{commit}");
}

#[test]
fn the_user_is_the_uids_when_user_and_logname_are_unset() {
    let c = Cluster::start(3, "0.10.4");
    let id = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let name = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!name.is_empty());
    let journal = c.default_journal();
    for (user, want) in [(None, name.as_str()), (Some("alice"), "alice")] {
        let mut cmd = c.cmd();
        cmd.env_remove("USER").env_remove("LOGNAME");
        if let Some(u) = user {
            cmd.env("USER", u);
        }
        let out = cmd
            .args(["-e", "node::drain(\"node2\"); node::undrain(\"node2\")"])
            .output()
            .unwrap();
        expect(&out, 0);
        let start = starts(&journal).pop().unwrap();
        assert_eq!(start["user"], want, "{start}");
        let ops = crate::support::journal_ops(&journal);
        assert_eq!(ops.last().unwrap()["user"], want);
    }
}

#[test]
fn runs_that_forced_an_interlock_are_flagged_and_filtered() {
    let c = Cluster::start(3, "0.10.4");
    let j = c.dir.path().join("j.jsonl");
    let js = j.to_str().unwrap();
    let (plain, forced) = (
        c.dir.path().join("plain.rhai"),
        c.dir.path().join("forced.rhai"),
    );
    std::fs::write(
        &plain,
        "node::drain(\"node2\");\nnode::undrain(\"node2\");\n",
    )
    .unwrap();
    let leader = c.leader();
    std::fs::write(
        &forced,
        format!("node::restart(\"{leader}\", #{{force: \"leader\"}});\n"),
    )
    .unwrap();
    expect(&c.run(&["--journal", js, plain.to_str().unwrap()]), 0);
    expect(&c.run(&["--journal", js, forced.to_str().unwrap()]), 0);
    // The restart in place really went past the leader rule: the leader itself was restarted.
    assert!(
        c.events_of(&["stop", "start"])
            .iter()
            .any(|(_, n)| *n == leader),
        "{:?}",
        c.events()
    );

    let list = json(&c.run(&["audit", "--journal", js, "--format", "json"]));
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert_eq!(
        (&runs[0]["forced"], &runs[1]["forced"]),
        (&1.into(), &0.into())
    );
    let (text, _) = expect(&c.run(&["audit", "--journal", js]), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].contains("forced.rhai") && lines[1].contains("done, FORCED"),
        "{text}"
    );
    assert!(
        lines[2].contains("plain.rhai") && !lines[2].contains("FORCED"),
        "{text}"
    );

    let only = json(&c.run(&["audit", "--journal", js, "--forced", "--format", "json"]));
    let ids: Vec<&Value> = only
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(ids, [&runs[0]["run_id"]], "{only}");
    // The filters after `list` too, as the usage line writes them.
    let listed = json(&c.run(&[
        "audit",
        "list",
        "--forced",
        "--journal",
        js,
        "--format",
        "json",
    ]));
    assert_eq!(listed, only);
    let by_script = json(&c.run(&[
        "audit",
        "--journal",
        js,
        "--script",
        "plain.rhai",
        "--format",
        "json",
    ]));
    let ids: Vec<&Value> = by_script
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(ids, [&runs[1]["run_id"]], "{by_script}");
    // By cluster: this inventory, named as it was given or before `audit`, holds both; another none.
    let here = json(&c.run(&["--journal", js, "--format", "json", "audit"]));
    assert_eq!(here.as_array().unwrap().len(), 2);
    let other = c.dir.path().join("other.toml");
    let out = crate::support::bare(c.dir.path())
        .args(["audit", "--journal", js, "--cluster"])
        .arg(&other)
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("no run in the journal") && stderr.contains("matches --cluster"),
        "{stderr}"
    );
    let (shown, _) = expect(&c.run(&["audit", "--journal", js, "show", "last"]), 0);
    assert!(
        shown.contains("FORCED   1 call went past an interlock that would have refused it"),
        "{shown}"
    );
    assert!(shown.contains("FORCED past `leader`"), "{shown}");
}

#[test]
fn a_run_again_links_to_the_run_it_continues_and_the_earlier_run_names_it() {
    let c = Cluster::start(3, "0.10.4");
    let script = c.dir.path().join("links.rhai");
    std::fs::write(
        &script,
        r#"
        let mode = option("mode", "done");
        if mode == "stop" { safe_stop("asked to stop"); }
        if mode == "drain_and_wait" { node::drain("node2"); info("drained"); sleep(600); }
        info("finished");
        "#,
    )
    .unwrap();
    let s = script.to_str().unwrap();
    let journal = c.default_journal();
    let id = |n: usize| starts(&journal)[n]["run_id"].as_str().unwrap().to_string();
    // A stops safely; B, the same script and argument (other options), continues it; C follows a run
    // that ended done, so it continues nothing.
    expect(&c.run(&["--set", "mode=stop", s, "v1"]), 3);
    expect(&c.run(&[s, "v1"]), 0);
    expect(&c.run(&[s, "v1"]), 0);
    // A different argument is another piece of work.
    expect(&c.run(&["--set", "mode=stop", s, "v2"]), 3);
    expect(&c.run(&[s, "v1"]), 0);
    let all = starts(&journal);
    assert_eq!(all[1]["continues"], id(0).as_str(), "{}", all[1]);
    assert_eq!(all[2]["continues"], Value::Null, "{}", all[2]);
    assert_eq!(all[4]["continues"], Value::Null, "{}", all[4]);
    // D is killed with node2 drained; E finishes what D left (recovery) and continues it.
    let mut d = crate::support::Running::start(&c, &["--set", "mode=drain_and_wait", s, "v1"]);
    d.until("drained");
    d.signal("KILL");
    assert_eq!(d.finish().status.code(), None);
    let (_, e) = expect(&c.run(&[s, "v1"]), 0);
    assert!(e.contains("resuming run"), "{e}");
    let all = starts(&journal);
    let (d_id, e_id) = (id(5), id(6));
    assert_eq!(all[6]["continues"], d_id.as_str(), "{}", all[6]);

    let list = json(&c.run(&["audit", "--format", "json"]));
    let run = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(run(&id(0))["continued_by"], serde_json::json!([id(1)]));
    assert_eq!(run(&id(1))["continued_by"], serde_json::json!([]));
    assert_eq!(run(&e_id)["recovered"], serde_json::json!([d_id]));
    assert_eq!(run(&d_id)["continued_by"], serde_json::json!([e_id]));
    let (shown, _) = expect(&c.run(&["audit", "show", &e_id]), 0);
    assert!(shown.contains(&format!("continues run {d_id} ")), "{shown}");
    assert!(
        shown.contains(&format!("finished what run {d_id} left (recovered)")),
        "{shown}"
    );
    let (shown, _) = expect(&c.run(&["audit", "show", &d_id]), 0);
    assert!(shown.contains(&format!("continued by {e_id}")), "{shown}");
    assert!(shown.contains("result   unfinished"), "{shown}");
}

#[test]
fn a_rehearsal_is_recorded_as_one_and_changes_nothing_in_the_journal() {
    let c = Cluster::start(3, "0.10.4");
    let journal = c.default_journal();
    let (stdout, stderr) = expect(&c.run(&["--rehearse", "rolling_upgrade.rhai", "0.11.0"]), 0);
    assert!(stdout.contains("plan ("), "{stdout}");
    // What the script says of the twin is not the live cluster's news on stdout.
    assert!(!stdout.contains("rolling upgrade complete"), "{stdout}");
    assert!(
        stderr.contains("rehearsal, on the twin: rolling upgrade complete: every node runs 0.11.0"),
        "{stderr}"
    );
    let records = crate::support::journal(&journal);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().or(r["op"].as_str()).unwrap())
        .collect();
    assert_eq!(kinds, ["run_start", "run_end"], "only its start and end");
    assert_eq!(records[0]["rehearsal"], true);
    let live = std::fs::canonicalize(&c.inventory).unwrap();
    assert_eq!(records[0]["cluster"], live.display().to_string());
    assert!(
        records[1]["rehearsal"]["planned_changes"].as_u64().unwrap() > 10,
        "{}",
        records[1]
    );

    // The live run after it: nothing of the rehearsal to recover, nothing to continue; the script's words
    // on stdout now.
    let (stdout, stderr) = expect(&c.run(&["--yes", "rolling_upgrade.rhai", "0.11.0"]), 0);
    assert!(
        stdout.contains("rolling upgrade complete: every node runs 0.11.0"),
        "{stdout}"
    );
    assert!(!stderr.contains("resuming run"), "{stderr}");
    assert_eq!(starts(&journal)[1]["continues"], Value::Null);
    let list = json(&c.run(&["audit", "--format", "json"]));
    let runs = list.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert_eq!(
        (&runs[1]["rehearsal"], &runs[1]["changes"]),
        (&true.into(), &0.into())
    );
    assert_eq!(
        (&runs[0]["rehearsal"], &runs[0]["result"]),
        (&false.into(), &"done".into())
    );
    let (text, _) = expect(&c.run(&["audit"]), 0);
    assert!(
        text.lines().nth(2).unwrap().contains("rehearsal: done"),
        "{text}"
    );
    let (shown, _) = expect(
        &c.run(&["audit", "show", runs[1]["run_id"].as_str().unwrap()]),
        0,
    );
    assert!(shown.starts_with("rehearsal "), "{shown}");
    assert!(shown.contains("0 changes (mutating calls)"), "{shown}");
}
