//! From a run's records to what the page draws: one lane per node with its states over time, the leader
//! and its terms, the steps, the gates and pauses, and failed writes per second. Pure: records in, lanes out.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::journal::Step;
use crate::sim::SimEvent;

/// What one run left behind, every time in seconds on the run's timeline (0 is the session's start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub run_id: String,
    pub script: String,
    pub args: Vec<String>,
    pub cluster: String,
    /// `done`, `script error`, `usage`, `stopped`, `interrupted`, as `run_end` says.
    pub result: String,
    pub exit_code: i64,
    pub message: Option<String>,
    /// Wall-clock duration of the run in seconds.
    pub duration_s: f64,
    /// The end of the timeline (the cluster's seconds: simulated ones on a simulated cluster).
    pub end: f64,
    /// Timeline seconds per real second (the simulator's speed; 1 on a real cluster).
    pub speed: f64,
    /// A rehearsal: the page shows the predicted timeline of the run on a twin.
    pub predicted: bool,
    /// When the run started, unix seconds.
    pub started_unix: f64,
    /// The wall clock at 0 on the timeline, unix seconds, and timeline seconds per real second as measured:
    /// what a hover says of a moment's time of day.
    pub wall_origin: f64,
    pub rate: f64,
    /// Each node's version as the run began and as it ended, where the cluster said.
    pub versions_before: BTreeMap<String, String>,
    pub versions_after: BTreeMap<String, String>,
    /// A rehearsal's findings, as the terminal printed them.
    pub rehearsal: Option<Rehearsal>,
    /// The cluster's nodes in inventory order: one lane each.
    pub nodes: Vec<String>,
    /// Who led as the run began, and in which term, when the cluster said.
    pub leader_at_start: Option<(String, Option<u64>)>,
    /// The run's own events (`step_start`, `op`, `wait`, gates...), in order.
    pub events: Vec<RunEvent>,
    /// A simulated cluster's own records.
    pub sim: Option<SimRecord>,
}

/// What a rehearsal printed after the run: the plan, the guards, the predicted duration. One computation,
/// printed and drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rehearsal {
    /// The heading (`plan (4 changes, in order):`) and the numbered lines under it.
    pub plan: Vec<String>,
    /// `guards: none fired`, or what fired.
    pub guards: String,
    /// The predicted duration and what it is based on.
    pub predicted: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub t: f64,
    pub kind: String,
    pub fields: Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimRecord {
    /// `/sim/events`, times moved onto the run's timeline (events before the run are negative).
    pub events: Vec<SimEvent>,
    /// `/sim/stats`.
    pub stats: Value,
    /// How long the simulator's install (and staging) takes: its log marks only the end.
    pub install_secs: f64,
}

/// A node's state on its lane. `Up` is the baseline: serving, not drawn as a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Up,
    Drained,
    Down,
    Rejoining,
    CatchingUp,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Up,
        State::Drained,
        State::Down,
        State::Rejoining,
        State::CatchingUp,
    ];

    /// The class on the page (CSS colour, and what the browser test counts).
    pub fn class(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Drained => "drained",
            State::Down => "down",
            State::Rejoining => "rejoining",
            State::CatchingUp => "catching-up",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Up => "up, serving",
            State::Drained => "drained",
            State::Down => "down",
            State::Rejoining => "rejoining",
            State::CatchingUp => "catching up",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub state: State,
    pub t0: f64,
    pub t1: f64,
}

/// Work on a node's host beside its state: installing or staging a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// `installing` or `staging`.
    pub what: &'static str,
    pub t0: f64,
    pub t1: f64,
    pub label: String,
}

/// A moment worth a marker: an election, a hand-over, a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub t: f64,
    /// `elected`, `transfer`, `leader-lost`, `failed`, `fault`, `gate`, `pause`, `stop`, ...
    pub kind: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub node: String,
    pub segments: Vec<Segment>,
    pub activities: Vec<Activity>,
    pub marks: Vec<Mark>,
}

/// Who led when, and in which term (`None` when the term is not known).
#[derive(Debug, Clone, PartialEq)]
pub struct Leadership {
    pub node: String,
    pub term: Option<u64>,
    pub t0: f64,
    pub t1: f64,
}

/// A stretch on the gates row: the cluster paused, or the run paused.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    pub t0: f64,
    pub t1: f64,
}

/// A canary check or a post-upgrade analysis check that did not pass.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedCheck {
    pub t: f64,
    /// The node it judged (the canary); none for the analysis, which judges the upgraded nodes together.
    pub node: Option<String>,
    pub label: String,
    /// The error rate it measured, a fraction, when its figures hold one.
    pub error_rate: Option<f64>,
}

/// One node over the run: the page's table.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    pub node: String,
    /// Its version as the run began and as it ended, where the cluster said.
    pub before: Option<String>,
    pub after: Option<String>,
    /// How many times it went down (a stop or a crash).
    pub downs: usize,
    /// Time down, all outages together.
    pub down_s: f64,
    /// Time not up and serving: drained, down, rejoining, catching up.
    pub out_s: f64,
    /// From the first moment out of service to the last moment back; none when it never left.
    pub out: Option<(f64, f64)>,
}

/// Everything the page draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub lanes: Vec<Lane>,
    pub leaders: Vec<Leadership>,
    /// The run's steps in seconds on the timeline; one the run ended inside has no end, and is drawn to
    /// the timeline's.
    pub steps: Vec<Step<f64>>,
    pub gates: Vec<Mark>,
    pub bands: Vec<Band>,
    /// The run waiting for a healthy cluster (`cluster::wait_healthy`, which the stock procedure calls
    /// before a node's turn when the cluster is not healthy).
    pub waits: Vec<Band>,
    pub failed_checks: Vec<FailedCheck>,
    /// Signals the process received (`SIGINT`, ...), at the moment each arrived.
    pub signals: Vec<Mark>,
    /// Failed client writes per bucket of `bucket_s` seconds, from 0; a simulated cluster only.
    pub failed_writes: Option<(f64, Vec<u64>)>,
    /// One per lane, in the lanes' order.
    pub nodes: Vec<NodeSummary>,
}

/// Per node as its records are read: where the process is, and whether it is drained.
#[derive(Clone, Copy)]
struct NodeState {
    process: State,
    drained: bool,
    since: f64,
    shown: State,
}

impl NodeState {
    fn shown(&self) -> State {
        match (self.process, self.drained) {
            (State::Up, true) => State::Drained,
            (p, _) => p,
        }
    }
}

struct LaneBuilder {
    order: Vec<String>,
    lanes: BTreeMap<String, (NodeState, Lane)>,
    end: f64,
}

impl LaneBuilder {
    fn new(nodes: &[String], end: f64) -> LaneBuilder {
        let mut b = LaneBuilder {
            order: Vec::new(),
            lanes: BTreeMap::new(),
            end,
        };
        for n in nodes {
            b.lane(n);
        }
        b
    }

    fn lane(&mut self, node: &str) -> &mut (NodeState, Lane) {
        if !self.lanes.contains_key(node) {
            self.order.push(node.to_string());
        }
        self.lanes.entry(node.to_string()).or_insert_with(|| {
            (
                NodeState {
                    process: State::Up,
                    drained: false,
                    since: f64::NEG_INFINITY,
                    shown: State::Up,
                },
                Lane {
                    node: node.to_string(),
                    segments: Vec::new(),
                    activities: Vec::new(),
                    marks: Vec::new(),
                },
            )
        })
    }

    /// Applies a change at `t`; a change of what the lane shows closes the segment before it.
    fn set(&mut self, node: &str, t: f64, change: impl FnOnce(&mut NodeState)) {
        let (st, lane) = self.lane(node);
        change(st);
        let now = st.shown();
        if now != st.shown {
            push_segment(lane, st.shown, st.since, t);
            st.shown = now;
            st.since = t;
        }
    }

    fn mark(&mut self, node: &str, t: f64, kind: &str, label: String) {
        if t < 0.0 {
            return;
        }
        self.lane(node).1.marks.push(Mark {
            t,
            kind: kind.into(),
            label,
        });
    }

    fn activity(&mut self, node: &str, what: &'static str, t0: f64, t1: f64, label: String) {
        if t1 < 0.0 {
            return;
        }
        self.lane(node).1.activities.push(Activity {
            what,
            t0: t0.max(0.0),
            t1,
            label,
        });
    }

    fn finish(mut self) -> Vec<Lane> {
        let end = self.end;
        let mut out = Vec::new();
        for node in std::mem::take(&mut self.order) {
            if let Some((st, mut lane)) = self.lanes.remove(&node) {
                push_segment(&mut lane, st.shown, st.since, end.max(st.since));
                out.push(lane);
            }
        }
        out
    }
}

/// A segment on the timeline: one that ended before the run began is not drawn, one that began before
/// it starts at 0. Zero-length segments stay, so each stop has its `down` segment.
fn push_segment(lane: &mut Lane, state: State, t0: f64, t1: f64) {
    if t1 < 0.0 {
        return;
    }
    lane.segments.push(Segment {
        state,
        t0: t0.max(0.0),
        t1,
    });
}

/// The first whole number in a text: a term in `term 4`, a count in `12 client writes failed`.
fn first_number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Builds what the page draws from a run's records: the simulator's own log when the cluster is
/// simulated, else the run's own mutating calls and waits.
pub fn timeline(rec: &Record) -> Timeline {
    let (lanes, leaders, mut bands, failed_writes) = match &rec.sim {
        Some(sim) => from_sim(rec, sim),
        None => {
            let (l, ld, b) = from_calls(rec);
            (l, ld, b, None)
        }
    };
    let (steps, gates, run_bands) = course(rec);
    bands.extend(run_bands);
    let mut lanes = lanes;
    let failed_checks = failed_checks(rec);
    for c in &failed_checks {
        if let Some(lane) = lanes.iter_mut().find(|l| Some(&l.node) == c.node.as_ref()) {
            lane.marks.push(Mark {
                t: c.t,
                kind: "check-failed".into(),
                label: c.label.clone(),
            });
        }
    }
    let nodes = lanes.iter().map(|l| summary(rec, l)).collect();
    Timeline {
        lanes,
        leaders,
        steps,
        gates,
        bands,
        waits: health_waits(rec),
        failed_checks,
        signals: signals(rec),
        failed_writes,
        nodes,
    }
}

/// A node's line in the page's table, from its lane.
fn summary(rec: &Record, lane: &Lane) -> NodeSummary {
    let len = |s: &Segment| (s.t1 - s.t0).max(0.0);
    let down: Vec<&Segment> = lane
        .segments
        .iter()
        .filter(|s| s.state == State::Down)
        .collect();
    let out: Vec<&Segment> = lane
        .segments
        .iter()
        .filter(|s| s.state != State::Up)
        .collect();
    NodeSummary {
        node: lane.node.clone(),
        before: rec.versions_before.get(&lane.node).cloned(),
        after: rec.versions_after.get(&lane.node).cloned(),
        downs: down.len(),
        // Folded from 0: an empty float sum is -0.0, which prints as "-0.0 s".
        down_s: down.iter().fold(0.0, |a, s| a + len(s)),
        out_s: out.iter().fold(0.0, |a, s| a + len(s)),
        out: out
            .first()
            .zip(out.last())
            .map(|(first, last)| (first.t0, last.t1)),
    }
}

/// Each `cluster::wait_healthy` of the run, from its start to its end: the `wait` event comes as it
/// returns, with its duration.
fn health_waits(rec: &Record) -> Vec<Band> {
    rec.events
        .iter()
        .filter(|e| e.kind == "wait" && e.fields["what"] == "healthy")
        .map(|e| {
            let took = e.fields["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0 * rec.speed;
            let label = if e.fields["ok"] == true {
                "waiting for a healthy cluster"
            } else {
                "waiting for a healthy cluster (in vain)"
            };
            Band {
                label: label.into(),
                t0: (e.t - took).max(0.0),
                t1: e.t,
            }
        })
        .collect()
}

/// The figures of a check (`metrics::compare`'s shape) in words.
fn figures(f: &Value) -> String {
    let pct = |v: &Value| v.as_f64().map(|x| format!("{:.2}%", x * 100.0));
    let times = |v: &Value| v.as_f64().map(|x| format!("{x:.2}x"));
    let mut out = Vec::new();
    if let Some(c) = pct(&f["error_rate"]["canary"]) {
        match pct(&f["error_rate"]["baseline"]) {
            Some(b) => out.push(format!("error rate {c} (baseline {b})")),
            None => out.push(format!("error rate {c}")),
        }
    }
    if let Some(r) = times(&f["latency_p99_ms"]["ratio"]) {
        out.push(format!("p99 {r} the baseline"));
    }
    if let Some(l) = f["replication_lag_ms"]["canary"].as_f64() {
        out.push(format!("replication lag {l:.0} ms"));
    }
    if let Some(r) = times(&f["memory_bytes"]["ratio"]) {
        out.push(format!("memory {r} the baseline"));
    }
    out.join(", ")
}

/// The canary's and the post-upgrade analysis's checks that did not pass (those that passed are routine:
/// a watch journals one every interval).
fn failed_checks(rec: &Record) -> Vec<FailedCheck> {
    rec.events
        .iter()
        .filter_map(|e| {
            let f = &e.fields;
            let verdict = text(f, "verdict").unwrap_or_default();
            let (node, what) = match e.kind.as_str() {
                "canary_check" if verdict != "ok" => {
                    let node = text(f, "canary");
                    let what = format!(
                        "canary check failed ({verdict}) on {}",
                        node.as_deref().unwrap_or("the canary")
                    );
                    (node, what)
                }
                "analysis_check" if verdict != "ok" => {
                    (None, "post-upgrade analysis check failed".into())
                }
                _ => return None,
            };
            let figures = figures(&f["figures"]);
            Some(FailedCheck {
                t: e.t,
                node,
                label: if figures.is_empty() {
                    what
                } else {
                    format!("{what}: {figures}")
                },
                error_rate: f["figures"]["error_rate"]["canary"].as_f64(),
            })
        })
        .collect()
}

/// The signals the process received, as the report's collector noted them (`signal` events).
fn signals(rec: &Record) -> Vec<Mark> {
    rec.events
        .iter()
        .filter(|e| e.kind == "signal")
        .map(|e| {
            let name = text(&e.fields, "signal").unwrap_or_else(|| "signal".into());
            let label = if e.fields["at_once"] == true {
                format!("{name} again: the process exited at once")
            } else {
                format!("{name}: the run stops at its next safe point")
            };
            Mark {
                t: e.t,
                kind: "signal".into(),
                label,
            }
        })
        .collect()
}

type Lanes = (Vec<Lane>, Vec<Leadership>, Vec<Band>);
/// Failed writes per bucket: (bucket seconds, counts).
type Bars = Option<(f64, Vec<u64>)>;

/// The leader as the run began, open-ended until the records say otherwise.
fn first_leader(rec: &Record) -> Vec<Leadership> {
    rec.leader_at_start
        .iter()
        .map(|(node, term)| Leadership {
            node: node.clone(),
            term: *term,
            t0: 0.0,
            t1: f64::INFINITY,
        })
        .collect()
}

fn from_sim(rec: &Record, sim: &SimRecord) -> (Vec<Lane>, Vec<Leadership>, Vec<Band>, Bars) {
    let mut b = LaneBuilder::new(&rec.nodes, rec.end);
    let mut leaders = first_leader(rec);
    let mut bands = Vec::new();
    let mut paused_since: Option<f64> = None;
    let bucket = bucket_secs(rec.end);
    let mut failed = vec![0u64; ((rec.end / bucket).ceil() as usize).max(1)];
    let close_leader = |leaders: &mut Vec<Leadership>, node: Option<&str>, t: f64| {
        if let Some(l) = leaders.last_mut() {
            if l.t1.is_infinite() && node.is_none_or(|n| n == l.node) {
                l.t1 = t;
            }
        }
    };
    for e in &sim.events {
        let t = e.t;
        let Some(node) = e.node.as_deref() else {
            match e.kind.as_str() {
                "write_failed" => add_failed(&mut failed, bucket, t, &e.detail),
                "partition" if t >= 0.0 => bands.push(Band {
                    label: format!("network partition: {}", e.detail),
                    t0: t,
                    t1: t,
                }),
                _ => {}
            }
            continue;
        };
        match e.kind.as_str() {
            "stop" | "crash" => {
                b.set(node, t, |s| s.process = State::Down);
                if e.kind == "crash" {
                    b.mark(node, t, "failed", "crashed".into());
                }
            }
            // A process starts undrained: its drain was the stopped process's.
            "start" => b.set(node, t, |s| {
                s.drained = false;
                if s.process == State::Down {
                    s.process = State::Rejoining
                }
            }),
            "rejoined" => b.set(node, t, |s| {
                if s.process == State::Rejoining {
                    s.process = State::CatchingUp
                }
            }),
            "caught_up" => b.set(node, t, |s| {
                if matches!(s.process, State::Rejoining | State::CatchingUp) {
                    s.process = State::Up
                }
            }),
            "drain" => b.set(node, t, |s| s.drained = true),
            "undrain" => b.set(node, t, |s| s.drained = false),
            "install" | "stage" if !e.detail.contains("already") => {
                let what = if e.kind == "install" {
                    "installing"
                } else {
                    "staging"
                };
                let version = e.detail.split_whitespace().next().unwrap_or_default();
                b.activity(
                    node,
                    what,
                    t - sim.install_secs,
                    t,
                    format!("{what} {version}"),
                );
            }
            "activate" => b.mark(node, t, "activate", e.detail.clone()),
            "install_failed" | "stage_failed" | "activate_failed" | "refused" | "bind_failed" => b
                .mark(
                    node,
                    t,
                    "failed",
                    format!("{}: {}", e.kind.replace('_', " "), e.detail),
                ),
            "fault" => b.mark(node, t, "fault", format!("fault injected: {}", e.detail)),
            "elected" => {
                close_leader(&mut leaders, None, t);
                let term = first_number(&e.detail);
                leaders.push(Leadership {
                    node: node.to_string(),
                    term,
                    t0: t,
                    t1: f64::INFINITY,
                });
                b.mark(node, t, "elected", format!("elected leader, {}", e.detail));
            }
            "transfer" => b.mark(node, t, "transfer", format!("hand-over {}", e.detail)),
            "leader_lost" => {
                close_leader(&mut leaders, Some(node), t);
                b.mark(node, t, "leader-lost", format!("leader lost, {}", e.detail));
            }
            "write_failed" => add_failed(&mut failed, bucket, t, &e.detail),
            "pause" => paused_since = Some(paused_since.unwrap_or(t)),
            "resume" => {
                if let Some(t0) = paused_since.take() {
                    push_band(&mut bands, "cluster paused", t0, t);
                }
            }
            _ => {}
        }
    }
    if let Some(t0) = paused_since {
        push_band(&mut bands, "cluster paused", t0, rec.end);
    }
    let leaders = clip_leaders(leaders, rec.end);
    (b.finish(), leaders, bands, Some((bucket, failed)))
}

fn add_failed(buckets: &mut [u64], bucket: f64, t: f64, detail: &str) {
    if t < 0.0 || buckets.is_empty() {
        return;
    }
    let i = ((t / bucket) as usize).min(buckets.len() - 1);
    buckets[i] += first_number(detail).unwrap_or(1);
}

/// One bar per second, or coarser so a long run has at most about 300 bars.
fn bucket_secs(end: f64) -> f64 {
    (end / 300.0).ceil().max(1.0)
}

fn push_band(bands: &mut Vec<Band>, label: &str, t0: f64, t1: f64) {
    if t1 >= 0.0 {
        bands.push(Band {
            label: label.into(),
            t0: t0.max(0.0),
            t1,
        });
    }
}

fn clip_leaders(leaders: Vec<Leadership>, end: f64) -> Vec<Leadership> {
    leaders
        .into_iter()
        .filter_map(|mut l| {
            l.t1 = l.t1.min(end);
            (l.t1 >= 0.0).then(|| {
                l.t0 = l.t0.max(0.0);
                l
            })
        })
        .collect()
}

/// A real cluster's lanes from what the run itself did and saw: each mutating call (`op` events carry
/// its end and duration) and each wait (`wait` events). A node started and never waited on stays
/// "rejoining" to the end: the run never saw it back.
fn from_calls(rec: &Record) -> Lanes {
    let mut b = LaneBuilder::new(&rec.nodes, rec.end);
    let mut leaders = first_leader(rec);
    let mut bands = Vec::new();
    let mut paused_since: Option<f64> = None;
    for e in &rec.events {
        let f = &e.fields;
        let took = f["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0 * rec.speed;
        let (t0, t1) = (e.t - took, e.t);
        match e.kind.as_str() {
            "op" => {
                let op = text(f, "op").unwrap_or_default();
                let node = text(f, "node");
                let error = text(f, "error");
                if f["refused"].is_string() {
                    if let Some(n) = &node {
                        b.mark(
                            n,
                            t1,
                            "failed",
                            format!("{op} refused: {}", error.unwrap_or_default()),
                        );
                    }
                    continue;
                }
                let short = op.rsplit("::").next().unwrap_or(&op).to_string();
                let version = text(&f["args"], "version").unwrap_or_default();
                match (short.as_str(), node.as_deref()) {
                    ("stage_all", _) => {
                        for id in f["args"]["ids"].as_array().into_iter().flatten() {
                            if let Some(id) = id.as_str() {
                                b.activity(id, "staging", t0, t1, format!("staging {version}"));
                            }
                        }
                    }
                    ("pause", _) if error.is_none() => {
                        paused_since = Some(paused_since.unwrap_or(t1))
                    }
                    ("resume", _) if error.is_none() => {
                        if let Some(p) = paused_since.take() {
                            push_band(&mut bands, "cluster paused", p, t0);
                        }
                    }
                    (_, Some(n)) => {
                        if let Some(err) = &error {
                            b.mark(n, t1, "failed", format!("{short} failed: {err}"));
                        }
                        match short.as_str() {
                            "drain" if error.is_none() => b.set(n, t1, |s| s.drained = true),
                            "undrain" => b.set(n, t0, |s| s.drained = false),
                            "stop" => b.set(n, t0, |s| s.process = State::Down),
                            "start" if error.is_none() => b.set(n, t1, |s| {
                                s.drained = false;
                                if s.process == State::Down {
                                    s.process = State::Rejoining
                                }
                            }),
                            "restart" => {
                                b.set(n, t0, |s| s.process = State::Down);
                                if error.is_none() {
                                    b.set(n, t1, |s| {
                                        s.drained = false;
                                        s.process = State::Rejoining
                                    });
                                }
                            }
                            "install" | "stage" => {
                                let what = if short == "install" {
                                    "installing"
                                } else {
                                    "staging"
                                };
                                b.activity(n, what, t0, t1, format!("{what} {version}"));
                            }
                            "activate" => b.mark(n, t1, "activate", format!("{version} activated")),
                            "transfer_leadership" if error.is_none() => {
                                if let Some(l) = leaders.last_mut() {
                                    l.t1 = l.t1.min(t1);
                                }
                                leaders.push(Leadership {
                                    node: n.to_string(),
                                    term: None,
                                    t0: t1,
                                    t1: f64::INFINITY,
                                });
                                b.mark(n, t1, "transfer", "leads after a hand-over".into());
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            "wait" if f["ok"] == true => {
                let what = text(f, "what").unwrap_or_default();
                match (what.as_str(), text(f, "node")) {
                    ("rejoined", Some(n)) => b.set(&n, t1, |s| {
                        if s.process == State::Rejoining {
                            s.process = State::CatchingUp
                        }
                    }),
                    ("caught_up", Some(n)) => b.set(&n, t1, |s| {
                        if matches!(s.process, State::Rejoining | State::CatchingUp) {
                            s.process = State::Up
                        }
                    }),
                    ("healthy", _) => {
                        for n in rec.nodes.clone() {
                            b.set(&n, t1, |s| {
                                if matches!(s.process, State::Rejoining | State::CatchingUp) {
                                    s.process = State::Up
                                }
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some(p) = paused_since {
        push_band(&mut bands, "cluster paused", p, rec.end);
    }
    (b.finish(), clip_leaders(leaders, rec.end), bands)
}

/// Kinds of the run's events drawn elsewhere (lanes, steps, header): every other kind is a gate marker.
const NOT_GATES: &[&str] = &[
    "run_start",
    "run_end",
    "step_start",
    "step_end",
    "op",
    "op_begin",
    "wait",
    // A long watch journals a check every interval: hundreds of markers would hide the gates. The failed
    // ones are drawn as checks.
    "canary_check",
    "analysis_check",
    // Drawn across the whole timeline.
    "signal",
];

/// The run's course: steps (nested by depth), gate markers, and the stretches it was paused.
fn course(rec: &Record) -> (Vec<Step<f64>>, Vec<Mark>, Vec<Band>) {
    let steps = crate::journal::steps(rec.events.iter().map(|e| (e.kind.as_str(), &e.fields)))
        .into_iter()
        .map(|s| s.place(|i| rec.events[i].t))
        .collect();
    let mut gates = Vec::new();
    let mut bands = Vec::new();
    let mut paused_since: Option<f64> = None;
    for e in &rec.events {
        match e.kind.as_str() {
            // Paired above.
            "step_start" | "step_end" => {}
            "paused" => {
                paused_since = Some(paused_since.unwrap_or(e.t));
                gates.push(gate_mark(e));
            }
            "resumed" => {
                if let Some(t0) = paused_since.take() {
                    push_band(&mut bands, "run paused", t0, e.t);
                }
                gates.push(gate_mark(e));
            }
            k if NOT_GATES.contains(&k) => {}
            _ => gates.push(gate_mark(e)),
        }
    }
    if let Some(t0) = paused_since {
        push_band(&mut bands, "run paused", t0, rec.end);
    }
    if rec.result == "stopped" {
        gates.push(Mark {
            t: rec.end,
            kind: "stop".into(),
            label: format!(
                "safe stop: {}",
                rec.message.as_deref().unwrap_or("stopped safely")
            ),
        });
    }
    (steps, gates, bands)
}

/// A marker for an event of any kind: its kind, then the first of its fields that say what it was.
fn gate_mark(e: &RunEvent) -> Mark {
    let what = ["name", "question", "reason", "message", "text", "by"]
        .iter()
        .filter_map(|k| text(&e.fields, k))
        .next();
    Mark {
        t: e.t,
        kind: "gate".into(),
        label: match what {
            Some(w) => format!("{}: {w}", e.kind),
            None => e.kind.clone(),
        },
    }
}

#[cfg(test)]
mod tests;
