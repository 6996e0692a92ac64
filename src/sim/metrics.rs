//! Prometheus text exposition of one node's metrics, rendered outside the world's lock.

use std::fmt::Write as _;

use super::world::admin::MetricsSnapshot;
use super::world::node::LATENCY_BUCKETS;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Label values come from ids and semver strings, but escape anyway so the text always parses.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(4096);
    scalar(
        &mut out,
        "tensor_chain_raft_state",
        "gauge",
        "Raft role of this node: 0 follower, 1 candidate, 2 leader.",
        m.raft_state.gauge(),
    );
    scalar(
        &mut out,
        "tensor_chain_term",
        "gauge",
        "Current Raft term.",
        m.term,
    );
    scalar(
        &mut out,
        "tensor_chain_commit_index",
        "gauge",
        "Highest log index known to be committed.",
        m.commit_index,
    );
    scalar(
        &mut out,
        "tensor_chain_applied_index",
        "gauge",
        "Highest log index applied on this node.",
        m.applied_index,
    );
    scalar(
        &mut out,
        "tensor_chain_elections_total",
        "counter",
        "Leader elections and transfers seen by this process.",
        m.elections,
    );
    scalar(
        &mut out,
        "tensor_chain_tx_commits_total",
        "counter",
        "Client transactions committed through this node.",
        m.tx_commits,
    );
    scalar(
        &mut out,
        "tensor_chain_tx_aborts_total",
        "counter",
        "Client transactions aborted on this node.",
        m.tx_aborts,
    );
    let name = "tensor_chain_tx_latency_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Latency of client transactions served by this node.",
    );
    let mut cumulative = 0;
    for (le, n) in LATENCY_BUCKETS.iter().zip(m.latency.buckets.iter()) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", m.latency.count);
    let _ = writeln!(out, "{name}_sum {}", m.latency.sum);
    let _ = writeln!(out, "{name}_count {}", m.latency.count);
    scalar(
        &mut out,
        "tensor_chain_gossip_members",
        "gauge",
        "Cluster members known through gossip.",
        m.members,
    );
    scalar(
        &mut out,
        "tensor_chain_gossip_healthy",
        "gauge",
        "Cluster members gossip reports healthy.",
        m.healthy,
    );
    scalar(
        &mut out,
        "tensor_chain_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        m.memory_bytes,
    );
    scalar(
        &mut out,
        "tensor_chain_replication_lag_seconds",
        "gauge",
        "How far this node's applied log trails the leader's commits, in time.",
        m.replication_lag_secs,
    );
    family(
        &mut out,
        "neumann_build_info",
        "gauge",
        "Build of the running binary.",
    );
    let _ = writeln!(
        out,
        "neumann_build_info{{version=\"{}\",node=\"{}\"}} 1",
        label(&m.version),
        label(&m.node_id)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::SimConfig;
    use crate::sim::world::World;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let mut m = World::new(&SimConfig::default(), 0.0).expect("valid config");
        for _ in 0..300 {
            m.tick(0.01);
        }
        let text = render(&m.metrics(1));
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("tensor_chain_tx_latency_seconds_bucket"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        let count = text
            .lines()
            .find_map(|l| l.strip_prefix("tensor_chain_tx_latency_seconds_count "))
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(buckets.last().copied(), count);
        assert!(count.is_some_and(|c| c > 100.0));
        assert!(text.contains("tensor_chain_raft_state 0\n"));
        assert!(text.contains("neumann_build_info{version=\"0.10.4\",node=\"node2\"} 1\n"));
    }
}
