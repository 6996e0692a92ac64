//! The timeline, drawn as SVG: rows of steps, gates, leadership and one lane per node, the failed-writes
//! chart, and the axis repeated down a tall page.
//!
//! The plot places everything by percentages of its width, never below `PLOT_MIN` pixels (a narrower window
//! scrolls sideways). Labels are placed for that narrowest plot: a label that fits there, inside its bar or
//! clear of the others, fits at any wider one, since bars and gaps only grow while text keeps its size.

use std::fmt::Write as _;

use super::text::{esc, secs, utc};
use super::timeline::{Record, State, Timeline};

/// The column of row names left of the plot.
pub(super) const NAMES: f64 = 150.0;
/// The plot's narrowest width: labels are placed for it.
pub(super) const PLOT_MIN: f64 = 850.0;
pub(super) const ROW: f64 = 22.0;
pub(super) const LANE: f64 = 30.0;
/// A row of the time axis, repeated every `AXIS_EVERY` lanes so a tall page always shows one.
pub(super) const AXIS: f64 = 20.0;
pub(super) const AXIS_EVERY: usize = 10;
pub(super) const CHART: f64 = 60.0;
/// Width of one character of an 11 px label, generous, so a label judged to fit does.
pub(super) const CHAR: f64 = 7.0;
/// Space kept between two labels, and between a label and its bar's edge.
pub(super) const GAP: f64 = 3.0;
/// Rows of step numbers above the steps, for steps too narrow for a label, and their height.
pub(super) const TRACKS: usize = 4;
pub(super) const TRACK: f64 = 14.0;

/// A tick spacing giving at most about a dozen labelled ticks.
pub(super) fn tick_step(end: f64) -> f64 {
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
pub(super) fn tick_label(t: f64, step: f64) -> String {
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
pub(super) fn at(rec: &Record, t: f64) -> String {
    match wall(rec, t) {
        Some(w) => format!("+{}, {w}", secs(t)),
        None => format!("+{}", secs(t)),
    }
}

/// From one moment to another, with the time between and the wall clock at both ends.
pub(super) fn between(rec: &Record, t0: f64, t1: f64) -> String {
    let mut s = format!("+{} to +{} ({})", secs(t0), secs(t1), secs(t1 - t0));
    if let (Some(a), Some(b)) = (wall(rec, t0), wall(rec, t1)) {
        let _ = write!(s, "\n{} to {b}", a.trim_end_matches(" UTC"));
    }
    s
}

/// The wall clock at `t` on the timeline: the time of day when it is the run's start day, else the date too.
pub(super) fn wall(rec: &Record, t: f64) -> Option<String> {
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
pub(super) struct Plot {
    pub(super) end: f64,
}

impl Plot {
    pub(super) fn frac(&self, t: f64) -> f64 {
        t.clamp(0.0, self.end) / self.end
    }

    pub(super) fn pct(&self, t: f64) -> f64 {
        self.frac(t) * 100.0
    }

    /// A rectangle from t0 to t1 as (x, width) in percent, at least 2 px wide so an instant still shows.
    pub(super) fn span(&self, t0: f64, t1: f64) -> (f64, f64) {
        let min = 2.0 / PLOT_MIN * 100.0;
        let x = self.pct(t0);
        let w = (self.pct(t1) - x).max(min);
        (x.min(100.0 - min), w)
    }
}

/// Where a label goes relative to its bar.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Side {
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
pub(super) struct Row {
    /// The row's bars, as fractions of the width.
    pub(super) bars: Vec<(f64, f64)>,
    /// Placed labels: (anchor, left, right), the edges in pixels at `PLOT_MIN`.
    pub(super) placed: Vec<(f64, f64, f64)>,
}

/// A placed label: its anchor in percent of the width, a pixel offset from it, and which end of the text
/// (`start`, `middle`, `end`) sits there.
pub(super) struct Placed {
    pub(super) text: String,
    pub(super) x: f64,
    pub(super) dx: f64,
    pub(super) align: &'static str,
    pub(super) inside: bool,
}

impl Row {
    pub(super) fn new(bars: Vec<(f64, f64)>) -> Row {
        Row {
            bars,
            placed: Vec::new(),
        }
    }

    pub(super) fn clear_of_labels(&self, anchor: f64, l: f64, r: f64) -> bool {
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
    pub(super) fn clear_of_bars(&self, own: (f64, f64), l: f64, r: f64) -> bool {
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
    pub(super) fn place(&mut self, f0: f64, f1: f64, tries: &[(String, Side)]) -> Option<Placed> {
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
pub(super) fn label(h: &mut String, p: &Placed, bar: &str, y: f64, class: &str) {
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
pub(super) fn shortened(text: &str, chars: usize, least: usize) -> Option<String> {
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

/// A marker shape centred on (x percent, y): a nested viewport at the moment, so the shape keeps its
/// size at any width.
pub(super) fn marker(
    h: &mut String,
    plot: &Plot,
    t: f64,
    y: f64,
    points: &str,
    class: &str,
    title: &str,
) {
    let _ = write!(
        h,
        "<svg x=\"{:.3}%\" y=\"{y:.1}\" width=\"1\" height=\"1\" overflow=\"visible\"><polygon class=\"mark {class}\" data-t=\"{t:.3}\" points=\"{points}\"><title>{}</title></polygon></svg>",
        plot.pct(t),
        esc(title)
    );
}

pub(super) const TRIANGLE_UP: &str = "0,-5 -5,4 5,4";
pub(super) const TRIANGLE_DOWN: &str = "0,5 -5,-4 5,-4";
pub(super) const DIAMOND: &str = "0,-6 5,0 0,6 -5,0";

pub(super) fn name(h: &mut String, y: f64, text: &str, attrs: &str) {
    let _ = write!(
        h,
        "<text class=\"name\" x=\"8\" y=\"{y:.1}\"{attrs}>{}</text>",
        esc(text)
    );
}

pub(super) fn axis(h: &mut String, plot: &Plot, y: f64) {
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
pub(super) struct Rows {
    pub(super) axes: Vec<f64>,
    /// The rows of step numbers above the steps, then the steps.
    pub(super) tracks: f64,
    pub(super) steps: f64,
    pub(super) gates: f64,
    pub(super) leader: f64,
    pub(super) lanes: Vec<f64>,
    pub(super) chart: Option<f64>,
    /// Lines of the chart's caption.
    pub(super) caption_lines: usize,
    pub(super) height: f64,
}

impl Rows {
    pub(super) fn new(tl: &Timeline, tracks: usize, caption_lines: usize) -> Rows {
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

    pub(super) fn lanes_end(&self) -> f64 {
        self.lanes.last().map_or(self.leader + ROW, |y| y + LANE)
    }
}

/// The chart's caption: what the bars count, and, when a check failed on an error rate, that the rate was
/// the node's own and not writes that failed for good.
pub(super) fn caption(tl: &Timeline) -> Vec<String> {
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

pub(super) fn svg(h: &mut String, rec: &Record, tl: &Timeline, plot: &Plot) {
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
pub(super) struct StepLabels {
    pub(super) labels: Vec<Option<(Placed, Option<usize>)>>,
    pub(super) tracks: usize,
}

pub(super) fn step_labels(rec: &Record, tl: &Timeline, plot: &Plot) -> StepLabels {
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

pub(super) fn steps_rows(
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

pub(super) fn gates_row(
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

pub(super) fn leader_row(
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

pub(super) fn lanes(
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
pub(super) fn failed_chart(
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
