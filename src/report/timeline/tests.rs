use super::*;
use serde_json::json;

fn sim_event(t: f64, node: &str, kind: &str, detail: &str) -> SimEvent {
    SimEvent {
        t,
        node: (!node.is_empty()).then(|| node.to_string()),
        kind: kind.into(),
        detail: detail.into(),
    }
}

fn sim_record(events: Vec<SimEvent>) -> Record {
    Record {
        nodes: vec!["node1".into(), "node2".into()],
        end: 20.0,
        speed: 1.0,
        sim: Some(SimRecord {
            events,
            stats: json!({}),
            install_secs: 3.0,
        }),
        ..Record::default()
    }
}

fn states(lane: &Lane) -> Vec<(State, f64, f64)> {
    lane.segments
        .iter()
        .map(|s| (s.state, s.t0, s.t1))
        .collect()
}

#[test]
fn a_restart_in_the_simulator_is_drained_down_rejoining_catching_up_up() {
    let rec = sim_record(vec![
        sim_event(-1.0, "node1", "elected", "term 1"),
        sim_event(2.0, "node2", "drain", ""),
        sim_event(3.0, "node2", "stop", "systemctl stop neumann"),
        sim_event(7.0, "node2", "install", "0.11.0 installed"),
        sim_event(8.0, "node2", "start", "starting 0.11.0"),
        sim_event(9.5, "node2", "rejoined", "version 0.11.0"),
        sim_event(10.0, "node2", "caught_up", "lag 3 ms"),
        sim_event(10.5, "node2", "undrain", ""),
        sim_event(
            11.0,
            "",
            "write_failed",
            "12 client writes failed: no node in service",
        ),
        sim_event(11.5, "node1", "write_failed", "3 client writes failed"),
    ]);
    let tl = timeline(&rec);
    assert_eq!(tl.lanes.len(), 2);
    assert_eq!(states(&tl.lanes[0]), vec![(State::Up, 0.0, 20.0)]);
    assert_eq!(
        states(&tl.lanes[1]),
        vec![
            (State::Up, 0.0, 2.0),
            (State::Drained, 2.0, 3.0),
            (State::Down, 3.0, 8.0),
            (State::Rejoining, 8.0, 9.5),
            (State::CatchingUp, 9.5, 10.0),
            (State::Up, 10.0, 20.0),
        ]
    );
    let a = &tl.lanes[1].activities;
    assert_eq!(
        (a.len(), a[0].t0, a[0].t1, a[0].what),
        (1, 4.0, 7.0, "installing")
    );
    // The election before the run began still says who led from 0.
    assert_eq!(
        tl.leaders,
        vec![Leadership {
            node: "node1".into(),
            term: Some(1),
            t0: 0.0,
            t1: 20.0
        }]
    );
    let (bucket, bars) = tl.failed_writes.unwrap();
    assert_eq!((bucket, bars[11], bars.iter().sum::<u64>()), (1.0, 15, 15));
}

#[test]
fn leader_changes_carry_their_terms_and_a_lost_leader_leaves_a_gap() {
    let mut rec = sim_record(vec![
        sim_event(0.5, "node1", "elected", "term 2"),
        sim_event(4.0, "node1", "leader_lost", "term 2: stopped"),
        sim_event(4.4, "node2", "elected", "term 3"),
    ]);
    // The leader the run found: it led until the first election the log shows.
    rec.leader_at_start = Some(("node2".into(), Some(1)));
    let tl = timeline(&rec);
    let l: Vec<(String, Option<u64>, f64, f64)> = tl
        .leaders
        .iter()
        .map(|l| (l.node.clone(), l.term, l.t0, l.t1))
        .collect();
    assert_eq!(
        l,
        vec![
            ("node2".into(), Some(1), 0.0, 0.5),
            ("node1".into(), Some(2), 0.5, 4.0),
            ("node2".into(), Some(3), 4.4, 20.0)
        ]
    );
    assert!(tl.lanes[0].marks.iter().any(|m| m.kind == "leader-lost"));
}

#[test]
fn a_real_cluster_is_drawn_from_the_runs_calls_and_waits() {
    let op = |t: f64, op: &str, node: &str, ms: u64| RunEvent {
        t,
        kind: "op".into(),
        fields: json!({"op": op, "node": node, "args": {"version": "0.11.0"}, "error": null, "duration_ms": ms}),
    };
    let rec = Record {
        nodes: vec!["a".into()],
        end: 30.0,
        speed: 1.0,
        events: vec![
            op(1.0, "node::drain", "a", 100),
            op(3.0, "node::stop", "a", 2000),
            op(9.0, "node::install", "a", 6000),
            op(10.0, "node::start", "a", 1000),
            RunEvent {
                t: 12.0,
                kind: "wait".into(),
                fields: json!({"what": "rejoined", "node": "a", "ok": true}),
            },
            RunEvent {
                t: 13.0,
                kind: "wait".into(),
                fields: json!({"what": "caught_up", "node": "a", "ok": true}),
            },
            op(14.0, "node::undrain", "a", 0),
        ],
        ..Record::default()
    };
    let tl = timeline(&rec);
    assert_eq!(
        states(&tl.lanes[0]),
        vec![
            (State::Up, 0.0, 1.0),
            (State::Drained, 1.0, 1.0),
            (State::Down, 1.0, 10.0),
            (State::Rejoining, 10.0, 12.0),
            (State::CatchingUp, 12.0, 13.0),
            (State::Up, 13.0, 30.0),
        ]
    );
    assert_eq!(tl.lanes[0].activities[0].t0, 3.0);
    assert!(tl.failed_writes.is_none());
}

#[test]
fn steps_nest_gates_of_any_kind_are_marked_and_a_safe_stop_says_why() {
    let ev = |t: f64, kind: &str, fields: Value| RunEvent {
        t,
        kind: kind.into(),
        fields,
    };
    let rec = Record {
        end: 10.0,
        result: "stopped".into(),
        message: Some("stopped safely: quorum".into()),
        events: vec![
            ev(0.0, "run_start", json!({})),
            ev(1.0, "step_start", json!({"name": "outer"})),
            ev(2.0, "step_start", json!({"name": "inner"})),
            ev(3.0, "step_end", json!({"name": "inner", "result": "ok"})),
            ev(4.0, "gate", json!({"question": "go on?"})),
            ev(5.0, "paused", json!({"by": "ops"})),
            ev(6.0, "resumed", json!({})),
            ev(7.0, "someday_new", json!({})),
        ],
        ..Record::default()
    };
    let tl = timeline(&rec);
    let s: Vec<(&str, usize, f64, f64, &str)> = tl
        .steps
        .iter()
        .map(|s| {
            let end = s.end.unwrap_or(rec.end);
            (s.name.as_str(), s.depth, s.start, end, s.result.as_str())
        })
        .collect();
    assert_eq!(
        s,
        vec![
            ("outer", 0, 1.0, 10.0, "unfinished"),
            ("inner", 1, 2.0, 3.0, "ok")
        ]
    );
    let labels: Vec<&str> = tl.gates.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            "gate: go on?",
            "paused: ops",
            "resumed",
            "someday_new",
            "safe stop: stopped safely: quorum"
        ]
    );
    assert_eq!(tl.bands[0].label, "run paused");
    assert_eq!((tl.bands[0].t0, tl.bands[0].t1), (5.0, 6.0));
}

#[test]
fn only_failed_checks_are_marked_on_the_gates_row_and_the_canarys_lane() {
    let check = |t: f64, kind: &str, verdict: &str| RunEvent {
        t,
        kind: kind.into(),
        fields: json!({"canary": "node2", "verdict": verdict, "figures": {"error_rate": {"canary": 0.002, "baseline": 0.001}}}),
    };
    let mut rec = sim_record(vec![]);
    rec.events = vec![
        check(1.0, "canary_check", "ok"),
        check(2.0, "canary_check", "investigate"),
        check(3.0, "analysis_check", "ok"),
        check(4.0, "analysis_check", "failed"),
    ];
    let tl = timeline(&rec);
    let checks: Vec<(f64, Option<&str>, &str)> = tl
        .failed_checks
        .iter()
        .map(|c| (c.t, c.node.as_deref(), c.label.as_str()))
        .collect();
    assert_eq!(
        checks,
        vec![
            (
                2.0,
                Some("node2"),
                "canary check failed (investigate) on node2: error rate 0.20% (baseline 0.10%)"
            ),
            (
                4.0,
                None,
                "post-upgrade analysis check failed: error rate 0.20% (baseline 0.10%)"
            ),
        ]
    );
    let marks: Vec<f64> = tl.lanes[1].marks.iter().map(|m| m.t).collect();
    assert_eq!(marks, vec![2.0]);
    assert!(tl.gates.is_empty(), "checks are not gates: {:?}", tl.gates);
}
