//! The page: one self-contained HTML document, inline CSS and SVG, no script and nothing fetched.
//!
//! The timeline follows the window's width: row names sit in a column of their own, and the plot beside
//! them places everything by percentages of its width, never below `PLOT_MIN` pixels (a narrower window
//! scrolls sideways). Labels are placed for that narrowest plot: a label that fits there, inside its bar or
//! clear of the others, fits at any wider one, since bars and gaps only grow while text keeps its size.

use std::fmt::Write as _;

use super::timeline::{timeline, Record, State, Timeline};

/// The column of row names left of the plot.
const NAMES: f64 = 150.0;
/// The plot's narrowest width: labels are placed for it.
const PLOT_MIN: f64 = 850.0;
const ROW: f64 = 22.0;
const LANE: f64 = 30.0;
/// A row of the time axis, repeated every `AXIS_EVERY` lanes so a tall page always shows one.
const AXIS: f64 = 20.0;
const AXIS_EVERY: usize = 10;
const CHART: f64 = 60.0;
/// Width of one character of an 11 px label, generous, so a label judged to fit does.
const CHAR: f64 = 7.0;
/// Space kept between two labels, and between a label and its bar's edge.
const GAP: f64 = 3.0;
/// Rows of step numbers above the steps, for steps too narrow for a label, and their height.
const TRACKS: usize = 4;
const TRACK: f64 = 14.0;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds as the page shows them: `12.3 s`, `4 min 05 s`.
pub fn secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        if whole < 3600 {
            format!("{} min {:02} s", whole / 60, whole % 60)
        } else {
            format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
        }
    }
}

/// Unix seconds as a UTC date and time (`2026-11-25 15:27:37 UTC`): the journal's date, spelled for a page.
pub fn utc(unix: f64) -> String {
    let iso = crate::journal::rfc3339(unix);
    format!("{} UTC", iso.trim_end_matches('Z').replacen('T', " ", 1))
}

/// A tick spacing giving at most about a dozen labelled ticks.
fn tick_step(end: f64) -> f64 {
    const STEPS: [f64; 16] = [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
        7200.0, 21600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| end / s <= 12.0)
        .unwrap_or(86400.0)
}

/// A tick's label: seconds below a minute's spacing, then minutes, then hours.
fn tick_label(t: f64, step: f64) -> String {
    if step < 60.0 {
        format!("{t} s")
    } else if step < 3600.0 {
        format!("{} min", (t / 60.0).round())
    } else {
        format!("{} h", (t / 3600.0).round())
    }
}

/// Where a moment falls: its offset from the run's start, and the wall clock (UTC) then. A rehearsal's
/// page gives the offset alone: the twin's clock says nothing of when the real run will happen.
fn at(rec: &Record, t: f64) -> String {
    match wall(rec, t) {
        Some(w) => format!("+{}, {w}", secs(t)),
        None => format!("+{}", secs(t)),
    }
}

/// From one moment to another, with the time between and the wall clock at both ends.
fn between(rec: &Record, t0: f64, t1: f64) -> String {
    let mut s = format!("+{} to +{} ({})", secs(t0), secs(t1), secs(t1 - t0));
    if let (Some(a), Some(b)) = (wall(rec, t0), wall(rec, t1)) {
        let _ = write!(s, "\n{} to {b}", a.trim_end_matches(" UTC"));
    }
    s
}

/// The wall clock at `t` on the timeline: the time of day when it is the run's start day, else the date too.
fn wall(rec: &Record, t: f64) -> Option<String> {
    if rec.predicted || rec.wall_origin <= 0.0 {
        return None;
    }
    let rate = if rec.rate > 0.0 { rec.rate } else { 1.0 };
    let full = utc(rec.wall_origin + t / rate);
    let day = |s: &str| s.split(' ').next().unwrap_or_default().to_string();
    if day(&full) == day(&utc(rec.started_unix)) {
        Some(
            full.split_once(' ')
                .map_or(full.clone(), |(_, rest)| rest.to_string()),
        )
    } else {
        Some(full)
    }
}

/// The plot's horizontal scale: moments as percentages of its width.
struct Plot {
    end: f64,
}

impl Plot {
    fn frac(&self, t: f64) -> f64 {
        t.clamp(0.0, self.end) / self.end
    }

    fn pct(&self, t: f64) -> f64 {
        self.frac(t) * 100.0
    }

    /// A rectangle from t0 to t1 as (x, width) in percent, at least 2 px wide so an instant still shows.
    fn span(&self, t0: f64, t1: f64) -> (f64, f64) {
        let min = 2.0 / PLOT_MIN * 100.0;
        let x = self.pct(t0);
        let w = (self.pct(t1) - x).max(min);
        (x.min(100.0 - min), w)
    }
}

/// Where a label goes relative to its bar.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    In,
    /// Beside the bar, on free space: no other bar of the row under it.
    RightFree,
    LeftFree,
    /// Beside the bar, over other bars if need be (on a halo): only for text that names what it labels.
    Right,
    Left,
    /// Centred over the bar, on a row of labels of its own.
    Centre,
}

/// The labels of one row. Each is anchored at a fraction of the plot's width with a fixed offset in pixels,
/// and is placed only where it fits at `PLOT_MIN` and keeps the order of its anchor among the others:
/// then the gaps only grow with the width, and no label ever covers another or leaves its bar.
#[derive(Default)]
struct Row {
    /// The row's bars, as fractions of the width.
    bars: Vec<(f64, f64)>,
    /// Placed labels: (anchor, left, right), the edges in pixels at `PLOT_MIN`.
    placed: Vec<(f64, f64, f64)>,
}

/// A placed label: its anchor in percent of the width, a pixel offset from it, and which end of the text
/// (`start`, `middle`, `end`) sits there.
struct Placed {
    text: String,
    x: f64,
    dx: f64,
    align: &'static str,
    inside: bool,
}

impl Row {
    fn new(bars: Vec<(f64, f64)>) -> Row {
        Row {
            bars,
            placed: Vec::new(),
        }
    }

    fn clear_of_labels(&self, anchor: f64, l: f64, r: f64) -> bool {
        self.placed.iter().all(|&(a, pl, pr)| {
            if a < anchor {
                pr + GAP <= l
            } else if a > anchor {
                r + GAP <= pl
            } else {
                pr + GAP <= l || r + GAP <= pl
            }
        })
    }

    /// No other bar of the row under [l, r] (pixels at `PLOT_MIN`), beside the bar (f0, f1), keeping the
    /// order of the bars: one that starts inside the bar's own span is never clear.
    fn clear_of_bars(&self, own: (f64, f64), l: f64, r: f64) -> bool {
        self.bars.iter().all(|&(b0, b1)| {
            if (b0, b1) == own {
                return true;
            }
            if b1 <= own.0 {
                b1 * PLOT_MIN + GAP <= l
            } else if b0 >= own.1 {
                r + GAP <= b0 * PLOT_MIN
            } else {
                false
            }
        })
    }

    /// The first of `tries` that fits, as (text, side), for the bar from fraction f0 to f1.
    fn place(&mut self, f0: f64, f1: f64, tries: &[(String, Side)]) -> Option<Placed> {
        for (text, side) in tries {
            let len = text.chars().count() as f64 * CHAR;
            let (x0, x1) = (f0 * PLOT_MIN, f1 * PLOT_MIN);
            // (anchor, left and right edges at `PLOT_MIN`, alignment, offset from the anchor)
            let (anchor, l, r, align, dx) = match side {
                Side::In => (f0, x0 + GAP, x0 + GAP + len, "start", GAP),
                Side::RightFree | Side::Right => {
                    let dx = GAP + 1.0;
                    (f1, x1 + dx, x1 + dx + len, "start", dx)
                }
                Side::LeftFree | Side::Left => {
                    let dx = -(GAP + 1.0);
                    (f0, x0 + dx - len, x0 + dx, "end", dx)
                }
                // Centred, or against the plot's edge when centring would cross it.
                Side::Centre => {
                    let mid = (f0 + f1) / 2.0 * PLOT_MIN;
                    if mid - len / 2.0 < 0.0 {
                        (0.0, 0.0, len, "start", 0.0)
                    } else if mid + len / 2.0 > PLOT_MIN {
                        (1.0, PLOT_MIN - len, PLOT_MIN, "end", 0.0)
                    } else {
                        (
                            (f0 + f1) / 2.0,
                            mid - len / 2.0,
                            mid + len / 2.0,
                            "middle",
                            0.0,
                        )
                    }
                }
            };
            let fits = match side {
                Side::In => r + GAP <= x1,
                Side::RightFree | Side::Right => r <= PLOT_MIN,
                Side::LeftFree | Side::Left => l >= 0.0,
                Side::Centre => true,
            };
            let free = match side {
                Side::RightFree | Side::LeftFree => self.clear_of_bars((f0, f1), l, r),
                _ => true,
            };
            if fits && free && self.clear_of_labels(anchor, l, r) {
                self.placed.push((anchor, l, r));
                return Some(Placed {
                    text: text.clone(),
                    x: anchor * 100.0,
                    dx,
                    align,
                    inside: *side == Side::In,
                });
            }
        }
        None
    }
}

/// Draws a placed label for the bar `bar` (its element id), baseline at `y`.
fn label(h: &mut String, p: &Placed, bar: &str, y: f64, class: &str) {
    let _ = write!(
        h,
        "<text class=\"label {} {class}\" data-for=\"{bar}\" x=\"{:.3}%\" dx=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"{}\">{}</text>",
        if p.inside { "in" } else { "out" },
        p.x,
        p.dx,
        p.align,
        esc(&p.text)
    );
}

/// `text` cut to `chars` characters with an ellipsis, when at least `least` of its own survive.
fn shortened(text: &str, chars: usize, least: usize) -> Option<String> {
    let n = text.chars().count();
    if n <= chars {
        return Some(text.to_string());
    }
    (chars > least).then(|| {
        let mut s: String = text.chars().take(chars - 1).collect();
        s.push('…');
        s
    })
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; }
.predicted-banner { background: #fff4d6; border: 1px solid #e0b84c; padding: 6px 10px; margin: 8px 0; font-weight: 600; }
.stop-box { background: #fde8e8; border: 1px solid #d9534f; padding: 6px 10px; margin: 8px 0; }
table.header td { padding: 1px 14px 1px 0; vertical-align: top; }
table.header td:first-child { color: #5b6577; }
.result-done { color: #1f7a3a; font-weight: 600; }
.result-bad { color: #b3261e; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 10px 0; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.sw { display: inline-block; width: 22px; height: 12px; border: 1px solid #0003; }
.timeline { display: grid; grid-template-columns: 150px minmax(850px, 1fr); margin: 6px 0 12px; }
.timeline svg { display: block; overflow: visible; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2430; }
svg .name { font-weight: 600; }
svg .grid line { stroke: #dde1e8; }
svg .axis text { fill: #5b6577; font-size: 11px; }
svg .label { font-size: 11px; }
svg .label.out { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg .seg-label { font-size: 10px; fill: #fff; }
svg .step-number { fill: #5b6577; }
svg .caption { fill: #1d2430; }
svg .signal-label { fill: #b3261e; font-weight: 600; }
.up { fill: #cfe9d6; } .sw.up { background: #cfe9d6; }
.drained { fill: #f0b429; } .sw.drained { background: #f0b429; }
.down { fill: #d64545; } .sw.down { background: #d64545; }
.rejoining { fill: #7b61c4; } .sw.rejoining { background: #7b61c4; }
.catching-up { fill: #3f8fd6; } .sw.catching-up { background: #3f8fd6; }
.installing, .staging { fill: #3b4252; } .sw.installing { background: #3b4252; }
.staging { fill: #8a94a6; } .sw.staging { background: #8a94a6; }
.leader { fill: #e9e3f7; stroke: #7b61c4; }
.step-ok { fill: #dfe7f3; stroke: #8ea4c8; } .step-failed { fill: #f6d5d3; stroke: #d64545; } .step-unfinished { fill: #f3ecd9; stroke: #c9a64a; }
.band { fill: #f0b42955; }
.wait { fill: #d8dee9; stroke: #5b6577; stroke-dasharray: 3 2; } .sw.wait { background: #d8dee9; border: 1px dashed #5b6577; }
.bar { fill: #d64545; }
line.signal { stroke: #b3261e; stroke-width: 2; stroke-dasharray: 6 3; }
.legend i.signal { display: inline-block; width: 0; height: 14px; border-left: 2px dashed #b3261e; }
.mark-elected { fill: #7b61c4; } .mark-transfer { fill: #2b7a78; } .mark-leader-lost, .mark-failed, .mark-stop, .mark-check-failed { fill: #b3261e; }
.mark-fault { fill: #e07b00; } .mark-gate { fill: #1d2430; } .mark-activate { fill: #0b6e4f; }
.legend i.tick { display: inline-block; width: 2px; height: 14px; background: #0b6e4f; }
table.list { border-collapse: collapse; margin: 6px 0 16px; }
table.list th, table.list td { border-bottom: 1px solid #e3e6ec; padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
table.list td.num, table.list th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre.plan { background: #f6f7f9; border: 1px solid #e3e6ec; padding: 8px 10px; overflow-x: auto; }
.ok { color: #1f7a3a; } .bad { color: #b3261e; font-weight: 600; }
.muted { color: #5b6577; }
"#;

/// The whole page for one run.
pub fn render(rec: &Record) -> String {
    let tl = timeline(rec);
    let end = if rec.end > 0.0 { rec.end } else { 1.0 };
    let plot = Plot { end };
    let mut h = String::new();
    let title = format!(
        "{}{} {}",
        if rec.predicted { "Predicted: " } else { "" },
        rec.script,
        rec.args.join(" ")
    );
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"neumann-script\">\
         <title>{}</title><style>{STYLE}</style></head><body class=\"{}\">\n",
        esc(&title),
        if rec.predicted { "predicted" } else { "run" }
    );
    header(&mut h, rec, &title);
    if let Some(r) = &rec.rehearsal {
        h.push_str("<h2>Plan (as the rehearsal printed it)</h2>\n<pre class=\"plan\" id=\"plan\">");
        for line in r.plan.iter().chain([&r.guards]) {
            let _ = writeln!(h, "{}", esc(line));
        }
        h.push_str("</pre>\n");
    }
    legend(&mut h, &tl);
    svg(&mut h, rec, &tl, &plot);
    nodes(&mut h, &tl);
    steps(&mut h, &tl, rec);
    if let Some(sim) = &rec.sim {
        invariants(&mut h, &sim.stats);
    }
    h.push_str("</body></html>\n");
    h
}

fn header(h: &mut String, rec: &Record, title: &str) {
    let _ = writeln!(h, "<h1>{}</h1>", esc(title.trim()));
    if rec.predicted {
        h.push_str("<div class=\"predicted-banner\" id=\"predicted\">PREDICTED timeline: a rehearsal on a simulated twin of the cluster; nothing was changed on the live cluster. Times are the twin's, in simulated seconds.</div>\n");
    }
    if rec.result == "stopped" {
        let _ = writeln!(
            h,
            "<div class=\"stop-box\" id=\"safe-stop\"><b>Safe stop.</b> {}</div>",
            esc(rec.message.as_deref().unwrap_or("stopped safely"))
        );
    }
    let result_class = if rec.result == "done" {
        "result-done"
    } else {
        "result-bad"
    };
    let mut result = format!("{} (exit {})", rec.result, rec.exit_code);
    if rec.result != "stopped" {
        if let Some(m) = &rec.message {
            result.push_str(": ");
            result.push_str(m);
        }
    }
    let mut duration = secs(rec.duration_s);
    if rec.sim.is_some() && (rec.speed - 1.0).abs() > 0.01 {
        duration.push_str(&format!(
            " (the timeline is the simulator's: {} at x{} speed)",
            secs(rec.end),
            rec.speed
        ));
    }
    let cluster_kind = match (&rec.sim, rec.predicted) {
        (_, true) => " (a simulated twin)",
        (Some(_), false) => " (simulated)",
        (None, false) => "",
    };
    let mut rows = vec![
        ("script", rec.script.clone(), ""),
        ("args", rec.args.join(" "), ""),
        ("cluster", format!("{}{cluster_kind}", rec.cluster), ""),
        ("run id", rec.run_id.clone(), ""),
        ("started", utc(rec.started_unix), ""),
        ("result", result, result_class),
        ("duration", duration, ""),
    ];
    if let Some(r) = &rec.rehearsal {
        rows.push(("predicted duration", r.predicted.clone(), ""));
    }
    h.push_str("<table class=\"header\">\n");
    for (k, v, class) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{k}</td><td id=\"h-{}\" class=\"{class}\">{}</td></tr>",
            k.replace(' ', "-"),
            esc(&v)
        );
    }
    h.push_str("</table>\n");
}

fn legend(h: &mut String, tl: &Timeline) {
    h.push_str("<div class=\"legend\" id=\"legend\">");
    for s in State::ALL {
        let _ = write!(
            h,
            "<span><i class=\"sw {}\"></i>{}</span>",
            s.class(),
            s.label()
        );
    }
    h.push_str("<span><i class=\"sw installing\"></i>installing (thin bar)</span>");
    h.push_str("<span><i class=\"sw staging\"></i>staging (thin bar)</span>");
    h.push_str("<span>&#9670; elected / hand-over</span><span>&#9650; failure, leader lost, failed check</span><span>&#9660; gate, pause (red: a safe stop, a failed check)</span>");
    if !tl.waits.is_empty() {
        h.push_str("<span><i class=\"sw wait\"></i>waiting for a healthy cluster</span>");
    }
    let activated = tl
        .lanes
        .iter()
        .any(|l| l.marks.iter().any(|m| m.kind == "activate"));
    if activated {
        h.push_str("<span><i class=\"tick\"></i>staged build activated</span>");
    }
    if !tl.signals.is_empty() {
        h.push_str("<span><i class=\"signal\"></i>signal received</span>");
    }
    if tl.failed_writes.is_some() {
        h.push_str("<span><i class=\"sw down\"></i>failed client writes (chart)</span>");
    }
    h.push_str("<span class=\"muted\">hover a shape for its times, wall clock included</span>");
    h.push_str("</div>\n");
}

/// A marker shape centred on (x percent, y): a nested viewport at the moment, so the shape keeps its
/// size at any width.
fn marker(h: &mut String, plot: &Plot, t: f64, y: f64, points: &str, class: &str, title: &str) {
    let _ = write!(
        h,
        "<svg x=\"{:.3}%\" y=\"{y:.1}\" width=\"1\" height=\"1\" overflow=\"visible\"><polygon class=\"mark {class}\" data-t=\"{t:.3}\" points=\"{points}\"><title>{}</title></polygon></svg>",
        plot.pct(t),
        esc(title)
    );
}

const TRIANGLE_UP: &str = "0,-5 -5,4 5,4";
const TRIANGLE_DOWN: &str = "0,5 -5,-4 5,-4";
const DIAMOND: &str = "0,-6 5,0 0,6 -5,0";

fn name(h: &mut String, y: f64, text: &str, attrs: &str) {
    let _ = write!(
        h,
        "<text class=\"name\" x=\"8\" y=\"{y:.1}\"{attrs}>{}</text>",
        esc(text)
    );
}

fn axis(h: &mut String, plot: &Plot, y: f64) {
    let step = tick_step(plot.end);
    h.push_str("<g class=\"axis\">");
    let mut t = 0.0;
    while t <= plot.end + 1e-9 {
        let text = tick_label(t, step);
        let half = text.chars().count() as f64 * CHAR / 2.0;
        let x = plot.pct(t);
        // The first tick starts at the plot's edge; one that would run past the right edge is left out.
        let anchor = if t == 0.0 {
            Some("start")
        } else if x / 100.0 * PLOT_MIN + half <= PLOT_MIN {
            Some("middle")
        } else {
            None
        };
        if let Some(anchor) = anchor {
            let _ = write!(
                h,
                "<text x=\"{x:.3}%\" y=\"{:.1}\" text-anchor=\"{anchor}\">{text}</text>",
                y + 14.0
            );
        }
        t += step;
    }
    h.push_str("</g>");
}

/// The timeline's rows from the top, in pixels: the axes, the steps, gates and leader rows, the lanes and
/// the failed-writes chart.
struct Rows {
    axes: Vec<f64>,
    /// The rows of step numbers above the steps, then the steps.
    tracks: f64,
    steps: f64,
    gates: f64,
    leader: f64,
    lanes: Vec<f64>,
    chart: Option<f64>,
    /// Lines of the chart's caption.
    caption_lines: usize,
    height: f64,
}

impl Rows {
    fn new(tl: &Timeline, tracks: usize, caption_lines: usize) -> Rows {
        let depth = tl.steps.iter().map(|s| s.depth + 1).max().unwrap_or(1);
        let mut axes = vec![0.0];
        let mut y = AXIS;
        let track_y = y;
        y += tracks as f64 * TRACK;
        let steps = y;
        y += depth as f64 * ROW + 4.0;
        let gates = y;
        y += ROW + 4.0;
        let leader = y;
        y += ROW + 6.0;
        let mut lanes = Vec::new();
        for i in 0..tl.lanes.len() {
            if i > 0 && i % AXIS_EVERY == 0 {
                axes.push(y);
                y += AXIS;
            }
            lanes.push(y);
            y += LANE;
        }
        y += 4.0;
        let chart = tl.failed_writes.as_ref().map(|_| {
            let c = y;
            y += caption_lines as f64 * 16.0 + 4.0 + CHART + 6.0;
            c
        });
        axes.push(y);
        y += AXIS;
        Rows {
            axes,
            tracks: track_y,
            steps,
            gates,
            leader,
            lanes,
            chart,
            caption_lines,
            height: y + 4.0,
        }
    }

    fn lanes_end(&self) -> f64 {
        self.lanes.last().map_or(self.leader + ROW, |y| y + LANE)
    }
}

/// The chart's caption: what the bars count, and, when a check failed on an error rate, that the rate was
/// the node's own and not writes that failed for good.
fn caption(tl: &Timeline) -> Vec<String> {
    let Some((bucket, bars)) = &tl.failed_writes else {
        return Vec::new();
    };
    let per = if *bucket == 1.0 {
        "second".to_string()
    } else {
        format!("{bucket} s")
    };
    let total: u64 = bars.iter().sum();
    let max = bars.iter().copied().max().unwrap_or(0);
    let mut lines = vec![if total == 0 {
        "No client write failed for good (the simulated clients retry a failed write for about 2 s).".to_string()
    } else {
        format!(
            "Client writes that failed for good, after the clients' retries, per {per}: {total} in all, at most {max} in one {per}."
        )
    }];
    if let Some(c) = tl
        .failed_checks
        .iter()
        .find(|c| c.error_rate.is_some_and(|r| r > 0.0))
    {
        let who = c.node.as_deref().unwrap_or("the upgraded nodes");
        lines.push(format!(
            "The check that failed at +{} measured {who}'s own error rate, {:.2}%: writes it failed, which a retry then carried.",
            secs(c.t),
            c.error_rate.unwrap_or(0.0) * 100.0
        ));
    }
    lines
}

fn svg(h: &mut String, rec: &Record, tl: &Timeline, plot: &Plot) {
    let caption = caption(tl);
    let step_labels = step_labels(rec, tl, plot);
    let rows = Rows::new(tl, step_labels.tracks, caption.len().max(1));
    let height = rows.height;
    let mut names = String::new();
    let mut p = String::new();
    let _ = write!(
        names,
        "<svg class=\"names\" width=\"{NAMES}\" height=\"{height:.0}\" aria-hidden=\"true\">"
    );
    let _ = write!(
        p,
        "<svg class=\"plot\" id=\"timeline\" width=\"100%\" height=\"{height:.0}\" role=\"img\" aria-label=\"timeline of the run\">"
    );

    // The grid, then an axis at the top, every few lanes and at the bottom.
    let step = tick_step(plot.end);
    p.push_str("<g class=\"grid\">");
    let (top, bottom) = (AXIS, *rows.axes.last().unwrap_or(&height));
    let mut t = 0.0;
    while t <= plot.end + 1e-9 {
        let x = plot.pct(t);
        let _ = write!(
            p,
            "<line x1=\"{x:.3}%\" x2=\"{x:.3}%\" y1=\"{top:.1}\" y2=\"{bottom:.1}\"/>"
        );
        t += step;
    }
    p.push_str("</g>");
    for &y in &rows.axes {
        axis(&mut p, plot, y);
    }
    let _ = write!(
        names,
        "<text class=\"muted\" x=\"8\" y=\"14\">time from the start</text>"
    );

    // Pauses, shaded from the gates row down through the lanes.
    for (i, b) in tl.bands.iter().enumerate() {
        let (x, w) = plot.span(b.t0, b.t1);
        let _ = write!(
            p,
            "<rect class=\"band\" id=\"band-{i}\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"{:.1}\"><title>{}: {}</title></rect>",
            rows.gates,
            rows.lanes_end() - rows.gates,
            esc(&b.label),
            esc(&between(rec, b.t0, b.t1))
        );
    }

    steps_rows(&mut p, &mut names, rec, tl, plot, &rows, step_labels);
    gates_row(&mut p, &mut names, rec, tl, plot, &rows);
    leader_row(&mut p, &mut names, rec, tl, plot, &rows);
    lanes(&mut p, &mut names, rec, tl, plot, &rows);
    if let (Some(y), Some((bucket, bars))) = (rows.chart, &tl.failed_writes) {
        failed_chart(
            &mut p, &mut names, rec, plot, y, &caption, *bucket, bars, &rows,
        );
    }

    // A signal's moment, across the whole timeline, named in the gates row.
    for (i, s) in tl.signals.iter().enumerate() {
        let x = plot.pct(s.t);
        let _ = write!(
            p,
            "<line class=\"signal\" id=\"signal-{i}\" data-t=\"{:.3}\" x1=\"{x:.3}%\" x2=\"{x:.3}%\" y1=\"{top:.1}\" y2=\"{bottom:.1}\"><title>{} at {}</title></line>",
            s.t,
            esc(&s.label),
            esc(&at(rec, s.t))
        );
    }

    names.push_str("</svg>");
    p.push_str("</svg>");
    let _ = writeln!(h, "<div class=\"timeline\">{names}{p}</div>");
}

/// Where each step's label goes: in its bar's row, or, for a top-level step too narrow for one, its number
/// centred above it on one of `TRACKS` rows of numbers.
struct StepLabels {
    labels: Vec<Option<(Placed, Option<usize>)>>,
    tracks: usize,
}

fn step_labels(rec: &Record, tl: &Timeline, plot: &Plot) -> StepLabels {
    let depth = tl.steps.iter().map(|s| s.depth + 1).max().unwrap_or(1);
    let span =
        |s: &crate::journal::Step<f64>| (plot.frac(s.start), plot.frac(s.end.unwrap_or(rec.end)));
    let mut rows: Vec<Row> = (0..depth)
        .map(|d| Row::new(tl.steps.iter().filter(|s| s.depth == d).map(span).collect()))
        .collect();
    let mut tracks: Vec<Row> = (0..TRACKS).map(|_| Row::default()).collect();
    let mut used = 0;
    let labels = tl
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (f0, f1) = span(s);
            // The name; else the number (the table's first column) and as much of the name as fits, when
            // that is enough to tell it from its neighbours; else the number alone.
            let number = (i + 1).to_string();
            let room = ((f1 - f0) * PLOT_MIN - 2.0 * GAP) / CHAR;
            let mut tries = vec![(s.name.clone(), Side::In)];
            let numbered = format!("{number} {}", s.name);
            if let Some(short) = shortened(&numbered, room.max(0.0) as usize, number.len() + 16) {
                tries.push((short, Side::In));
            }
            tries.push((number.clone(), Side::In));
            if s.depth > 0 {
                tries.extend([
                    (number.clone(), Side::RightFree),
                    (number.clone(), Side::LeftFree),
                ]);
            }
            if let Some(p) = rows[s.depth].place(f0, f1, &tries) {
                return Some((p, None));
            }
            if s.depth > 0 {
                return None;
            }
            tracks.iter_mut().enumerate().find_map(|(k, track)| {
                let p = track.place(f0, f1, &[(number.clone(), Side::Centre)])?;
                used = used.max(k + 1);
                Some((p, Some(k)))
            })
        })
        .collect();
    StepLabels {
        labels,
        tracks: used,
    }
}

fn steps_rows(
    p: &mut String,
    names: &mut String,
    rec: &Record,
    tl: &Timeline,
    plot: &Plot,
    rows: &Rows,
    labels: StepLabels,
) {
    name(names, rows.steps + 15.0, "steps", "");
    p.push_str("<g id=\"steps-row\">");
    for ((i, s), placed) in tl.steps.iter().enumerate().zip(labels.labels) {
        let n = i + 1;
        let y = rows.steps + s.depth as f64 * ROW;
        let (t0, t1) = (s.start, s.end.unwrap_or(rec.end));
        let (x, w) = plot.span(t0, t1);
        let _ = write!(
            p,
            "<g class=\"step\" data-step=\"{n}\"><rect class=\"step-{}\" id=\"step-{n}\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"{:.1}\" rx=\"3\"><title>step {n}: {}: {}\n{}</title></rect>",
            esc(&s.result),
            y + 2.0,
            ROW - 4.0,
            esc(&s.name),
            esc(&s.result),
            esc(&between(rec, t0, t1))
        );
        match placed {
            Some((placed, None)) => label(p, &placed, &format!("step-{n}"), y + 15.0, ""),
            Some((placed, Some(k))) => label(
                p,
                &placed,
                &format!("step-{n}"),
                rows.tracks + k as f64 * TRACK + 11.0,
                "step-number",
            ),
            None => {}
        }
        p.push_str("</g>");
    }
    p.push_str("</g>");
}

fn gates_row(
    p: &mut String,
    names: &mut String,
    rec: &Record,
    tl: &Timeline,
    plot: &Plot,
    rows: &Rows,
) {
    let y = rows.gates;
    name(names, y + 15.0, "gates, waits", "");
    p.push_str("<g id=\"gates-row\">");
    let mut row = Row::new(
        tl.waits
            .iter()
            .map(|w| (plot.frac(w.t0), plot.frac(w.t1)))
            .collect(),
    );
    for (i, wt) in tl.waits.iter().enumerate() {
        let (x, w) = plot.span(wt.t0, wt.t1);
        let _ = write!(
            p,
            "<rect class=\"wait\" id=\"wait-{i}\" data-t0=\"{:.3}\" data-t1=\"{:.3}\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"{:.1}\"><title>{}: {}</title></rect>",
            wt.t0,
            wt.t1,
            y + 3.0,
            ROW - 6.0,
            esc(&wt.label),
            esc(&between(rec, wt.t0, wt.t1))
        );
        let tries = [
            ("waiting for health".to_string(), Side::In),
            ("health".to_string(), Side::In),
        ];
        if let Some(placed) = row.place(plot.frac(wt.t0), plot.frac(wt.t1), &tries) {
            label(p, &placed, &format!("wait-{i}"), y + 15.0, "");
        }
    }
    for g in &tl.gates {
        let class = if g.kind == "stop" {
            "mark-stop"
        } else {
            "mark-gate"
        };
        marker(
            p,
            plot,
            g.t,
            y + 10.0,
            TRIANGLE_DOWN,
            class,
            &format!("{} at {}", g.label, at(rec, g.t)),
        );
    }
    for c in &tl.failed_checks {
        marker(
            p,
            plot,
            c.t,
            y + 10.0,
            TRIANGLE_DOWN,
            "mark-check-failed",
            &format!("{} at {}", c.label, at(rec, c.t)),
        );
    }
    for (i, s) in tl.signals.iter().enumerate() {
        let f = plot.frac(s.t);
        let name = s.label.split(':').next().unwrap_or_default().to_string();
        let tries = [
            (name.clone(), Side::RightFree),
            (name.clone(), Side::LeftFree),
            (name.clone(), Side::Right),
            (name, Side::Left),
        ];
        if let Some(placed) = row.place(f, f, &tries) {
            label(p, &placed, &format!("signal-{i}"), y + 15.0, "signal-label");
        }
    }
    p.push_str("</g>");
}

fn leader_row(
    p: &mut String,
    names: &mut String,
    rec: &Record,
    tl: &Timeline,
    plot: &Plot,
    rows: &Rows,
) {
    let y = rows.leader;
    name(names, y + 15.0, "leader (term)", "");
    p.push_str("<g id=\"leader-row\">");
    let mut row = Row::new(
        tl.leaders
            .iter()
            .map(|l| (plot.frac(l.t0), plot.frac(l.t1)))
            .collect(),
    );
    for (i, l) in tl.leaders.iter().enumerate() {
        let (x, w) = plot.span(l.t0, l.t1);
        let term = l.term.map(|t| format!(" · term {t}")).unwrap_or_default();
        let _ = write!(
            p,
            "<g class=\"leadership\" data-node=\"{}\"><rect class=\"leader\" id=\"leader-{i}\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"{:.1}\" rx=\"3\"><title>{} leads{term}: {}</title></rect>",
            esc(&l.node),
            y + 2.0,
            ROW - 4.0,
            esc(&l.node),
            esc(&between(rec, l.t0, l.t1))
        );
        // The label names its node, so beside the bar, over its neighbour, it is still read right.
        let full = format!("{}{term}", l.node);
        let tries = [
            (full.clone(), Side::In),
            (l.node.clone(), Side::In),
            (full.clone(), Side::RightFree),
            (full.clone(), Side::LeftFree),
            (full.clone(), Side::Right),
            (full, Side::Left),
        ];
        if let Some(placed) = row.place(plot.frac(l.t0), plot.frac(l.t1), &tries) {
            label(p, &placed, &format!("leader-{i}"), y + 15.0, "");
        }
        p.push_str("</g>");
    }
    p.push_str("</g>");
}

fn lanes(
    p: &mut String,
    names: &mut String,
    rec: &Record,
    tl: &Timeline,
    plot: &Plot,
    rows: &Rows,
) {
    p.push_str("<g id=\"lanes\">");
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y = rows.lanes[i];
        let node = esc(&lane.node);
        name(
            names,
            y + 14.0,
            &lane.node,
            &format!(" data-node=\"{node}\""),
        );
        let _ = write!(p, "<g class=\"lane\" data-node=\"{node}\">");
        let mut row = Row::new(
            lane.segments
                .iter()
                .map(|s| (plot.frac(s.t0), plot.frac(s.t1)))
                .collect(),
        );
        for (k, s) in lane.segments.iter().enumerate() {
            let (x, w) = plot.span(s.t0, s.t1);
            let id = format!("seg-{node}-{k}");
            let _ = write!(
                p,
                "<rect class=\"seg {}\" id=\"{id}\" data-state=\"{}\" data-t0=\"{:.3}\" data-t1=\"{:.3}\" x=\"{x:.3}%\" y=\"{y:.1}\" width=\"{w:.3}%\" height=\"18\"><title>{}: {}: {}</title></rect>",
                s.state.class(),
                s.state.class(),
                s.t0,
                s.t1,
                node,
                s.state.label(),
                esc(&between(rec, s.t0, s.t1))
            );
            // The colour says the state (the legend, the hover and the table say it in words): a word is
            // added where it fits inside.
            if s.state != State::Up {
                let tries = [(s.state.label().to_string(), Side::In)];
                if let Some(placed) = row.place(plot.frac(s.t0), plot.frac(s.t1), &tries) {
                    label(p, &placed, &id, y + 13.0, "seg-label");
                }
            }
        }
        for a in &lane.activities {
            let (x, w) = plot.span(a.t0, a.t1);
            let _ = write!(
                p,
                "<rect class=\"act {}\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"6\"><title>{}: {}: {}</title></rect>",
                a.what,
                y + 20.0,
                node,
                esc(&a.label),
                esc(&between(rec, a.t0, a.t1))
            );
        }
        for m in &lane.marks {
            let title = format!("{}: {} at {}", lane.node, m.label, at(rec, m.t));
            match m.kind.as_str() {
                "elected" | "transfer" => marker(
                    p,
                    plot,
                    m.t,
                    y + 9.0,
                    DIAMOND,
                    &format!("mark-{}", m.kind),
                    &title,
                ),
                // A switch of build, not an incident: a tick, unlike the failure triangles.
                "activate" => {
                    let _ = write!(
                        p,
                        "<rect class=\"mark mark-activate\" x=\"{:.3}%\" y=\"{y:.1}\" width=\"2\" height=\"18\"><title>{}</title></rect>",
                        plot.pct(m.t),
                        esc(&title)
                    );
                }
                other => marker(
                    p,
                    plot,
                    m.t,
                    y + 9.0,
                    TRIANGLE_UP,
                    &format!("mark-{other}"),
                    &title,
                ),
            }
        }
        p.push_str("</g>");
    }
    p.push_str("</g>");
}

/// Failed client writes as bars under a caption of their own, which no bar reaches.
#[allow(clippy::too_many_arguments)]
fn failed_chart(
    p: &mut String,
    names: &mut String,
    rec: &Record,
    plot: &Plot,
    y: f64,
    caption: &[String],
    bucket: f64,
    bars: &[u64],
    rows: &Rows,
) {
    let max = bars.iter().copied().max().unwrap_or(0);
    name(names, y + 12.0, "failed writes", "");
    let per = if bucket == 1.0 {
        "per second".to_string()
    } else {
        format!("per {bucket} s")
    };
    let _ = write!(
        names,
        "<text class=\"muted\" x=\"8\" y=\"{:.1}\">{per}</text>",
        y + 28.0
    );
    p.push_str("<g id=\"failed-writes\">");
    let _ = write!(
        p,
        "<text class=\"caption\" id=\"caption\" x=\"0\" y=\"{:.1}\">",
        y + 12.0
    );
    for (i, line) in caption.iter().enumerate() {
        let _ = write!(
            p,
            "<tspan x=\"0\" dy=\"{}\">{}</tspan>",
            if i == 0 { 0.0 } else { 16.0 },
            esc(line)
        );
    }
    p.push_str("</text>");
    let top = y + rows.caption_lines as f64 * 16.0 + 4.0;
    let base = top + CHART;
    let _ = write!(
        p,
        "<line x1=\"0\" x2=\"100%\" y1=\"{base:.1}\" y2=\"{base:.1}\" stroke=\"#c7ccd6\"/>"
    );
    if max > 0 {
        for (i, &n) in bars.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let t0 = i as f64 * bucket;
            let (x, w) = plot.span(t0, t0 + bucket);
            let bh = (n as f64 / max as f64 * (CHART - 4.0)).max(1.0);
            let _ = write!(
                p,
                "<rect class=\"bar\" x=\"{x:.3}%\" y=\"{:.1}\" width=\"{w:.3}%\" height=\"{bh:.1}\"><title>{n} failed writes: {}</title></rect>",
                base - bh,
                esc(&between(rec, t0, t0 + bucket))
            );
        }
    }
    p.push_str("</g>");
}

/// Each node over the run: its version before and after, its outages and the time it was out of service.
fn nodes(h: &mut String, tl: &Timeline) {
    h.push_str("<h2>Nodes</h2>\n<table class=\"list\" id=\"nodes\"><tr><th>node</th><th>version</th><th class=\"num\">times down</th><th class=\"num\">down</th><th class=\"num\">out of service</th><th>out of service, first to last</th></tr>\n");
    for n in &tl.nodes {
        let version = match (&n.before, &n.after) {
            (Some(b), Some(a)) if a == b => format!("{b} (unchanged)"),
            (Some(b), Some(a)) => format!("{b} → {a}"),
            (Some(b), None) => format!("{b} → not read at the end"),
            (None, Some(a)) => format!("not read at the start → {a}"),
            (None, None) => "not read".into(),
        };
        let out = match n.out {
            Some((a, b)) => format!("+{} to +{}", secs(a), secs(b)),
            None => "never".into(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"node-row\" data-node=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&n.node),
            esc(&n.node),
            esc(&version),
            n.downs,
            secs(n.down_s),
            secs(n.out_s),
            esc(&out)
        );
    }
    h.push_str("</table>\n");
}

/// The steps as a table, numbered as on the timeline; one the run ended inside lasts until the end.
fn steps(h: &mut String, tl: &Timeline, rec: &Record) {
    h.push_str("<h2>Steps</h2>\n<table class=\"list\" id=\"steps\"><tr><th class=\"num\">#</th><th>step</th><th class=\"num\">start</th><th class=\"num\">duration</th><th>result</th></tr>\n");
    if tl.steps.is_empty() {
        h.push_str("<tr><td colspan=\"5\" class=\"muted\">the run named no steps</td></tr>\n");
    }
    for (i, s) in tl.steps.iter().enumerate() {
        let indent = "&nbsp;&nbsp;&nbsp;&nbsp;".repeat(s.depth);
        let class = if s.result == "ok" { "ok" } else { "bad" };
        let result = match &s.error {
            Some(e) => format!("{}: {e}", s.result),
            None => s.result.clone(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"step-row\"><td class=\"num\">{}</td><td>{indent}{}</td><td class=\"num\" title=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"{class}\">{}</td></tr>",
            i + 1,
            esc(&s.name),
            esc(&at(rec, s.start)),
            secs(s.start),
            secs(s.end.unwrap_or(rec.end) - s.start),
            esc(&result)
        );
    }
    h.push_str("</table>\n");
}

/// The simulator's invariants: the two that must hold are judged, the rest shown as measured.
fn invariants(h: &mut String, stats: &serde_json::Value) {
    h.push_str("<h2>Invariants (the simulator's records)</h2>\n<table class=\"list\" id=\"invariants\"><tr><th>invariant</th><th>value</th><th></th></tr>\n");
    type Judge = Option<fn(u64) -> bool>;
    let rows: [(&str, &str, Judge); 8] = [
        (
            "lost_committed_writes",
            "acknowledged writes lost",
            Some(|v| v == 0),
        ),
        (
            "max_leaders_in_a_term",
            "most leaders in one term",
            Some(|v| v <= 1),
        ),
        (
            "leader_losses",
            "leaders lost other than by hand-over",
            None,
        ),
        ("max_commit_stall_ms", "longest commit stall (ms)", None),
        ("quorum_lost_ms", "time without a quorum (ms)", None),
        ("min_healthy_seen", "fewest healthy nodes seen", None),
        ("client_writes_ok", "client writes ok", None),
        (
            "client_writes_failed",
            "client writes failed for good",
            None,
        ),
    ];
    for (key, what, judge) in rows {
        let Some(v) = stats.get(key).and_then(|v| v.as_u64()) else {
            continue;
        };
        let verdict = match judge {
            Some(holds) if holds(v) => "<td class=\"ok\">holds</td>",
            Some(_) => "<td class=\"bad\">VIOLATED</td>",
            None => "<td></td>",
        };
        let _ = writeln!(
            h,
            "<tr data-key=\"{key}\"><td>{what} <span class=\"muted\">({key})</span></td><td class=\"num\">{v}</td>{verdict}</tr>"
        );
    }
    h.push_str("</table>\n");
}
#[cfg(test)]
mod tests {
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
        assert!(page.contains(
            "canary check failed (rollback) on node2: error rate 4.93% (baseline 0.00%)"
        ));
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
}
