use super::*;

fn lines(recs: &[Value]) -> Vec<(usize, String)> {
    recs.iter()
        .enumerate()
        .map(|(i, r)| (i + 1, r.to_string()))
        .collect()
}

fn ctx(run: &str, ts: f64, mut rec: Value) -> Value {
    for (k, v) in [
        ("run_id", json!(run)),
        ("ts", json!(ts)),
        ("time", json!(journal::rfc3339(ts))),
        ("user", json!("ops")),
        ("host", json!("box")),
        ("pid", json!(7)),
        ("script", json!("<stock>/rolling_upgrade.rhai")),
        ("cluster", json!("/c.toml")),
    ] {
        rec[k] = v;
    }
    rec
}

fn sample() -> Vec<Value> {
    vec![
        ctx(
            "r1",
            100.0,
            json!({"event": "run_start", "args": ["0.11.0"]}),
        ),
        ctx("r1", 101.0, json!({"event": "step_start", "name": "outer"})),
        ctx("r1", 102.0, json!({"event": "step_start", "name": "inner"})),
        ctx(
            "r1",
            103.0,
            json!({"op": "node::drain", "node": "node2", "args": {"id": "node2"}, "result": "ok", "error": null, "duration_ms": 12}),
        ),
        ctx(
            "r1",
            104.0,
            json!({"event": "step_end", "name": "inner", "result": "ok", "error": null, "duration_ms": 2000}),
        ),
        ctx(
            "r1",
            105.0,
            json!({"event": "step_end", "name": "outer", "result": "ok", "error": null, "duration_ms": 4000}),
        ),
        ctx(
            "r1",
            106.0,
            json!({"event": "run_end", "result": "done", "exit_code": 0, "message": null, "duration_ms": 6000}),
        ),
        ctx("r2", 200.0, json!({"event": "run_start", "args": []})),
        ctx(
            "r2",
            201.0,
            json!({"event": "run_end", "result": "stopped", "exit_code": 3, "message": "stopped safely: x", "duration_ms": 1000}),
        ),
    ]
}

#[test]
fn runs_are_grouped_and_listed_newest_first() {
    let (mut runs, skipped) = group(lines(&sample()), |_| true);
    assert_eq!(skipped, Skipped::default());
    newest_first(&mut runs);
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r2", "r1"]);
    assert_eq!(
        (runs[0].result.as_str(), runs[1].result.as_str()),
        ("stopped", "done")
    );
    assert_eq!(runs[1].args, ["0.11.0"]);
    assert_eq!(runs[1].changes, 1);
    assert_eq!(runs[1].change_records().count(), 1);
    // The check fires: the journal's order reversed is not newest first until sorted.
    let (mut backwards, _) = group(lines(&sample()), |_| true);
    assert_eq!(backwards[0].id, "r1");
    newest_first(&mut backwards);
    assert_eq!(backwards[0].id, "r2");
}

#[test]
fn steps_nest_and_changes_sit_inside_them() {
    let (runs, _) = group(lines(&sample()), |_| true);
    let s = steps(&runs[0]);
    assert_eq!(
        s.iter()
            .map(|s| (s.name.as_str(), s.depth, step_ms(&runs[0], s)))
            .collect::<Vec<_>>(),
        [("outer", 0, Some(4000)), ("inner", 1, Some(2000))]
    );
    let text = show_text(&runs[0]).join("\n");
    assert!(text.contains("00:01:41 step `outer`: ok in 4 s"), "{text}");
    assert!(
        text.contains("00:01:42   step `inner`: ok in 2 s"),
        "{text}"
    );
    assert!(
        text.contains("00:01:43     node::drain node2: ok (12 ms)"),
        "{text}"
    );
    let mut recs = sample();
    recs.insert(
        3,
        ctx(
            "r1",
            102.5,
            json!({"event": "paused", "by": "ops@h", "reason": "lunch"}),
        ),
    );
    let (runs, _) = group(lines(&recs), |_| true);
    let text = show_text(&runs[0]).join("\n");
    assert!(
        text.contains("00:01:42     paused by=ops@h reason=lunch"),
        "{text}"
    );
    let check = json!({"event": "canary_check", "verdict": "ok", "elapsed_secs": 300.04, "figures": {"a": 1}});
    assert_eq!(
        describe_event(&check),
        "canary_check elapsed_secs=300.0 verdict=ok"
    );
}

#[test]
fn bad_lines_are_counted_and_old_records_grouped_by_process() {
    let mut l = lines(&sample());
    l.insert(2, (3, "{not json".into()));
    l.push((11, "[1, 2]".into()));
    let old = json!({"op": "node::stop", "node": "node1", "args": {}, "result": "ok", "ts": 50.0, "pid": 9, "host": "h", "script": "a.rhai", "cluster": "/c.toml", "user": "u"});
    l.push((12, old.to_string()));
    l.push((13, old.to_string()));
    let (runs, skipped) = group(l, |_| true);
    assert_eq!(
        skipped,
        Skipped {
            count: 2,
            first_line: 3
        }
    );
    let old = runs.iter().find(|r| r.legacy).unwrap();
    assert_eq!(old.records.len(), 2);
    assert_eq!(old.result, BEFORE_RUN_IDS);
    assert_eq!(old.id, "old-19700101T000050Z-9");
}

#[test]
fn ids_are_found_by_unique_prefix() {
    let mut recs = sample();
    recs.push(ctx("r20", 300.0, json!({"event": "run_start"})));
    let (runs, _) = group(lines(&recs), |_| true);
    let p = Path::new("j");
    assert_eq!(find(&runs, "r1", p).unwrap().id, "r1");
    assert_eq!(find(&runs, "last", p).unwrap().id, "r20");
    assert!(
        find(&runs, "r2", p).is_ok(),
        "an exact id wins over prefixes"
    );
    let e = find(&runs, "r", p).unwrap_err().to_string();
    assert!(e.contains("names 3 runs"), "{e}");
    let e = find(&runs, "zz", p).unwrap_err().to_string();
    assert!(e.contains("neumann-script audit"), "{e}");
}

#[test]
fn a_call_begun_and_never_answered_is_shown_once_an_answered_one_is_not() {
    let begin = |node: &str| {
        ctx(
            "k1",
            500.0,
            json!({"event": "op_begin", "op": "node::stop", "node": node, "args": {"id": node}}),
        )
    };
    let mut done = begin("node2");
    done["event"] = Value::Null;
    done["result"] = json!("ok");
    let recs = vec![
        ctx("k1", 499.0, json!({"event": "run_start", "args": []})),
        begin("node2"),
        done,
        begin("node3"),
    ];
    let (runs, _) = group(lines(&recs), |_| true);
    let run = runs.iter().find(|r| r.id == "k1").unwrap();
    assert_eq!(run.change_records().count(), 1);
    let text = show_text(run).join("\n");
    assert!(
        text.contains("node::stop node3: began; no result recorded"),
        "{text}"
    );
    assert!(!text.contains("node2: began"), "{text}");
    let events = &show_json(run)["events"];
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["node"], "node3");
}

#[test]
fn forced_calls_rehearsals_declines_and_links_are_read_back() {
    let op = |run: &str, ts: f64, forced: bool| {
        let mut r = ctx(
            run,
            ts,
            json!({"op": "node::restart", "node": "node1", "args": {}, "result": "ok", "error": null, "duration_ms": 5}),
        );
        if forced {
            r["override"] = json!({"rule": "leader", "reason": "leads", "forced": true});
        }
        r
    };
    let recs = vec![
        ctx("a", 1.0, json!({"event": "run_start", "args": ["0.11.0"]})),
        op("a", 2.0, false),
        op("a", 2.5, true),
        ctx(
            "a",
            3.0,
            json!({"event": "run_end", "result": "stopped", "exit_code": 3}),
        ),
        ctx(
            "r",
            4.0,
            json!({"event": "run_start", "args": ["0.11.0"], "rehearsal": true}),
        ),
        ctx(
            "r",
            5.0,
            json!({"event": "run_end", "result": "done", "exit_code": 0, "rehearsal": {"planned_changes": 17, "predicted_ms": 9000}}),
        ),
        ctx("r", 6.0, json!({"event": "declined", "answer": "no"})),
        ctx(
            "r2",
            7.0,
            json!({"event": "run_start", "args": ["0.11.0"], "rehearsal": true}),
        ),
        ctx(
            "r2",
            8.0,
            json!({"event": "run_end", "result": "done", "exit_code": 0}),
        ),
        ctx(
            "b",
            9.0,
            json!({"event": "run_start", "args": ["0.11.0"], "continues": "a", "after_rehearsal": "r2", "options": {"soak_secs": "60"}, "command_line": ["neumann-script", "--set", "soak_secs=60", "rolling_upgrade.rhai", "0.11.0"], "tool_version": "0.1.0", "commit": "abc1234"}),
        ),
        ctx("b", 9.5, json!({"event": "recovered", "runs": ["a"]})),
        op("b", 10.0, false),
        ctx(
            "b",
            11.0,
            json!({"event": "run_end", "result": "done", "exit_code": 0}),
        ),
    ];
    let (runs, _) = group(lines(&recs), |_| true);
    let get = |id: &str| runs.iter().find(|r| r.id == id).unwrap();
    let (a, r, r2, b) = (get("a"), get("r"), get("r2"), get("b"));
    assert_eq!((a.forced, a.changes), (1, 2));
    assert_eq!(a.result_text(), "stopped, FORCED");
    assert_eq!((r.rehearsal, r.changes), (true, 0));
    assert_eq!(r.result_text(), "rehearsal, declined");
    assert_eq!(r2.result_text(), "rehearsal: done");
    assert_eq!(b.result_text(), "done");
    assert_eq!(
        a.continued_by,
        ["b"],
        "continued and recovered by b, named once"
    );
    assert_eq!(r2.continued_by, ["b"]);
    assert!(r.continued_by.is_empty());
    let text = show_text(b).join("\n");
    for want in [
        "  options  soak_secs=60",
        "  command  neumann-script --set 'soak_secs=60' rolling_upgrade.rhai 0.11.0",
        "  tool     neumann-script 0.1.0 (commit abc1234)",
        "  after    rehearsal r2, whose plan the operator confirmed",
        "  continues run a (",
        "  finished what run a left (recovered)",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    let text = show_text(r).join("\n");
    assert!(text.starts_with("rehearsal r\n"), "{text}");
    assert!(
        text.contains("its plan: 17 changes, predicted 9 s"),
        "{text}"
    );
    assert!(
        text.contains("  declined the operator did not run its plan live (answered no)"),
        "{text}"
    );
    assert!(show_text(a)
        .join("\n")
        .contains("FORCED   1 call went past"));
    // The filters.
    let opts = |forced: bool, script: Option<&str>, cluster: Option<&str>| AuditOptions {
        journal: None,
        format: Format::Text,
        all: false,
        show: None,
        forced,
        script: script.map(str::to_string),
        cluster: cluster.map(PathBuf::from),
    };
    let kept = |o: &AuditOptions| -> Vec<&str> {
        runs.iter()
            .filter(|r| o.keeps(r))
            .map(|r| r.id.as_str())
            .collect()
    };
    assert_eq!(kept(&opts(true, None, None)), ["a"]);
    assert_eq!(
        kept(&opts(false, Some("rolling_upgrade.rhai"), None)),
        ["a", "r", "r2", "b"]
    );
    assert!(kept(&opts(false, Some("canary_upgrade.rhai"), None)).is_empty());
    assert_eq!(kept(&opts(false, None, Some("/c.toml"))).len(), 4);
    assert!(kept(&opts(false, None, Some("/elsewhere.toml"))).is_empty());
}

#[test]
fn read_only_sessions_are_listed_only_when_they_changed_something() {
    let mut recs = sample();
    let mut s = ctx("e1", 400.0, json!({"event": "run_start"}));
    s["script"] = json!("<-e>");
    recs.push(s.clone());
    let (runs, _) = group(lines(&recs), |_| true);
    assert!(!runs.iter().find(|r| r.id == "e1").unwrap().listed());
    let mut op = s;
    op["event"] = Value::Null;
    op["op"] = json!("node::drain");
    recs.push(op);
    let (runs, _) = group(lines(&recs), |_| true);
    assert!(runs.iter().find(|r| r.id == "e1").unwrap().listed());
}
