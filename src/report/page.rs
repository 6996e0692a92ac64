//! The page: one self-contained HTML document, inline CSS and SVG, no script and nothing fetched.

use std::fmt::Write as _;

use super::timeline::{timeline, Record, State, Timeline};

const WIDTH: f64 = 1100.0;
/// The column of row names left of the plot.
const LEFT: f64 = 130.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 22.0;
const LANE: f64 = 30.0;
const CHART: f64 = 70.0;

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

struct Plot {
    end: f64,
}

impl Plot {
    fn x(&self, t: f64) -> f64 {
        let w = WIDTH - LEFT - RIGHT;
        LEFT + (t.clamp(0.0, self.end) / self.end) * w
    }

    /// A rectangle from t0 to t1, at least 2 px wide so an instant still shows.
    fn span(&self, t0: f64, t1: f64) -> (f64, f64) {
        let x0 = self.x(t0);
        let w = (self.x(t1) - x0).max(2.0);
        (x0.min(WIDTH - RIGHT - 2.0), w)
    }
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.predicted-banner { background: #fff4d6; border: 1px solid #e0b84c; padding: 6px 10px; margin: 8px 0; font-weight: 600; }
.stop-box { background: #fde8e8; border: 1px solid #d9534f; padding: 6px 10px; margin: 8px 0; }
table.header td { padding: 1px 14px 1px 0; vertical-align: top; }
table.header td:first-child { color: #5b6577; }
.result-done { color: #1f7a3a; font-weight: 600; }
.result-bad { color: #b3261e; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 10px 0; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.sw { display: inline-block; width: 22px; height: 12px; border: 1px solid #0003; }
svg { display: block; margin: 6px 0 12px; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2430; }
svg .name { font-weight: 600; }
svg .axis line { stroke: #c7ccd6; }
svg .axis text { fill: #5b6577; font-size: 11px; }
svg .seglabel { font-size: 10px; fill: #fff; pointer-events: none; }
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
.bar { fill: #d64545; }
.mark-elected { fill: #7b61c4; } .mark-transfer { fill: #2b7a78; } .mark-leader-lost, .mark-failed, .mark-stop { fill: #b3261e; }
.mark-fault { fill: #e07b00; } .mark-gate { fill: #1d2430; } .mark-activate { fill: #0b6e4f; }
.legend i.tick { display: inline-block; width: 2px; height: 14px; background: #0b6e4f; }
table.list { border-collapse: collapse; margin: 6px 0 16px; }
table.list th, table.list td { border-bottom: 1px solid #e3e6ec; padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
table.list td.num { text-align: right; font-variant-numeric: tabular-nums; }
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
    legend(&mut h, &tl);
    svg(&mut h, rec, &tl, &plot);
    steps(&mut h, &tl, rec.end);
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
    h.push_str("<table class=\"header\">\n");
    for (k, v, class) in [
        ("script", rec.script.clone(), ""),
        ("args", rec.args.join(" "), ""),
        ("cluster", format!("{}{cluster_kind}", rec.cluster), ""),
        ("run id", rec.run_id.clone(), ""),
        ("started", utc(rec.started_unix), ""),
        ("result", result, result_class),
        ("duration", duration, ""),
    ] {
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
    h.push_str("<span>&#9670; elected / hand-over</span><span>&#9650; failure, leader lost</span><span>&#9660; gate, pause, stop</span>");
    let activated = tl
        .lanes
        .iter()
        .any(|l| l.marks.iter().any(|m| m.kind == "activate"));
    if activated {
        h.push_str("<span><i class=\"tick\"></i>staged build activated</span>");
    }
    if tl.failed_writes.is_some() {
        h.push_str("<span><i class=\"sw down\"></i>failed client writes per second (chart)</span>");
    }
    h.push_str("</div>\n");
}

fn tri(h: &mut String, x: f64, y: f64, up: bool, class: &str, title: &str) {
    let pts = if up {
        format!(
            "{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
            x,
            y - 5.0,
            x - 5.0,
            y + 4.0,
            x + 5.0,
            y + 4.0
        )
    } else {
        format!(
            "{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}",
            x,
            y + 5.0,
            x - 5.0,
            y - 4.0,
            x + 5.0,
            y - 4.0
        )
    };
    let _ = write!(
        h,
        "<polygon class=\"mark {class}\" points=\"{pts}\"><title>{}</title></polygon>",
        esc(title)
    );
}

fn diamond(h: &mut String, x: f64, y: f64, class: &str, title: &str) {
    let _ = write!(
        h,
        "<polygon class=\"mark {class}\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"><title>{}</title></polygon>",
        x, y - 6.0, x + 5.0, y, x, y + 6.0, x - 5.0, y,
        esc(title)
    );
}

fn row_name(h: &mut String, y: f64, name: &str) {
    let _ = write!(
        h,
        "<text class=\"name\" x=\"8\" y=\"{:.1}\">{}</text>",
        y,
        esc(name)
    );
}

fn axis(h: &mut String, plot: &Plot, y: f64, height: f64) {
    let step = tick_step(plot.end);
    h.push_str("<g class=\"axis\">");
    let mut t = 0.0;
    while t <= plot.end + 1e-9 {
        let x = plot.x(t);
        let _ = write!(
            h,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} s</text>",
            y + 6.0,
            y + height,
            y,
            t
        );
        t += step;
    }
    h.push_str("</g>");
}

fn svg(h: &mut String, rec: &Record, tl: &Timeline, plot: &Plot) {
    let step_depth = tl.steps.iter().map(|s| s.depth + 1).max().unwrap_or(1);
    let rows_top = 30.0;
    let steps_h = step_depth as f64 * ROW;
    let gates_y = rows_top + steps_h + 6.0;
    let leader_y = gates_y + ROW + 6.0;
    let lanes_y = leader_y + ROW + 8.0;
    let lanes_h = tl.lanes.len() as f64 * LANE;
    let chart_y = lanes_y + lanes_h + 16.0;
    let height = chart_y
        + if tl.failed_writes.is_some() {
            CHART + 30.0
        } else {
            10.0
        };
    let _ = write!(
        h,
        "<svg id=\"timeline\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-label=\"timeline of the run\">"
    );
    axis(h, plot, 14.0, height - 14.0);
    let _ = write!(h, "<text class=\"muted\" x=\"8\" y=\"14\">time (s)</text>");

    // Steps.
    h.push_str("<g id=\"steps-row\">");
    row_name(h, rows_top + 15.0, "steps");
    for (i, s) in tl.steps.iter().enumerate() {
        let y = rows_top + s.depth as f64 * ROW;
        let (t0, t1) = (s.start, s.end.unwrap_or(rec.end));
        let (x, w) = plot.span(t0, t1);
        let title = format!(
            "{}: {} ({} to {}, {})",
            s.name,
            s.result,
            secs(t0),
            secs(t1),
            secs(t1 - t0)
        );
        let _ = write!(
            h,
            "<g class=\"step\" data-step=\"{i}\"><rect class=\"step-{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"3\"><title>{}</title></rect>",
            esc(&s.result),
            y + 2.0,
            ROW - 4.0,
            esc(&title)
        );
        let chars = (w / 6.5) as usize;
        if chars >= 3 {
            let mut label: String = s.name.chars().take(chars).collect();
            if label.chars().count() < s.name.chars().count() {
                label.pop();
                label.push('…');
            }
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" style=\"font-size:11px\">{}</text>",
                x + 3.0,
                y + 15.0,
                esc(&label)
            );
        }
        h.push_str("</g>");
    }
    h.push_str("</g>");

    // Gates, pauses, the safe stop.
    h.push_str("<g id=\"gates-row\">");
    row_name(h, gates_y + 15.0, "gates, pauses");
    for b in &tl.bands {
        let (x, w) = plot.span(b.t0, b.t1);
        let _ = write!(
            h,
            "<rect class=\"band\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{} ({} to {})</title></rect>",
            gates_y,
            ROW + 6.0 + ROW + 8.0 + tl.lanes.len() as f64 * LANE,
            esc(&b.label),
            secs(b.t0),
            secs(b.t1)
        );
    }
    for g in &tl.gates {
        let class = if g.kind == "stop" {
            "mark-stop"
        } else {
            "mark-gate"
        };
        tri(
            h,
            plot.x(g.t),
            gates_y + 10.0,
            false,
            class,
            &format!("{} at {}", g.label, secs(g.t)),
        );
    }
    h.push_str("</g>");

    // The leader and its terms.
    h.push_str("<g id=\"leader-row\">");
    row_name(h, leader_y + 15.0, "leader (term)");
    for l in &tl.leaders {
        let (x, w) = plot.span(l.t0, l.t1);
        let term = l.term.map(|t| format!(" · term {t}")).unwrap_or_default();
        let _ = write!(
            h,
            "<g class=\"leadership\" data-node=\"{}\"><rect class=\"leader\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"3\"><title>{} leads{term} ({} to {})</title></rect>",
            esc(&l.node),
            leader_y + 2.0,
            ROW - 4.0,
            esc(&l.node),
            secs(l.t0),
            secs(l.t1)
        );
        let label = format!("{}{term}", l.node);
        if w >= label.chars().count() as f64 * 6.5 + 6.0 {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" style=\"font-size:11px\">{}</text>",
                x + 3.0,
                leader_y + 15.0,
                esc(&label)
            );
        }
        h.push_str("</g>");
    }
    h.push_str("</g>");

    // One lane per node.
    h.push_str("<g id=\"lanes\">");
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y = lanes_y + i as f64 * LANE;
        let _ = write!(h, "<g class=\"lane\" data-node=\"{}\">", esc(&lane.node));
        row_name(h, y + 14.0, &lane.node);
        for s in &lane.segments {
            let (x, w) = plot.span(s.t0, s.t1);
            let _ = write!(
                h,
                "<rect class=\"seg {}\" data-state=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\"><title>{}: {} from {} to {} ({})</title></rect>",
                s.state.class(),
                s.state.class(),
                y,
                esc(&lane.node),
                s.state.label(),
                secs(s.t0),
                secs(s.t1),
                secs(s.t1 - s.t0)
            );
            let label = s.state.label();
            if s.state != State::Up && w >= label.len() as f64 * 6.0 + 6.0 {
                let _ = write!(
                    h,
                    "<text class=\"seglabel\" x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
                    x + 3.0,
                    y + 13.0
                );
            }
        }
        for a in &lane.activities {
            let (x, w) = plot.span(a.t0, a.t1);
            let _ = write!(
                h,
                "<rect class=\"act {}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"6\"><title>{}: {} from {} to {}</title></rect>",
                a.what,
                y + 20.0,
                esc(&lane.node),
                esc(&a.label),
                secs(a.t0),
                secs(a.t1)
            );
        }
        for m in &lane.marks {
            let title = format!("{}: {} at {}", lane.node, m.label, secs(m.t));
            let x = plot.x(m.t);
            match m.kind.as_str() {
                "elected" | "transfer" => {
                    diamond(h, x, y + 9.0, &format!("mark-{}", m.kind), &title)
                }
                // A switch of build, not an incident: a tick, unlike the failure triangles.
                "activate" => {
                    let _ = write!(
                        h,
                        "<rect class=\"mark mark-activate\" x=\"{:.1}\" y=\"{:.1}\" width=\"2\" height=\"18\"><title>{}</title></rect>",
                        x - 1.0,
                        y,
                        esc(&title)
                    );
                }
                other => tri(h, x, y + 9.0, true, &format!("mark-{other}"), &title),
            }
        }
        h.push_str("</g>");
    }
    h.push_str("</g>");

    if let Some((bucket, bars)) = &tl.failed_writes {
        failed_chart(h, plot, chart_y, *bucket, bars, rec.speed);
    }
    h.push_str("</svg>\n");
}

fn failed_chart(h: &mut String, plot: &Plot, y: f64, bucket: f64, bars: &[u64], _speed: f64) {
    let max = bars.iter().copied().max().unwrap_or(0);
    let total: u64 = bars.iter().sum();
    h.push_str("<g id=\"failed-writes\">");
    row_name(h, y + 14.0, "failed writes");
    let _ = write!(
        h,
        "<text class=\"muted\" x=\"8\" y=\"{:.1}\">per {} (max {max}, total {total})</text>",
        y + 30.0,
        if bucket == 1.0 {
            "second".to_string()
        } else {
            format!("{bucket} s")
        }
    );
    let _ = write!(
        h,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c7ccd6\"/>",
        WIDTH - RIGHT,
        y + CHART,
        y + CHART
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
                h,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{n} failed writes from {} to {}</title></rect>",
                y + CHART - bh,
                (w - 0.5).max(1.0),
                secs(t0),
                secs(t0 + bucket)
            );
        }
    } else {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\">no failed client writes</text>",
            LEFT + 6.0,
            y + CHART - 6.0
        );
    }
    h.push_str("</g>");
}

/// The steps as a table; one the run ended inside lasts until `end`.
fn steps(h: &mut String, tl: &Timeline, end: f64) {
    h.push_str("<h2 style=\"font-size:16px\">Steps</h2>\n<table class=\"list\" id=\"steps\"><tr><th>step</th><th>start</th><th>duration</th><th>result</th></tr>\n");
    if tl.steps.is_empty() {
        h.push_str("<tr><td colspan=\"4\" class=\"muted\">the run named no steps</td></tr>\n");
    }
    for s in &tl.steps {
        let indent = "&nbsp;&nbsp;&nbsp;&nbsp;".repeat(s.depth);
        let class = if s.result == "ok" { "ok" } else { "bad" };
        let result = match &s.error {
            Some(e) => format!("{}: {e}", s.result),
            None => s.result.clone(),
        };
        let _ = writeln!(
            h,
            "<tr class=\"step-row\"><td>{indent}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{class}\">{}</td></tr>",
            esc(&s.name),
            secs(s.start),
            secs(s.end.unwrap_or(end) - s.start),
            esc(&result)
        );
    }
    h.push_str("</table>\n");
}

/// The simulator's invariants: the two that must hold are judged, the rest shown as measured.
fn invariants(h: &mut String, stats: &serde_json::Value) {
    h.push_str("<h2 style=\"font-size:16px\">Invariants (the simulator's records)</h2>\n<table class=\"list\" id=\"invariants\"><tr><th>invariant</th><th>value</th><th></th></tr>\n");
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
        ("client_writes_failed", "client writes failed", None),
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
    use super::super::timeline::{RunEvent, SimRecord};
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
}
