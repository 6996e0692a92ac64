//! `metrics::query`, `sample_past` and `compare_past` against a real Prometheus scraping the simulator.

use crate::prometheus_support::scraping;
use crate::support::{binary_or_skip, expect, Cluster, PROMETHEUS};

#[test]
fn past_windows_and_promql_come_from_the_inventorys_prometheus() {
    if binary_or_skip(
        "prometheus::past_windows_and_promql_come_from_the_inventorys_prometheus",
        &PROMETHEUS,
    )
    .is_none()
    {
        return;
    }
    let c = Cluster::with_bad(3, "0.11.0");
    expect(
        &c.run(&["-e", r#"node::drain("node3"); node::wait_drained("node3", 10); node::stop("node3");
            node::install("node3", "0.11.0"); node::start("node3"); node::wait_rejoined("node3", 20)"#]),
        0,
    );
    let _prom = scraping(&c);

    let (stdout, _) = expect(
        &c.run(&["--format", "json", "-e", "metrics::query(\"up\")"]),
        0,
    );
    let up: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(up.as_array().map(Vec::len), Some(3), "{up}");
    assert!(
        up.as_array().unwrap().iter().all(|s| s["value"] == 1.0),
        "{up}"
    );

    let (stdout, _) = expect(
        &c.run(&[
            "--format",
            "json",
            "-e",
            r#"metrics::compare_past("node3", ["node1", "node2"], 10)"#,
        ]),
        0,
    );
    let cmp: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        cmp["error_rate"]["canary"].as_f64().unwrap() > 0.01,
        "{cmp}"
    );
    assert_eq!(cmp["error_rate"]["baseline"].as_f64(), Some(0.0), "{cmp}");
    assert!(
        cmp["latency_p99_ms"]["ratio"].as_f64().unwrap() > 2.0,
        "{cmp}"
    );
    // The bad release uses about 1.6 times the memory; each process varies by up to 4% and each
    // scrape by 1%, so the ratio lies within 1.45-1.77. What the figure must show is the canary
    // clearly above its peers, well clear of the +-10% that healthy nodes differ by.
    let memory = cmp["memory_bytes"]["ratio"].as_f64().unwrap();
    assert!((1.3..2.0).contains(&memory), "{cmp}");

    let (stdout, _) = expect(
        &c.run(&[
            "--format",
            "json",
            "-e",
            r#"metrics::sample_past("node1", 10)"#,
        ]),
        0,
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["error_rate"].as_f64(), Some(0.0), "{s}");
    assert!(s["tx_per_sec"].as_f64().unwrap() > 0.0, "{s}");

    let (_, stderr) = expect(&c.run(&["-e", "metrics::query(\"rate(\")"]), 1);
    assert!(
        stderr.contains("prometheus: query `rate(` failed") && stderr.contains("bad_data"),
        "{stderr}"
    );
}

#[test]
fn without_a_prometheus_the_message_says_how_to_name_one() {
    let c = Cluster::start(3, "0.10.4");
    let (_, stderr) = expect(&c.run(&["-e", "metrics::query(\"up\")"]), 2);
    assert!(
        stderr.contains("names no Prometheus: add `prometheus_url"),
        "{stderr}"
    );
}
