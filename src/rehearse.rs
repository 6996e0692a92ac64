//! Rehearsal: a runbook run against a simulated twin of the live cluster before anything touches it.
//!
//! The live cluster is only read (one survey: members, roles, versions, replication state, drains, pause).
//! A simulator takes its shape (same ids, versions, leader, flags) and the unchanged script runs against it at
//! high speed, with the live inventory's command templates so the plan shows the commands a real run would
//! send. What the run did is reported as the plan: every mutating call in order.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::cluster::{Cluster, OpError};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::model::values::UNKNOWN_VERSION;
use crate::script::ctx::Planned;
use crate::sim::{NodeShape, Shape, SimConfig, SimEvent, Simulator};

/// Simulated seconds per real second in a rehearsal.
pub const SPEED: f64 = 20.0;

/// A twin started for a rehearsal, and the inventory that reaches it with the live one's templates.
pub struct Twin {
    pub sim: Simulator,
    pub inventory: Inventory,
    pub described: String,
}

/// Reads the live cluster and starts its twin. Read-only against the live cluster.
pub async fn twin_of(live: &Cluster) -> Result<Twin, Error> {
    let health = live.health().await.map_err(|e| match e {
        OpError::Usage(m) => Error::Usage(m),
        e => Error::Tool(format!("cannot read the live cluster for a rehearsal: {e}")),
    })?;
    let mut nodes = Vec::new();
    for m in &health.members {
        if m.version == UNKNOWN_VERSION {
            // "node4: down (listed in the inventory but not a member of the cluster)": the part in brackets.
            let why = health
                .problems
                .iter()
                .find_map(|p| p.strip_prefix(&format!("{}: ", m.id)))
                .map(|p| {
                    let p = p
                        .strip_prefix("down (")
                        .and_then(|p| p.strip_suffix(')'))
                        .unwrap_or(p);
                    format!(": {p}")
                })
                .unwrap_or_default();
            return Err(Error::Tool(format!(
                "cannot rehearse: {} is not answering and no answering member lists it{why}. Its version \
                 is unknown, so its twin cannot be built: bring it up, or remove it from the inventory \
                 `{}` if it has left the cluster",
                m.id,
                live.inventory.source.display()
            )));
        }
        let version = crate::model::policy::parse_version(&m.version).map_err(|e| {
            Error::Tool(format!(
                "cannot rehearse: {} reports its version as {e}",
                m.id
            ))
        })?;
        nodes.push(NodeShape {
            id: m.id.clone(),
            version,
            draining: m.state == "draining" || m.state == "drained",
            down: m.state == "down",
        });
    }
    let shape = Shape {
        nodes,
        leader: health.leader.clone(),
        paused: health.paused,
        term: health.term.max(1) as u64,
    };
    let described = health
        .members
        .iter()
        .map(|m| format!("{} {} {} {}", m.id, m.role, m.state, m.version))
        .collect::<Vec<_>>()
        .join(", ");
    let sim = Simulator::start(SimConfig {
        speed: SPEED,
        shape: Some(shape),
        ..SimConfig::default()
    })
    .await
    .map_err(|e| Error::Tool(format!("cannot start the rehearsal's twin: {e}")))?;
    // The live inventory, pointed at the twin: same ids and templates, host operations simulated.
    let mut inventory = live.inventory.clone();
    let urls: BTreeMap<String, String> = sim.nodes().into_iter().collect();
    for n in &mut inventory.nodes {
        n.admin_url = urls.get(&n.id).cloned().unwrap_or_default();
        n.ssh = None;
    }
    inventory.sim_control = Some(sim.control_addr().to_string());
    inventory.sim_warp = true;
    inventory.prometheus_url = None;
    inventory.blue_green = None;
    inventory.token = None;
    Ok(Twin {
        sim,
        inventory,
        described,
    })
}

/// The plan as numbered lines, each step that made calls (or none, like a hook or a gate) as an
/// unnumbered heading before its first call: `steps` is (calls before it, depth, name).
pub fn plan_lines(plan: &[Planned], steps: &[(usize, usize, String)]) -> Vec<String> {
    let calls = call_lines(plan);
    let mut out = Vec::new();
    let mut next = steps.iter().peekable();
    for (i, line) in calls.into_iter().enumerate() {
        while let Some((_, depth, name)) = next.next_if(|(at, _, _)| *at <= i) {
            out.push(format!("      {}> {name}", "  ".repeat(*depth)));
        }
        out.push(line);
    }
    for (_, depth, name) in next {
        out.push(format!("      {}> {name}", "  ".repeat(*depth)));
    }
    out
}

/// The calls as numbered lines.
fn call_lines(plan: &[Planned]) -> Vec<String> {
    plan.iter()
        .enumerate()
        .map(|(i, p)| {
            if p.op == "gate" {
                let reason = p.args.get("reason").and_then(|r| r.as_str()).unwrap_or("");
                return format!(
                    "{:>4}. gate: {reason} (a live run pauses here until resumed)",
                    i + 1
                );
            }
            // A call on several nodes at once (`node::install_all`) names them all, and its command
            // when every node runs the same one.
            let ids: Vec<&str> = p.args["ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let commands: Vec<&str> = p.args["commands"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let node = match (p.op.as_str(), p.node.as_deref()) {
                ("raft::transfer_leadership", Some(n)) => format!(" to {n}"),
                (_, Some(n)) => format!(" {n}"),
                (_, None) if !ids.is_empty() => format!(" {}", ids.join(", ")),
                (_, None) => String::new(),
            };
            let detail = p
                .args
                .get("command")
                .and_then(|c| c.as_str())
                .or_else(|| {
                    commands
                        .first()
                        .copied()
                        .filter(|first| commands.iter().all(|c| c == first))
                })
                .map(|cmd| format!(": `{cmd}`"))
                .unwrap_or_default();
            let failed = p
                .error
                .as_deref()
                .map(|e| format!("  -> FAILS: {e}"))
                .unwrap_or_default();
            format!("{:>4}. {}{node}{detail}{failed}", i + 1, p.op)
        })
        .collect()
}

/// Median duration per operation of earlier successful runs on this cluster, from the audit journal:
/// read a bounded line at a time, so a journal kept for months is never held whole; nothing when it
/// cannot be read (an operator-named journal that is not a regular file was refused before the run).
pub fn journal_medians(journal: &Path, cluster: &str) -> BTreeMap<String, Duration> {
    let mut by_op: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if let Ok(file) = crate::files::open_regular(journal, std::fs::OpenOptions::new().read(true)) {
        let lines = crate::files::lines(std::io::BufReader::new(file), crate::files::MAX_RECORD);
        for line in lines.map_while(Result::ok) {
            let crate::files::Line::Text(line) = line else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            if v["cluster"] == cluster && v["result"] == "ok" {
                if let (Some(op), Some(ms)) = (v["op"].as_str(), v["duration_ms"].as_u64()) {
                    by_op.entry(op.to_string()).or_default().push(ms);
                }
            }
        }
    }
    by_op
        .into_iter()
        .map(|(op, mut v)| {
            v.sort_unstable();
            (op, Duration::from_millis(v[v.len() / 2]))
        })
        .collect()
}

/// The time covered by some of `windows` ((from, to) pairs), overlaps counted once.
fn covered(mut windows: Vec<(f64, f64)>) -> f64 {
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut reach = f64::NEG_INFINITY;
    for (from, to) in windows {
        total += (to - from.max(reach)).max(0.0);
        reach = reach.max(to);
    }
    total
}

/// The predicted duration: each node's outage window in the twin (stop until caught up), with the install
/// time replaced by what earlier real runs of this cluster took when the journal knows, plus the time the
/// script chose to wait (`waits`, (start, end) on the twin's clock: soak, canary and analysis windows,
/// sleeps) outside those outages, which a live run spends in full; the rest of the run is the tool's
/// overhead, a few percent (docs/BENCHMARKS.md).
pub fn predicted(
    events: &[SimEvent],
    medians: &BTreeMap<String, Duration>,
    waits: &[(f64, f64)],
) -> (Duration, String) {
    // Outages that overlap (a batch's nodes) count once: the time some node of the run was out.
    let mut windows: Vec<(f64, f64)> = Vec::new();
    for e in events.iter().filter(|e| e.kind == "stop") {
        let back = events
            .iter()
            .find(|c| c.kind == "caught_up" && c.node == e.node && c.t >= e.t)
            .map_or(e.t, |c| c.t);
        windows.push((e.t, back));
    }
    let total = covered(windows.clone());
    // A wait while a node is out is already in that outage.
    let waited = covered(windows.into_iter().chain(waits.iter().copied()).collect()) - total;
    // A batch's installs run at once: one install's time each.
    let mut installs = 0.0;
    let mut last_install = f64::NEG_INFINITY;
    for e in events.iter().filter(|e| e.kind == "install") {
        if e.t - last_install > 0.5 {
            installs += 1.0;
        }
        last_install = e.t;
    }
    let (basis, total) = match medians
        .get("node::install")
        .or_else(|| medians.get("node::install_all"))
    {
        Some(real) => {
            let adjusted = total + installs * (real.as_secs_f64() - crate::sim::INSTALL_SECS);
            (
                format!(
                    "installs timed from earlier runs in the journal ({:.0} s each)",
                    real.as_secs_f64()
                ),
                adjusted,
            )
        }
        None => (
            "the simulator's timings (install 3 s, restart 1.5 s)".to_string(),
            total,
        ),
    };
    // Staging runs while every node serves, but the run waits for it before the first stop: its span
    // (the twin's, or the median of earlier real stagings of this cluster) is part of the duration.
    let staged: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == "stage" && !e.detail.contains("already"))
        .map(|e| e.t)
        .collect();
    let (basis, total) = match (staged.is_empty(), medians.get("node::stage_all")) {
        (true, _) => (basis, total),
        (false, Some(real)) => (
            format!(
                "{basis}; staging timed from earlier runs ({:.0} s)",
                real.as_secs_f64()
            ),
            total + real.as_secs_f64(),
        ),
        (false, None) => {
            let first = staged.iter().cloned().fold(f64::INFINITY, f64::min);
            let last = staged.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (
                format!("{basis}; staging as the twin took it"),
                total + (last - first) + crate::sim::INSTALL_SECS,
            )
        }
    };
    let (basis, total) = if waited <= 0.0 {
        (basis, total)
    } else {
        (
            format!(
                "{basis}; {} the script waits on purpose (soak, canary or analysis windows, sleeps)",
                crate::output::human_duration(Duration::from_secs_f64(waited))
            ),
            total + waited,
        )
    };
    (Duration::from_secs_f64((total * 1.03).max(0.0)), basis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: f64, node: &str, kind: &str) -> SimEvent {
        SimEvent {
            t,
            node: Some(node.into()),
            kind: kind.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_wait_counts_only_where_no_outage_covers_it() {
        // node2 out from 10 to 20 s.
        let events = [ev(10.0, "node2", "stop"), ev(20.0, "node2", "caught_up")];
        let secs = |waits: &[(f64, f64)]| {
            predicted(&events, &BTreeMap::new(), waits).0.as_secs_f64() / 1.03
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(secs(&[]), 10.0));
        // A sleep inside the outage adds nothing; one half inside adds its other half; one after, all.
        assert!(close(secs(&[(12.0, 18.0)]), 10.0));
        assert!(close(secs(&[(15.0, 25.0)]), 15.0));
        assert!(close(secs(&[(30.0, 90.0)]), 70.0));
        let (_, basis) = predicted(&events, &BTreeMap::new(), &[(30.0, 90.0)]);
        assert!(
            basis.contains("1 min 0 s the script waits on purpose"),
            "{basis}"
        );
    }
}
