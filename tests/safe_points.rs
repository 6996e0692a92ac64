//! The waits a run chooses are safe points: a `pause` or `abort` asked from another process during a
//! soak, a canary watch, a post-upgrade analysis, `sleep` or `metrics::watch` is taken at once, not when
//! the wait ends; never while a node the run stopped is not started again. Judged by the simulator's
//! clock: its lease log records when a request was made and when the run acknowledged acting on it.

use neumann_script::sim::SimConfig;

use crate::support::{expect, journal_events, Cluster, Running};

/// Speed 5: a real second is five simulated ones, and one node's procedure spans several real seconds.
fn cluster(nodes: usize) -> Cluster {
    Cluster::with(SimConfig {
        nodes,
        version: semver::Version::new(0, 10, 4),
        speed: 5.0,
        ..SimConfig::default()
    })
}

/// How long, on the simulator's clock, a run may take to act on a request made while it waits. It reads
/// its lease once a simulated second while it waits (a fifth of a real second at speed 5) and acts on
/// what it finds at once: a couple of simulated seconds on an idle machine. Thirty allow six real
/// seconds for a loaded two-core machine, and are still half of a soak's or a watch's 60 s window, and a
/// tenth of the waits below: a run that looked only between windows, or at a wait's end, fails it.
const WITHIN: f64 = 30.0;

/// The simulated time of the first `lease` event whose detail says `text`.
fn lease_at(c: &Cluster, text: &str) -> f64 {
    let events = c.events();
    events
        .iter()
        .find(|e| e.kind == "lease" && e.detail.contains(text))
        .map(|e| e.t)
        .unwrap_or_else(|| {
            let lease: Vec<String> = events
                .iter()
                .filter(|e| e.kind == "lease")
                .map(|e| format!("{:.1} {}", e.t, e.detail))
                .collect();
            panic!("no lease event says {text:?}: {lease:#?}")
        })
}

/// How long the run took to act on the request for `action`, on the simulator's clock.
fn took_to_act(c: &Cluster, action: &str) -> f64 {
    let asked = lease_at(c, &format!("request {action} by "));
    let acted = lease_at(c, &format!("acted on request {action} "));
    acted - asked
}

/// The follower the rolling upgrade takes first: the first member, in inventory order, that does not lead.
fn first_follower(c: &Cluster) -> String {
    let leader = c.leader();
    ["node1", "node2", "node3"]
        .into_iter()
        .find(|n| *n != leader)
        .unwrap()
        .to_string()
}

#[test]
fn an_abort_during_a_soak_is_taken_at_once_and_stops_safely() {
    let c = cluster(3);
    let first = first_follower(&c);
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--set",
            "soak_secs=600",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("▶ soak ");
    expect(&c.run(&["abort", "--reason", "change freeze"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(
        e.contains("aborted by ") && e.contains("change freeze"),
        "{e}"
    );
    assert!(e.contains("taken at a safe point: during "), "{e}");
    assert!(e.contains("state now:"), "the usual state report:\n{e}");
    assert!(e.contains("to continue, run it again"), "{e}");
    let took = took_to_act(&c, "abort");
    assert!(
        took <= WITHIN,
        "the abort was taken {took:.1} simulated s after it was asked, in a 600 s soak"
    );
    // The soaked node stays upgraded and serving; no other node was touched.
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
    assert_eq!(c.versions()[&first], "0.11.0");
    let touched: Vec<String> = c
        .events_of(&["stop", "drain", "install", "activate"])
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| *n != first)
        .collect();
    assert_eq!(touched, Vec::<String>::new());
}

#[test]
fn a_pause_during_a_soak_holds_it_past_its_end_and_the_resumed_run_finishes() {
    let c = cluster(3);
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--set",
            "soak_secs=40",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("▶ soak ");
    expect(&c.run(&["pause", "--reason", "a look at p99"]), 0);
    let line = run.until("paused by");
    assert!(line.contains("a look at p99 (during "), "{line}");
    let took = took_to_act(&c, "pause");
    assert!(
        took <= WITHIN,
        "the pause was taken {took:.1} simulated s after it was asked"
    );
    let at_pause = c.events().len();
    // Paused for longer than the whole soak: nothing is stopped, and the lease shows where it waits.
    c.wait_until_sim(c.clock() + 60.0);
    let out = c.run(&["--format", "json", "status"]);
    let (o, _) = expect(&out, 0);
    let status: serde_json::Value = serde_json::from_str(&o).unwrap();
    let at = status["run"]["paused"]["at"].as_str().unwrap_or_default();
    assert!(
        at.starts_with("during ") && at.contains(" left)"),
        "{status}"
    );
    let before_resume = c.events().len();
    let stops = |from: usize, to: usize| {
        c.events()[from..to]
            .iter()
            .filter(|e| e.kind == "stop")
            .count()
    };
    assert_eq!(stops(at_pause, before_resume), 0, "stopped while paused");
    expect(&c.run(&["resume"]), 0);
    // The window the pause held is finished after the resume, then the run goes on.
    run.until("resumed by");
    run.until("soak check 1:");
    let out = run.finish();
    expect(&out, 0);
    assert_eq!(c.version_list(), vec!["0.11.0"; 3]);
    // The same count after the resume finds the nodes upgraded then: it would have fired had the run
    // gone on while paused.
    assert!(stops(before_resume, c.events().len()) > 0);
}

#[test]
fn an_abort_during_a_canary_watch_is_taken_at_once_and_the_watch_is_left_to_resume() {
    let c = cluster(3);
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--set",
            "monitor_secs=600",
            "--set",
            "interval_secs=60",
            "canary_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("▶ watch ");
    expect(&c.run(&["abort", "--reason", "incident elsewhere"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(
        e.contains("aborted by ") && e.contains("incident elsewhere"),
        "{e}"
    );
    let took = took_to_act(&c, "abort");
    assert!(
        took <= WITHIN,
        "the abort was taken {took:.1} simulated s after it was asked, in a 600 s watch"
    );
    // The canary stays on the new version and serving; the others were not touched. The watch has no
    // end in the journal, so running it again carries it on.
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
    let on_target = c.version_list().iter().filter(|v| *v == "0.11.0").count();
    assert_eq!(on_target, 1, "{:?}", c.versions());
    let journal = c.default_journal();
    assert_eq!(journal_events(&journal, "canary_watch").len(), 1);
    assert!(journal_events(&journal, "canary_end").is_empty());
}

#[test]
fn a_post_upgrade_analysis_pauses_at_once_and_an_abort_ends_it_paused() {
    let c = cluster(3);
    let mut run = Running::start(
        &c,
        &[
            "--yes",
            "--set",
            "analysis_secs=600",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    run.until("▶ post-upgrade analysis");
    expect(&c.run(&["pause", "--reason", "hold it"]), 0);
    run.until("paused by");
    let took = took_to_act(&c, "pause");
    assert!(
        took <= WITHIN,
        "the pause was taken {took:.1} simulated s after it was asked"
    );
    expect(&c.run(&["abort", "--reason", "enough"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(e.contains("aborted by ") && e.contains("enough"), "{e}");
    assert_eq!(c.version_list(), vec!["0.11.0"; 3]);
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
}

#[test]
fn a_request_during_a_wait_between_a_stop_and_a_start_waits_for_the_start() {
    let c = cluster(3);
    let node = first_follower(&c);
    let script = c.dir.path().join("stop_wait_start.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
            node::drain("{node}");
            node::stop("{node}");
            info("{node} stopped");
            sleep(150);
            node::start("{node}");
            node::wait_rejoined("{node}", 120);
            info("{node} started");
            sleep(600);
            info("the long sleep ended");
            "#
        ),
    )
    .unwrap();
    let mut run = Running::start(&c, &[script.to_str().unwrap()]);
    run.until(&format!("{node} stopped"));
    expect(&c.run(&["abort", "--reason", "now"]), 0);
    // Said at once, taken after the start.
    run.until(&format!(
        "taken at the next safe point, once {node} is started again"
    ));
    let out = run.finish();
    let (_, e) = expect(&out, 3);
    assert!(e.contains(&format!("{node} started")), "{e}");
    assert!(!e.contains("the long sleep ended"), "{e}");
    let started = c
        .events()
        .iter()
        .find(|ev| ev.kind == "start" && ev.node.as_deref() == Some(node.as_str()))
        .map(|ev| ev.t)
        .expect("the node was started");
    let acted = lease_at(&c, "acted on request abort ");
    assert!(
        acted >= started,
        "aborted at {acted:.1} s with {node} down until {started:.1} s"
    );
    // The bound the other tests hold fires here: this request waited out the rest of a 150 s sleep.
    let took = took_to_act(&c, "abort");
    assert!(took > WITHIN, "{took:.1} simulated s");
    assert!(c.not_up().is_empty(), "{:?}", c.not_up());
}

#[test]
fn a_paused_watch_spans_the_pause_in_one_sample_and_counts_it_toward_its_length() {
    let c = cluster(3);
    let script = c.dir.path().join("watch.rhai");
    std::fs::write(
        &script,
        r#"
        hold_lease();
        info("watching");
        let n = metrics::watch("node2", 120, 30, |s| { info(`sample: ${s.tx_per_sec} tx/s`); true });
        info(`samples: ${n}`);
        "#,
    )
    .unwrap();
    let mut run = Running::start(&c, &[script.to_str().unwrap()]);
    run.until("watching");
    expect(&c.run(&["pause"]), 0);
    let line = run.until("paused by");
    assert!(line.contains("(during the watch of node2 "), "{line}");
    let took = took_to_act(&c, "pause");
    assert!(
        took <= WITHIN,
        "the pause was taken {took:.1} simulated s after it was asked"
    );
    // Held for two of its intervals and more.
    c.wait_until_sim(c.clock() + 70.0);
    expect(&c.run(&["resume"]), 0);
    let out = run.finish();
    let (_, e) = expect(&out, 0);
    // Four 30 s samples unpaused; the pause skips the intervals it held rather than catching up on
    // them with samples a moment long.
    let n: u32 = e
        .lines()
        .find_map(|l| l.split("samples: ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    assert!((1..=3).contains(&n), "{n} samples:\n{e}");
    let rates: Vec<f64> = e
        .lines()
        .filter_map(|l| l.split("sample: ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(rates.len(), n as usize, "{e}");
    // A sample over the whole span of the pause is a rate like the others, not one over a moment.
    let (lo, hi) = rates
        .iter()
        .fold((f64::MAX, 0.0_f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    assert!(hi <= 3.0 * lo.max(1.0), "{rates:?}");
}
