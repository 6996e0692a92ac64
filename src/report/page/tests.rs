use super::super::svg::*;
use super::super::text::*;
use super::super::timeline::{Rehearsal, RunEvent, SimRecord};
use super::*;
use crate::sim::SimEvent;
use serde_json::json;

fn record() -> Record {
    let e = |t: f64, node: &str, kind: &str, detail: &str| SimEvent {
        t,
        node: Some(node.into()),
        kind: kind.into(),
        detail: detail.into(),
    };
    Record {
        run_id: "r1".into(),
        script: "<stock>/rolling_upgrade.rhai".into(),
        args: vec!["0.11.0".into()],
        cluster: "/tmp/<c>.toml".into(),
        result: "stopped".into(),
        exit_code: 3,
        message: Some("stopped safely: <quorum> & more".into()),
        duration_s: 12.0,
        end: 12.0,
        speed: 1.0,
        nodes: vec!["node1".into(), "node2".into()],
        events: vec![
            RunEvent {
                t: 1.0,
                kind: "step_start".into(),
                fields: json!({"name": "upgrade node2"}),
            },
            RunEvent {
                t: 9.0,
                kind: "step_end".into(),
                fields: json!({"name": "upgrade node2", "result": "ok", "duration_ms": 8000}),
            },
        ],
        sim: Some(SimRecord {
            events: vec![
                e(2.0, "node2", "stop", ""),
                e(5.0, "node2", "start", ""),
                e(6.0, "node2", "rejoined", ""),
                e(7.0, "node2", "caught_up", ""),
            ],
            stats: json!({"lost_committed_writes": 0, "max_leaders_in_a_term": 2}),
            install_secs: 3.0,
        }),
        ..Record::default()
    }
}

#[test]
fn the_page_is_self_contained_and_escapes_what_it_quotes() {
    let page = render(&record());
    assert!(page.starts_with("<!doctype html>"));
    for banned in [
        "<script", "src=", "href=", "url(", "http://", "https://", "@import",
    ] {
        assert!(!page.contains(banned), "{banned} in the page");
    }
    assert!(page.contains("/tmp/&lt;c&gt;.toml"));
    assert!(page.contains("stopped safely: &lt;quorum&gt; &amp; more"));
    assert!(!page.contains("<quorum>"));
}

#[test]
fn one_lane_per_node_with_its_down_segment_steps_the_stop_and_a_violated_invariant() {
    let page = render(&record());
    assert_eq!(page.matches("<g class=\"lane\"").count(), 2);
    assert_eq!(page.matches("data-state=\"down\"").count(), 1);
    assert!(page.contains("id=\"safe-stop\""));
    assert!(page.contains("upgrade node2"));
    assert!(page.contains("<td class=\"num\">8.0 s</td>"));
    assert!(
        page.contains("VIOLATED"),
        "max_leaders_in_a_term 2 is judged"
    );
    assert!(!page.contains("PREDICTED"));
    let predicted = render(&Record {
        predicted: true,
        ..record()
    });
    assert!(predicted.contains("PREDICTED"));
}

#[test]
fn dates_are_utc() {
    assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(1_795_620_457.0), "2026-11-25 15:27:37 UTC");
    assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
}

#[test]
fn ticks_stay_few() {
    for end in [0.3, 5.0, 59.0, 600.0, 7200.0, 100_000.0] {
        assert!(end / tick_step(end) <= 12.0 || tick_step(end) == 86400.0);
    }
}

/// Where a placed label lies on a plot `width` pixels wide: its left and right edges.
fn edges(p: &Placed, width: f64) -> (f64, f64) {
    let len = p.text.chars().count() as f64 * CHAR;
    let at = p.x / 100.0 * width + p.dx;
    match p.align {
        "start" => (at, at + len),
        "end" => (at - len, at),
        _ => (at - len / 2.0, at + len / 2.0),
    }
}

/// The first two labels that overlap at this width, or one drawn inside its bar that leaves it.
fn misplaced(labels: &[(Placed, (f64, f64))], width: f64) -> Option<String> {
    for (a, bar) in labels {
        let (l, r) = edges(a, width);
        if a.inside && (l < bar.0 * width || r > bar.1 * width) {
            return Some(format!("{} leaves its bar at {width}", a.text));
        }
    }
    for (i, (a, _)) in labels.iter().enumerate() {
        let (l, r) = edges(a, width);
        for (b, _) in &labels[i + 1..] {
            let (bl, br) = edges(b, width);
            if l < br && bl < r {
                return Some(format!("{} and {} overlap at {width}", a.text, b.text));
            }
        }
    }
    None
}

#[test]
fn labels_placed_for_the_narrowest_plot_stay_whole_and_apart_at_any_wider_one() {
    let mut rng = fastrand::Rng::with_seed(24);
    let sides = [
        Side::In,
        Side::RightFree,
        Side::LeftFree,
        Side::Right,
        Side::Left,
        Side::Centre,
    ];
    for _ in 0..200 {
        // A row of bars in order, some wide, most narrow, as steps or leaders are.
        let mut bars = Vec::new();
        let mut t = rng.f64() * 0.05;
        while t < 1.0 {
            let w = if rng.u8(0..4) == 0 {
                rng.f64() * 0.3
            } else {
                rng.f64() * 0.02
            };
            bars.push((t, (t + w).min(1.0)));
            t += w + rng.f64() * 0.01;
        }
        let mut row = Row::new(bars.clone());
        let mut placed = Vec::new();
        for (i, &(f0, f1)) in bars.iter().enumerate() {
            let text = "x".repeat(rng.usize(1..20));
            let tries: Vec<(String, Side)> = (0..3)
                .map(|k| {
                    (
                        text[..text.len() / (k + 1)].to_string(),
                        sides[rng.usize(0..6)],
                    )
                })
                .chain([(i.to_string(), Side::Centre)])
                .collect();
            if let Some(p) = row.place(f0, f1, &tries) {
                placed.push((p, (f0, f1)));
            }
        }
        for width in [PLOT_MIN, 900.0, 1280.0, 1920.0, 4000.0] {
            assert_eq!(misplaced(&placed, width), None, "{bars:?}");
        }
    }
    // The check itself fires: a label moved onto another, one moved out of its bar.
    let mut row = Row::new(vec![(0.1, 0.5), (0.505, 0.9)]);
    let a = row.place(0.1, 0.5, &[("first".into(), Side::In)]).unwrap();
    let mut b = row
        .place(0.505, 0.9, &[("second".into(), Side::In)])
        .unwrap();
    b.x = a.x;
    let e = misplaced(&[(a, (0.1, 0.5)), (b, (0.505, 0.9))], PLOT_MIN).unwrap();
    assert!(e.contains("leaves its bar"), "{e}");
    // The placing refuses what would overlap: beside the first bar is the second's label.
    let a = row.place(0.1, 0.5, &[("first".into(), Side::Right)]);
    assert!(a.is_none(), "placed over the label beside it");
    let a = Placed {
        text: "one".into(),
        x: 10.0,
        dx: 3.0,
        align: "start",
        inside: false,
    };
    let b = Placed {
        text: "two".into(),
        ..a
    };
    let e = misplaced(&[(a, (0.1, 0.5)), (b, (0.6, 0.9))], PLOT_MIN).unwrap();
    assert!(e.contains("overlap"), "{e}");
}

#[test]
fn a_failed_canary_check_is_marked_and_the_chart_says_the_error_rate_was_the_nodes_own() {
    let mut rec = record();
    rec.events.push(RunEvent {
        t: 8.0,
        kind: "canary_check".into(),
        fields: json!({
            "canary": "node2", "verdict": "rollback",
            "figures": {
                "error_rate": {"canary": 0.0493, "baseline": 0.0},
                "latency_p99_ms": {"canary": 49.0, "baseline": 9.8, "ratio": 5.0},
                "replication_lag_ms": {"canary": 0.0},
                "memory_bytes": {"ratio": 1.55},
            },
        }),
    });
    let page = render(&rec);
    assert_eq!(page.matches("class=\"mark mark-check-failed\"").count(), 2);
    assert!(
        page.contains("canary check failed (rollback) on node2: error rate 4.93% (baseline 0.00%)")
    );
    assert!(page.contains("No client write failed for good"));
    assert!(page.contains("node2&#39;s own error rate, 4.93%"));
    assert!(!page.to_lowercase().contains("no failed client writes"));
    // Without the failed check, the caption says nothing of an error rate.
    let clean = render(&record());
    assert!(!clean.contains("error rate"));
}

#[test]
fn hovers_give_the_offset_and_the_wall_clock_and_a_rehearsal_only_the_offset() {
    let rec = Record {
        started_unix: 1_795_620_457.0,
        wall_origin: 1_795_620_457.0,
        rate: 1.0,
        ..record()
    };
    let page = render(&rec);
    assert!(
        page.contains(
            "<title>node2: down: +2.0 s to +5.0 s (3.0 s)\n15:27:39 to 15:27:42 UTC</title>"
        ),
        "{page}"
    );
    // At x20 the timeline's seconds are the simulator's: 20 of them are one on the wall clock.
    let fast = render(&Record {
        rate: 20.0,
        ..rec.clone()
    });
    assert!(fast.contains("+2.0 s to +5.0 s (3.0 s)\n15:27:37 to 15:27:37 UTC"));
    let predicted = render(&Record {
        predicted: true,
        ..rec
    });
    assert!(predicted.contains("<title>node2: down: +2.0 s to +5.0 s (3.0 s)</title>"));
}

#[test]
fn a_rehearsal_page_shows_the_plan_and_the_predicted_duration_as_printed() {
    let page = render(&Record {
        predicted: true,
        rehearsal: Some(Rehearsal {
            plan: vec![
                "plan (1 change, in order):".into(),
                "   1. node::stop node2: `systemctl stop <svc>`".into(),
            ],
            guards: "guards: none fired".into(),
            predicted: "12.4 s (from the simulator's timings)".into(),
        }),
        ..record()
    });
    assert!(page.contains(
        "<td id=\"h-predicted-duration\" class=\"\">12.4 s (from the simulator&#39;s timings)</td>"
    ));
    assert!(page.contains(
        "plan (1 change, in order):\n   1. node::stop node2: `systemctl stop &lt;svc&gt;`\nguards: none fired\n</pre>"
    ));
}

#[test]
fn signals_cross_the_timeline_and_health_waits_are_drawn_where_they_were() {
    let mut rec = record();
    rec.events.extend([
        RunEvent {
            t: 4.0,
            kind: "wait".into(),
            fields: json!({"what": "healthy", "node": null, "ok": true, "duration_ms": 1500}),
        },
        RunEvent {
            t: 10.0,
            kind: "signal".into(),
            fields: json!({"signal": "SIGTERM", "at_once": false}),
        },
    ]);
    let page = render(&rec);
    assert!(page.contains("class=\"wait\" id=\"wait-0\" data-t0=\"2.500\" data-t1=\"4.000\""));
    assert!(page.contains("<line class=\"signal\" id=\"signal-0\" data-t=\"10.000\""));
    assert!(page.contains("SIGTERM: the run stops at its next safe point at +10.0 s"));
    assert!(
        page.contains(">SIGTERM</text>"),
        "the signal is named on the timeline"
    );
}

#[test]
fn the_node_table_has_each_nodes_versions_and_outages() {
    let mut rec = record();
    rec.versions_before = [("node1", "0.10.4"), ("node2", "0.10.4")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rec.versions_after = [("node2".to_string(), "0.11.0".to_string())].into();
    let page = render(&rec);
    assert!(page.contains("<tr class=\"node-row\" data-node=\"node1\"><td>node1</td><td>0.10.4 → not read at the end</td><td class=\"num\">0</td><td class=\"num\">0.0 s</td><td class=\"num\">0.0 s</td><td>never</td></tr>"), "{page}");
    // node2: down from 2 to 5, then rejoining and catching up until 7.
    assert!(page.contains("<tr class=\"node-row\" data-node=\"node2\"><td>node2</td><td>0.10.4 → 0.11.0</td><td class=\"num\">1</td><td class=\"num\">3.0 s</td><td class=\"num\">5.0 s</td><td>+2.0 s to +7.0 s</td></tr>"), "{page}");
}

#[test]
fn the_caption_sits_above_the_bars() {
    let mut rec = record();
    if let Some(sim) = &mut rec.sim {
        sim.events.push(SimEvent {
            t: 0.2,
            node: None,
            kind: "write_failed".into(),
            detail: "40 client writes failed".into(),
        });
    }
    let page = render(&rec);
    let num = |s: &str, key: &str| -> f64 {
        let at = s.find(key).unwrap() + key.len();
        s[at..at + s[at..].find('"').unwrap()].parse().unwrap()
    };
    let caption = &page[page.find("id=\"caption\"").unwrap()..];
    let bar = &page[page.find("<rect class=\"bar\"").unwrap()..];
    // The caption's one line: its baseline, and under it the top of the tallest bar.
    assert!(num(caption, "y=\"") + 4.0 <= num(bar, "y=\""));
    assert!(page.contains("40 in all, at most 40 in one second"));
}
