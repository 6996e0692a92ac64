//! The simulator over real loopback HTTP, at speed 50 so simulated seconds pass in 20 ms.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

mod lease;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Polls `probe` until it yields a value; panics naming `what` after 30 real seconds (a loaded machine
/// can hold the simulator's task back for seconds).
async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<(u16, Value), reqwest::Error> {
    let resp = http.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = http.post(url).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

/// Parses Prometheus text line by line; returns the sample names (without labels).
fn parse_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        assert!(value.parse::<f64>().is_ok(), "bad value in: {line}");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}'), "bad labels in: {line}");
                name
            }
            None => series,
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in: {line}"
        );
        names.insert(name.to_string());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_over_http() -> TestResult {
    let sim = Simulator::start(SimConfig {
        speed: 50.0,
        seed: Some(1),
        ..SimConfig::default()
    })
    .await?;
    let nodes = sim.nodes();
    assert_eq!(nodes.len(), 3);
    let url = |i: usize, path: &str| format!("{}{path}", nodes[i].1);
    let control = |path: &str| format!("http://{}{path}", sim.control_addr());
    let http = reqwest::Client::new();

    let inventory = sim.inventory_toml();
    assert!(inventory.contains(&format!("control = \"{}\"", sim.control_addr())));
    assert!(inventory.contains(&format!("id = \"node3\"\nadmin_url = \"{}\"", nodes[2].1)));

    // Health, with the documented shape.
    let (status, h) = get_json(&http, &url(0, "/health")).await?;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["raft_state"], "leader");
    assert_eq!(h["node_id"], "node1");
    assert_eq!(h["members"], 3);
    assert_eq!(h["version"], "0.10.4");
    assert_eq!(h["error"], Value::Null);

    // Metrics parse line by line, and the client load shows up in them.
    let names = eventually("node2 to commit client writes", || async {
        let text = http
            .get(url(1, "/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let names = parse_metrics(&text);
        let commits = text
            .lines()
            .find_map(|l| l.strip_prefix("tensor_chain_tx_commits_total "))?
            .parse::<f64>()
            .ok()?;
        (commits > 0.0).then_some(names)
    })
    .await;
    for name in [
        "tensor_chain_raft_state",
        "tensor_chain_term",
        "tensor_chain_commit_index",
        "tensor_chain_applied_index",
        "tensor_chain_elections_total",
        "tensor_chain_tx_commits_total",
        "tensor_chain_tx_aborts_total",
        "tensor_chain_tx_latency_seconds_bucket",
        "tensor_chain_tx_latency_seconds_sum",
        "tensor_chain_tx_latency_seconds_count",
        "tensor_chain_gossip_members",
        "tensor_chain_gossip_healthy",
        "tensor_chain_memory_bytes",
        "tensor_chain_replication_lag_seconds",
        "neumann_build_info",
    ] {
        assert!(names.contains(name), "missing {name} in {names:?}");
    }

    let (_, members) = get_json(&http, &url(2, "/admin/cluster/members")).await?;
    assert_eq!(members[0]["role"], "leader");
    assert_eq!(members[2]["address"], nodes[2].1.as_str());
    let (_, raft) = get_json(&http, &url(1, "/admin/raft/status")).await?;
    assert_eq!(raft["leader"], "node1");
    assert_eq!(raft["term"], 1);

    // Drain, then stop: the port refuses connections, even on the pooled client.
    let (status, body) = post_json(&http, &url(2, "/admin/drain"), json!({})).await?;
    assert_eq!(
        (status, body),
        (200, json!({"node_id": "node3", "draining": true}))
    );
    eventually("node3 to report drained", || async {
        let (_, m) = get_json(&http, &url(0, "/admin/cluster/members"))
            .await
            .ok()?;
        (m[2]["state"] == "drained").then_some(())
    })
    .await;
    let (status, out) = post_json(&http, &control("/sim/host/node3/stop"), json!({})).await?;
    assert_eq!((status, out["status"].clone()), (200, json!(0)));
    let err = http
        .get(url(2, "/health"))
        .send()
        .await
        .expect_err("a stopped node must not answer");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let fresh = reqwest::Client::new();
    let err = fresh
        .get(url(2, "/health"))
        .send()
        .await
        .expect_err("stopped");
    assert!(err.is_connect(), "{err:?}");

    // Install: bad semver is a 400, an unknown release fails like cargo, a known one works.
    let (status, _) = post_json(
        &http,
        &control("/sim/host/node3/install"),
        json!({"version": "X.Y.Z"}),
    )
    .await?;
    assert_eq!(status, 400);
    let (_, out) = post_json(
        &http,
        &control("/sim/host/node3/install"),
        json!({"version": "0.11.9"}),
    )
    .await?;
    assert_eq!(out["status"], 101);
    assert!(out["stderr"]
        .as_str()
        .unwrap_or("")
        .contains("could not find `neumann`"));
    let (_, out) = post_json(
        &http,
        &control("/sim/host/node3/install"),
        json!({"version": "0.11.0"}),
    )
    .await?;
    assert_eq!(out["status"], 0);

    // Start returns at launch; /health answers once the process is up.
    let (_, out) = post_json(&http, &control("/sim/host/node3/start"), json!({})).await?;
    assert_eq!(out["status"], 0);
    let h = eventually("node3 to answer /health again", || async {
        let (status, h) = get_json(&http, &url(2, "/health")).await.ok()?;
        (status == 200 && h["replication_lag_ms"] == 0).then_some(h)
    })
    .await;
    assert_eq!(h["version"], "0.11.0");
    assert_eq!(h["joined"], true);
    assert_eq!(h["draining"], false);

    // Leadership transfer: bad body, unknown node, then an accepted one.
    let resp = http
        .post(url(0, "/admin/raft/transfer-leadership"))
        .body("not json")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.json::<Value>().await?["error"].is_string());
    let (status, _) = post_json(
        &http,
        &url(0, "/admin/raft/transfer-leadership"),
        json!({"to": "node30"}),
    )
    .await?;
    assert_eq!(status, 404);
    let (status, body) = post_json(
        &http,
        &url(0, "/admin/raft/transfer-leadership"),
        json!({"to": "node3"}),
    )
    .await?;
    assert_eq!(
        (status, body["from"].clone(), body["term"].clone()),
        (200, json!("node1"), json!(2))
    );
    eventually("node3 to lead", || async {
        let (_, r) = get_json(&http, &url(1, "/admin/raft/status")).await.ok()?;
        (r["leader"] == "node3").then_some(())
    })
    .await;
    let (status, body) = post_json(&http, &url(0, "/admin/snapshot"), json!({})).await?;
    assert_eq!(
        (status, body),
        (409, json!({"error": "not the leader; leader is node3"}))
    );
    let (status, tx) = post_json(&http, &url(0, "/admin/test-transaction"), json!({})).await?;
    assert_eq!((status, tx["leader"].clone()), (200, json!("node3")));

    // Control API errors are JSON.
    let (status, e) = post_json(
        &http,
        &control("/sim/fault"),
        json!({"node": "node2", "kind": "melt"}),
    )
    .await?;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap_or("").contains("slow_catchup"));
    let (status, _) = post_json(
        &http,
        &control("/sim/fault"),
        json!({"node": "node20", "kind": "hang"}),
    )
    .await?;
    assert_eq!(status, 404);
    let (status, _) = get_json(&http, &control("/sim/nope")).await?;
    assert_eq!(status, 404);

    // A drained stop lost no write and the invariants held.
    let (_, stats) = get_json(&http, &control("/sim/stats")).await?;
    let stats: SimStats = serde_json::from_value(stats)?;
    assert_eq!(stats.client_writes_failed, 0, "{:?}", sim.events());
    assert!(stats.client_writes_ok > 0);
    assert_eq!(stats.max_leaders_in_a_term, 1);
    assert_eq!(stats.lost_committed_writes, 0);
    assert_eq!(stats.elections, 1);
    // The in-process view agrees with the HTTP one; writes keep committing between the two reads.
    let now = sim.stats();
    assert!(now.client_writes_ok >= stats.client_writes_ok);
    assert_eq!(
        (
            now.client_writes_failed,
            now.elections,
            now.lost_committed_writes
        ),
        (0, 1, 0)
    );
    let (_, events) = get_json(&http, &control("/sim/events?since=0")).await?;
    let events: Vec<SimEvent> = serde_json::from_value(events)?;
    for kind in [
        "drain",
        "stop",
        "install",
        "start",
        "rejoined",
        "caught_up",
        "transfer",
        "elected",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.kind == kind
                    && (kind == "transfer" || e.node.as_deref() == Some("node3"))),
            "no {kind} event in {events:?}"
        );
    }
    // A hung node accepts the connection and never answers.
    let (status, _) = post_json(
        &http,
        &control("/sim/fault"),
        json!({"node": "node2", "kind": "hang"}),
    )
    .await?;
    assert_eq!(status, 200);
    let err = http
        .get(url(1, "/health"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("hung");
    assert!(err.is_timeout(), "{err:?}");
    sim.inject("node2", FaultKind::Heal)?;
    let (status, _) = get_json(&http, &url(1, "/health")).await?;
    assert_eq!(status, 200);

    let (status, _) = get_json(&http, &control("/sim/events?since=abc")).await?;
    assert_eq!(status, 400);

    let addr = nodes[0].1.clone();
    let control_url = control("/sim/stats");
    sim.shutdown().await;
    assert!(fresh.get(format!("{addr}/health")).send().await.is_err());
    assert!(fresh.get(control_url).send().await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_drain_costs_writes_and_flaky_nodes_fail_some_requests() -> TestResult {
    let sim = Simulator::start(SimConfig {
        speed: 50.0,
        seed: Some(2),
        faults: vec![
            ("node1".into(), FaultKind::Flaky),
            ("node3".into(), FaultKind::Crash),
        ],
        ..SimConfig::default()
    })
    .await?;
    let nodes = sim.nodes();
    let http = reqwest::Client::new();
    // Crashed from the start: the port is reserved but closed until the node is started.
    let err = http
        .get(format!("{}/health", nodes[2].1))
        .send()
        .await
        .expect_err("crashed");
    assert!(err.is_connect(), "{err:?}");
    let start = format!("http://{}/sim/host/node3/start", sim.control_addr());
    let (_, out) = post_json(&http, &start, json!({})).await?;
    assert_eq!(out["status"], 0);
    eventually("node3 to serve after its start", || async {
        let resp = http
            .get(format!("{}/health", nodes[2].1))
            .send()
            .await
            .ok()?;
        (resp.status() == 200).then_some(())
    })
    .await;
    let control = format!("http://{}/sim/host/node2/restart", sim.control_addr());
    let (_, out) = post_json(&http, &control, json!({})).await?;
    assert_eq!(out["status"], 0);
    eventually("write failures from the undrained restart", || async {
        (sim.stats().client_writes_failed > 0).then_some(())
    })
    .await;

    let mut flaky = 0;
    for _ in 0..40 {
        let (status, body) = get_json(&http, &format!("{}/health", nodes[0].1)).await?;
        if status == 503 {
            assert_eq!(body, json!({"error": "flaky: injected"}));
            flaky += 1;
        }
    }
    assert!((2..=25).contains(&flaky), "{flaky} of 40 flaky");
    assert!(matches!(
        sim.inject("node10", FaultKind::Crash),
        Err(SimError::UnknownNode(_))
    ));
    assert!("melt".parse::<FaultKind>().is_err());
    assert_eq!("slow_catchup".parse::<FaultKind>()?, FaultKind::SlowCatchup);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_by_group_and_on_events_through_the_control_api() -> TestResult {
    let sim = Simulator::start(SimConfig {
        nodes: 5,
        speed: 50.0,
        seed: Some(4),
        ..SimConfig::default()
    })
    .await?;
    let control = |path: &str| format!("http://{}{path}", sim.control_addr());
    let http = reqwest::Client::new();

    for (body, why) in [
        (
            json!({"kind": "crash", "groups": [["node1"]]}),
            "goes with kind `partition`",
        ),
        (
            json!({"kind": "partition", "groups": [["node1"], ["node1"]]}),
            "in two groups",
        ),
        (
            json!({"kind": "partition", "groups": [["node9"]]}),
            "unknown node `node9`",
        ),
        (
            json!({"kind": "partition", "groups": "node1"}),
            "array of arrays",
        ),
        (
            json!({"node": "node2", "kind": "crash", "when": "soon"}),
            "must be an object",
        ),
        (
            json!({"node": "node2", "kind": "crash", "when": {"event": "stop"}}),
            "`node`",
        ),
    ] {
        let (status, answer) = post_json(&http, &control("/sim/fault"), body.clone()).await?;
        assert!(status == 400 || status == 404, "{body}: {status}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{body}: {message}");
    }

    // A split leaving node1 (the leader) with node4 in the minority: the other side elects.
    let (status, _) = post_json(
        &http,
        &control("/sim/fault"),
        json!({"kind": "partition", "groups": [["node1", "node4"], ["node2", "node3", "node5"]]}),
    )
    .await?;
    assert_eq!(status, 200);
    let elected = eventually("the majority side to elect", || async {
        sim.events()
            .into_iter()
            .find(|e| e.kind == "elected")
            .and_then(|e| e.node)
    })
    .await;
    assert!(
        ["node2", "node3", "node5"].contains(&elected.as_str()),
        "{elected}"
    );
    let stats = sim.stats();
    assert_eq!((stats.leader_losses, stats.max_leaders_in_a_term), (1, 1));
    sim.inject("node1", FaultKind::Heal)?;

    // Armed: node3 crashes the moment node2 is told to stop, inside the simulator.
    let (status, _) = post_json(
        &http,
        &control("/sim/fault"),
        json!({"node": "node3", "kind": "crash", "when": {"event": "stop", "node": "node2"}}),
    )
    .await?;
    assert_eq!(status, 200);
    assert!(sim.events().iter().all(|e| e.kind != "crash"));
    let (status, _) = post_json(&http, &control("/sim/host/node2/stop"), json!({})).await?;
    assert_eq!(status, 200);
    let events = sim.events();
    let stop = events.iter().find(|e| e.kind == "stop").expect("stop");
    let crash = events.iter().find(|e| e.kind == "crash").expect("crash");
    assert_eq!((crash.node.as_deref(), crash.t), (Some("node3"), stop.t));

    let (_, clock) = get_json(&http, &control("/sim/clock")).await?;
    let t = clock["t"].as_f64().unwrap_or_default();
    // JSON's decimal may round the last bit either way.
    assert!(t > 0.0 && sim.clock() >= t - 1e-9, "{clock}");
    sim.shutdown().await;
    Ok(())
}

/// The event log up to `until` simulated seconds of a simulator started with these timed faults, read
/// over HTTP once its clock is past that. With `busy`, a thread spins beside it and every node's admin
/// API is read all along (metrics, health, a flaky node's coin): what the machine does must not show.
async fn timed_run(
    seed: u64,
    busy: bool,
    until: f64,
) -> Result<Vec<SimEvent>, Box<dyn std::error::Error>> {
    let fault = |at: f64, node: &str, kind| (at, node.to_string(), kind);
    let sim = Simulator::start(SimConfig {
        speed: 20.0,
        seed: Some(seed),
        faults: vec![("node2".into(), FaultKind::Flaky)],
        timed_faults: vec![
            fault(1.0, "node1", FaultKind::Crash),
            fault(2.0, "node3", FaultKind::Partition),
            fault(3.0, "node3", FaultKind::Heal),
            fault(3.5, "node2", FaultKind::Hang),
            fault(4.2, "node2", FaultKind::Heal),
        ],
        ..SimConfig::default()
    })
    .await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    if busy {
        let spin = stop.clone();
        load.push(tokio::task::spawn_blocking(move || {
            let mut x = 0u64;
            while !spin.load(std::sync::atomic::Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }));
        for (_, url) in sim.nodes() {
            let (reading, http) = (stop.clone(), reqwest::Client::new());
            load.push(tokio::spawn(async move {
                while !reading.load(std::sync::atomic::Ordering::Relaxed) {
                    for path in ["/metrics", "/health", "/admin/cluster/members"] {
                        let _ = http
                            .get(format!("{url}{path}"))
                            .timeout(Duration::from_millis(50))
                            .send()
                            .await;
                    }
                }
            }));
        }
    }
    let control = format!("http://{}", sim.control_addr());
    let http = reqwest::Client::new();
    eventually("the clock to pass the window", || async {
        let (_, c) = get_json(&http, &format!("{control}/sim/clock"))
            .await
            .ok()?;
        (c["t"].as_f64()? > until).then_some(())
    })
    .await;
    let (_, events) = get_json(&http, &format!("{control}/sim/events?until={until}")).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    sim.shutdown().await;
    Ok(serde_json::from_value(events)?)
}

/// Over HTTP too, the same seed and the same faults at the same simulated moments give the same event
/// log, whether the machine is quiet or busy and the nodes read hard; another seed gives another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_and_timed_faults_replay_over_http_under_load() -> TestResult {
    let quiet = timed_run(9, false, 6.0).await?;
    let busy = timed_run(9, true, 6.0).await?;
    for kind in ["crash", "elected", "fault", "leader_lost", "write_failed"] {
        assert!(
            quiet.iter().any(|e| e.kind == kind),
            "no {kind} in {quiet:?}"
        );
    }
    assert!(quiet.iter().all(|e| e.t <= 6.0));
    assert_eq!(quiet, busy);
    let other = timed_run(10, false, 6.0).await?;
    assert_ne!(quiet, other);
    Ok(())
}

/// The leader restarted in place over the control API, at x2 and at x50: the same hand-over, the same
/// 1.5 s without the node (the start is the simulator's, not the caller's), and the same writes lost to it:
/// its share for as long as it is down. Only the slice the request lands at is the real clock's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_restart_costs_the_same_at_any_speed() -> TestResult {
    let mut failed = Vec::new();
    for speed in [2.0, 50.0] {
        let sim = Simulator::start(SimConfig {
            speed,
            seed: Some(3),
            ..SimConfig::default()
        })
        .await?;
        let http = reqwest::Client::new();
        let control = |path: &str| format!("http://{}{path}", sim.control_addr());
        eventually("a second of load", || async {
            (sim.clock() > 1.0).then_some(())
        })
        .await;
        let (_, out) = post_json(&http, &control("/sim/host/node1/restart"), json!({})).await?;
        assert_eq!(out["status"], 0, "{out}");
        let done = sim.clock() + 4.0;
        eventually("the writes' deadlines", || async {
            (sim.clock() > done).then_some(())
        })
        .await;
        let s = sim.stats();
        assert_eq!((s.leader_losses, s.elections), (0, 1), "x{speed}: {s:?}");
        failed.push(s.client_writes_failed);
        sim.shutdown().await;
    }
    assert!(
        failed.iter().all(|f| (140..=160).contains(f)),
        "failed writes at x2 and x50: {failed:?}"
    );
    Ok(())
}
