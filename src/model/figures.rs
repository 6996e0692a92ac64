//! The runbook's canary figures from Prometheus scrapes: error rate, p99 latency, replication lag,
//! memory and throughput over a window, for one node or aggregated over several (a baseline).
//!
//! Pure arithmetic on two scrapes per node, taken `secs` apart. Counters that went down restarted with
//! their process, so their increase is their new value. Latency comes from the histogram's bucket
//! increases summed by `le` across nodes, as `histogram_quantile(0.99, sum by (le) (increase(...)))`.

use std::collections::BTreeMap;

use crate::model::metrics_text::{counter_increase, histogram_quantile, Scrape};

pub const COMMITS: &str = "tensor_chain_tx_commits_total";
pub const ABORTS: &str = "tensor_chain_tx_aborts_total";
pub const LATENCY: &str = "tensor_chain_tx_latency_seconds";
pub const LAG: &str = "tensor_chain_replication_lag_seconds";
pub const MEMORY: &str = "tensor_chain_memory_bytes";

/// The figures of one node or group over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// aborts / (commits + aborts) over the window; 0 when there was no traffic.
    pub error_rate: f64,
    /// p99 of transaction latency over the window, in ms; NaN when nothing was observed.
    pub latency_p99_ms: f64,
    /// Replication lag at the end of the window (mean over a group), in ms.
    pub replication_lag_ms: f64,
    /// Resident memory at the end of the window (mean over a group).
    pub memory_bytes: f64,
    /// Commits per second over the window (per node, averaged over a group).
    pub tx_per_sec: f64,
}

impl Figures {
    /// The figure names, in the order they are reported.
    pub const NAMES: [&'static str; 5] = [
        "error_rate",
        "latency_p99_ms",
        "replication_lag_ms",
        "memory_bytes",
        "tx_per_sec",
    ];

    pub fn get(&self, name: &str) -> f64 {
        match name {
            "error_rate" => self.error_rate,
            "latency_p99_ms" => self.latency_p99_ms,
            "replication_lag_ms" => self.replication_lag_ms,
            "memory_bytes" => self.memory_bytes,
            "tx_per_sec" => self.tx_per_sec,
            _ => f64::NAN,
        }
    }
}

fn increase(before: &Scrape, after: &Scrape, name: &str) -> f64 {
    match (before.value(name), after.value(name)) {
        (Some(b), Some(a)) => counter_increase(b, a),
        (None, Some(a)) => a,
        _ => 0.0,
    }
}

/// Cumulative bucket counts by their `le` bound.
fn buckets(s: &Scrape, histogram: &str) -> BTreeMap<String, (f64, f64)> {
    let name = format!("{histogram}_bucket");
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for sample in s.samples().iter().filter(|x| x.name == name) {
        let Some(le) = sample.labels.get("le") else {
            continue;
        };
        let bound = match le.as_str() {
            "+Inf" | "Inf" | "inf" => f64::INFINITY,
            other => match other.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.entry(le.clone()).or_insert((bound, 0.0)).1 += sample.value;
    }
    out
}

/// Figures for a group of nodes, each given as (scrape before, scrape after), over `secs` seconds.
pub fn figures(pairs: &[(&Scrape, &Scrape)], secs: f64) -> Figures {
    let n = pairs.len().max(1) as f64;
    let (mut commits, mut aborts, mut lag, mut memory) = (0.0, 0.0, 0.0, 0.0);
    let mut bucket_increase: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (before, after) in pairs {
        commits += increase(before, after, COMMITS);
        aborts += increase(before, after, ABORTS);
        lag += after.value(LAG).unwrap_or(0.0) * 1000.0;
        memory += after.value(MEMORY).unwrap_or(0.0);
        let b0 = buckets(before, LATENCY);
        for (le, (bound, count)) in buckets(after, LATENCY) {
            let earlier = b0.get(&le).map_or(0.0, |x| x.1);
            bucket_increase.entry(le).or_insert((bound, 0.0)).1 += counter_increase(earlier, count);
        }
    }
    let mut bs: Vec<(f64, f64)> = bucket_increase.into_values().collect();
    bs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = commits + aborts;
    Figures {
        error_rate: if total > 0.0 { aborts / total } else { 0.0 },
        latency_p99_ms: histogram_quantile(0.99, &bs) * 1000.0,
        replication_lag_ms: lag / n,
        memory_bytes: memory / n,
        tx_per_sec: if secs > 0.0 { commits / secs / n } else { 0.0 },
    }
}

/// `canary / baseline`, or `None` when the baseline is zero and the canary is not (no finite ratio).
pub fn ratio(canary: f64, baseline: f64) -> Option<f64> {
    if baseline != 0.0 && baseline.is_finite() && canary.is_finite() {
        Some(canary / baseline)
    } else if canary == 0.0 && baseline == 0.0 {
        Some(1.0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(commits: f64, aborts: f64, buckets: &[(&str, f64)], lag_s: f64, mem: f64) -> Scrape {
        let mut t =
            format!("{COMMITS} {commits}\n{ABORTS} {aborts}\n{LAG} {lag_s}\n{MEMORY} {mem}\n");
        for (le, c) in buckets {
            t.push_str(&format!("{LATENCY}_bucket{{le=\"{le}\"}} {c}\n"));
        }
        Scrape::parse(&t).unwrap()
    }

    #[test]
    fn one_node_over_a_window() {
        let a = scrape(
            1000.0,
            0.0,
            &[("0.005", 800.0), ("0.01", 1000.0), ("+Inf", 1000.0)],
            0.0,
            100.0,
        );
        let b = scrape(
            1990.0,
            10.0,
            &[("0.005", 1600.0), ("0.01", 1990.0), ("+Inf", 2000.0)],
            0.02,
            120.0,
        );
        let f = figures(&[(&a, &b)], 10.0);
        assert!((f.error_rate - 0.01).abs() < 1e-12, "{f:?}");
        assert!((f.tx_per_sec - 99.0).abs() < 1e-12);
        assert_eq!(f.replication_lag_ms, 20.0);
        assert_eq!(f.memory_bytes, 120.0);
        // 1000 observations in the window: 800 <= 5 ms, 190 in (5, 10], 10 above 10 ms. Rank 990 is the
        // last of the (5, 10] bucket: 5 + 5 * (990 - 800) / 190 = 10 ms.
        assert!((f.latency_p99_ms - 10.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_restarted_process_resets_its_counters() {
        let a = scrape(5000.0, 5.0, &[("0.01", 5000.0), ("+Inf", 5005.0)], 0.0, 0.0);
        let b = scrape(100.0, 0.0, &[("0.01", 100.0), ("+Inf", 100.0)], 0.0, 0.0);
        let f = figures(&[(&a, &b)], 1.0);
        assert_eq!(f.tx_per_sec, 100.0);
        assert_eq!(f.error_rate, 0.0);
        assert!((f.latency_p99_ms - 9.9).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_group_sums_counters_and_buckets_and_averages_gauges() {
        let z = scrape(0.0, 0.0, &[("0.01", 0.0), ("+Inf", 0.0)], 0.0, 0.0);
        let x = scrape(
            100.0,
            0.0,
            &[("0.01", 100.0), ("+Inf", 100.0)],
            0.010,
            100.0,
        );
        let y = scrape(
            100.0,
            100.0,
            &[("0.01", 0.0), ("+Inf", 200.0)],
            0.030,
            300.0,
        );
        let f = figures(&[(&z, &x), (&z, &y)], 10.0);
        assert_eq!(f.error_rate, 100.0 / 300.0);
        assert_eq!(f.replication_lag_ms, 20.0);
        assert_eq!(f.memory_bytes, 200.0);
        assert_eq!(f.tx_per_sec, 10.0);
        // p99 of 300 observations, 100 under 10 ms: rank 297 falls in +Inf, so the highest finite bound.
        assert_eq!(f.latency_p99_ms, 10.0);
    }

    #[test]
    fn no_traffic_is_no_errors_and_no_latency() {
        let a = scrape(10.0, 0.0, &[("0.01", 10.0), ("+Inf", 10.0)], 0.0, 0.0);
        let f = figures(&[(&a, &a)], 5.0);
        assert_eq!(f.error_rate, 0.0);
        assert!(f.latency_p99_ms.is_nan());
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 1.5), Some(2.0));
        assert_eq!(ratio(0.0, 0.0), Some(1.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }
}
