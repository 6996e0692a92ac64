//! The run lease over HTTP, on a whole simulator: any node answers, requests wait for their holder, an
//! unrenewed lease expires, a warp keeps it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::sim::{SimConfig, Simulator};

async fn call(method: reqwest::Method, url: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn asking(run_id: &str, ttl: f64) -> Value {
    json!({"run_id": run_id, "holder": format!("op@h pid {run_id}"), "script": "up.rhai",
           "args": ["0.11.0"], "ttl_secs": ttl, "step": null})
}

#[tokio::test]
async fn one_holder_at_a_time_any_node_answers_and_an_unrenewed_lease_expires() {
    let sim = Simulator::start(SimConfig {
        speed: 50.0,
        seed: Some(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let nodes = sim.nodes();
    let lease = |i: usize, path: &str| format!("{}/admin/lease{path}", nodes[i].1);
    use reqwest::Method as M;

    let (s, v) = call(M::POST, &lease(0, ""), asking("1", 30.0)).await;
    assert_eq!(
        (s, v["lease"]["holder"].as_str()),
        (200, Some("op@h pid 1"))
    );
    // Another run, through another node: refused, naming the holder.
    let (s, v) = call(M::POST, &lease(2, ""), asking("2", 30.0)).await;
    assert_eq!(s, 409);
    assert_eq!(v["lease"]["run_id"], "1");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("op@h pid 1 (up.rhai 0.11.0)"),
        "{v}"
    );

    // A request waits on the lease for its holder, and survives a renewal with a new step.
    let (s, _) = call(
        M::POST,
        &lease(1, "/request"),
        json!({"action": "pause", "by": "b@h", "reason": "r"}),
    )
    .await;
    assert_eq!(s, 200);
    let mut renewal = asking("1", 30.0);
    renewal["step"] = json!("upgrade node2");
    let (s, v) = call(M::POST, &lease(1, ""), renewal).await;
    assert_eq!(s, 200);
    assert_eq!(v["lease"]["request"]["action"], "pause");
    assert_eq!(v["lease"]["step"], "upgrade node2");
    let (s, _) = call(M::POST, &lease(0, "/request"), json!({"action": "explode"})).await;
    assert_eq!(s, 400);

    // Only the holder's run id releases it.
    let (s, _) = call(M::DELETE, &lease(0, ""), json!({"run_id": "2"})).await;
    assert_eq!(s, 409);
    let (s, _) = call(M::DELETE, &lease(0, ""), json!({"run_id": "1"})).await;
    assert_eq!(s, 200);
    let (s, v) = call(M::GET, &lease(2, ""), Value::Null).await;
    assert_eq!((s, &v["lease"]), (200, &Value::Null));
    let (s, _) = call(
        M::POST,
        &lease(0, "/request"),
        json!({"action": "abort", "by": "b", "reason": ""}),
    )
    .await;
    assert_eq!(s, 404);

    // Not renewed: gone after its TTL, and logged.
    let (s, _) = call(M::POST, &lease(0, ""), asking("3", 0.3)).await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !call(M::GET, &lease(1, ""), Value::Null).await.1["lease"].is_null() {
        assert!(Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let details: Vec<String> = sim
        .events()
        .into_iter()
        .filter(|e| e.kind == "lease")
        .map(|e| e.detail)
        .collect();
    assert_eq!(details.len(), 6, "{details:?}");
    assert!(
        details[0].starts_with("acquired by op@h pid 1 (up.rhai 0.11.0)"),
        "{details:?}"
    );
    assert!(
        details[1].starts_with("request pause by b@h"),
        "{details:?}"
    );
    assert_eq!(details[2], "op@h pid 1: step upgrade node2");
    assert_eq!(details[3], "released by op@h pid 1");
    assert!(details[5].starts_with("expired: op@h pid 3"), "{details:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_request_stays_until_its_holder_acknowledges_it_and_paused_is_the_holders_word() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let url = format!("{}/admin/lease", sim.nodes()[0].1);
    use reqwest::Method as M;
    assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
    let ask = |action: &str| json!({"action": action, "by": "b@h", "reason": "r"});
    let (_, first) = call(M::POST, &format!("{url}/request"), ask("pause")).await;
    let (_, second) = call(M::POST, &format!("{url}/request"), ask("resume")).await;
    let (one, two) = (&first["request"]["id"], &second["request"]["id"]);
    assert!(one.as_u64().unwrap() < two.as_u64().unwrap(), "{one} {two}");

    // The newer request replaced the older; acknowledging the older one does not drop it.
    let mut renewal = asking("1", 30.0);
    renewal["ack"] = one.clone();
    let (_, v) = call(M::POST, &url, renewal.clone()).await;
    assert_eq!(v["lease"]["request"]["action"], "resume", "{v}");
    // A renewal without `ack` keeps it; one naming it drops it, and `paused` is as the holder sent it.
    renewal.as_object_mut().unwrap().remove("ack");
    renewal["paused"] = json!({"by": "b@h", "reason": "r", "at": "checkpoint", "since": 1.0});
    let (_, v) = call(M::POST, &url, renewal.clone()).await;
    assert_eq!(v["lease"]["request"]["id"], *two, "{v}");
    assert_eq!(v["lease"]["paused"]["by"], "b@h", "{v}");
    renewal["ack"] = two.clone();
    renewal["paused"] = Value::Null;
    let (_, v) = call(M::POST, &url, renewal).await;
    assert_eq!(v["lease"]["request"], Value::Null, "{v}");
    assert_eq!(v["lease"]["paused"], Value::Null, "{v}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_warp_simulates_its_time_flat_out_and_keeps_the_lease_of_a_holder_it_did_not_wait_for() {
    // At speed 1 an hour of paced time is an hour: only a warp gets through it in a test.
    let sim = Simulator::start(SimConfig {
        seed: Some(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/admin/lease", sim.nodes()[0].1);
    let control = format!("http://{}", sim.control_addr());
    use reqwest::Method as M;
    assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
    let writes = sim.stats().client_writes_ok;
    // The holder renews as it would, in real time, while the hour is simulated.
    let renewing = {
        let url = url.clone();
        tokio::spawn(async move {
            loop {
                assert_eq!(call(M::POST, &url, asking("1", 30.0)).await.0, 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (s, v) = call(
        M::POST,
        &format!("{control}/sim/sleep"),
        json!({"secs": 3600, "warp": true}),
    )
    .await;
    renewing.abort();
    assert_eq!(s, 200, "{v}");
    assert!(v["t"].as_f64().unwrap() >= 3600.0, "{v}");
    // The hour was simulated, clients included (300 writes a second), not skipped.
    let done = sim.stats().client_writes_ok - writes;
    assert!(done > 1_000_000, "{done} writes in a warped hour");
    // 3600 s past a 30 s TTL, and past every renewal made during the warp, the lease still stands: its
    // holder's real seconds did not pass. (A lease whose expiry the world's time has passed is
    // dropped: the test above sees one go.)
    let (_, v) = call(M::GET, &url, Value::Null).await;
    assert_eq!(v["lease"]["run_id"], "1", "{v}");
    // Paced time goes on from where the warp left it, not back.
    let (_, c) = call(M::GET, &format!("{control}/sim/clock"), Value::Null).await;
    assert!(c["t"].as_f64().unwrap() >= 3600.0, "{c}");
    sim.shutdown().await;
}

#[tokio::test]
async fn without_the_lease_api_the_paths_are_404() {
    let sim = Simulator::start(SimConfig {
        lease_api: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/admin/lease", sim.nodes()[0].1);
    let (s, v) = call(reqwest::Method::POST, &url, asking("1", 30.0)).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"], "no such endpoint: POST /admin/lease");
    sim.shutdown().await;
}
