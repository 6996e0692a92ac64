//! The page: one self-contained HTML document, inline CSS and SVG, no script and nothing fetched. The
//! timeline in it is `svg.rs`'s; this file writes the rest (header, plan, legend, the nodes and steps
//! tables, the simulator's invariants) around it.

use std::fmt::Write as _;

use super::svg::{at, svg, Plot};
pub use super::text::esc;
use super::text::{secs, utc};
use super::timeline::{timeline, Record, State, Timeline};

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
mod tests;
