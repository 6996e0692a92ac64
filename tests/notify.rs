//! Webhooks (`--notify URL`, `[notify] webhooks`): real HTTP receivers on loopback collect what the run
//! posts; the run's effect on the cluster is judged by the simulator's records.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{expect, journal_events, text, without_proxies, Cluster};

/// A receiver that answers 200 to every POST and keeps the JSON bodies in arrival order.
struct Receiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(c: &Cluster) -> Receiver {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let kept = posts.clone();
        let listener = c
            .tokio
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |axum::Json(body): axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(body);
                    "ok"
                }
            },
        ));
        c.tokio
            .spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, posts }
    }

    /// A URL on this receiver with a secret in its path, as Slack's carry.
    fn url(&self) -> String {
        format!("http://{}/services/T000/B000/sekrit-token", self.addr)
    }

    fn posts(&self) -> Vec<Value> {
        self.posts.lock().unwrap().clone()
    }
}

/// The binary against `c`. Webhook posts honour the proxy environment (receivers are usually on the
/// internet); the receivers here are on loopback, so a proxy set where the tests run must not see them.
fn run(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut cmd = c.cmd();
    without_proxies(&mut cmd);
    cmd.args(args).output().unwrap()
}

/// A port where nothing listens: bound, then closed.
fn closed_port(c: &Cluster) -> SocketAddr {
    let l = c
        .tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    l.local_addr().unwrap()
}

/// A receiver that accepts connections and never answers (kept open until the test ends).
fn hanging(c: &Cluster) -> SocketAddr {
    let l = c
        .tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = l.local_addr().unwrap();
    c.tokio.spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    addr
}

/// The run's course as posted: run_start first, run_end last, every step_start followed by its own
/// step_end before any enclosing step ends (steps may nest), all of one run.
fn course_in_order(posts: &[Value]) -> Result<(), String> {
    let kinds: Vec<&str> = posts
        .iter()
        .map(|p| p["event"].as_str().unwrap_or(""))
        .collect();
    if kinds.first() != Some(&"run_start") {
        return Err(format!("the first post is not run_start: {kinds:?}"));
    }
    if kinds.last() != Some(&"run_end") {
        return Err(format!("the last post is not run_end: {kinds:?}"));
    }
    let id = &posts[0]["run_id"];
    let mut open: Vec<&str> = Vec::new();
    for p in posts {
        if &p["run_id"] != id || id.as_str().unwrap_or("").is_empty() {
            return Err(format!("a post of another run: {p}"));
        }
        let name = p["name"].as_str().unwrap_or("");
        match p["event"].as_str() {
            Some("step_start") => open.push(name),
            Some("step_end") if open.last() == Some(&name) => {
                open.pop();
            }
            Some("step_end") => {
                return Err(format!("step `{name}` ended while {open:?} were open"))
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(format!("steps never ended: {open:?}"))
    }
}

/// Lines of stderr that warn about this receiver.
fn warnings_about(stderr: &str, addr: SocketAddr) -> usize {
    let needle = format!("warning: webhook http://{addr}/");
    stderr.lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn the_checks_fire() {
    let post =
        |event: &str, name: &str| serde_json::json!({"run_id": "r", "event": event, "name": name});
    let good = vec![
        post("run_start", ""),
        post("step_start", "a"),
        post("step_start", "b"),
        post("step_end", "b"),
        post("step_end", "a"),
        post("run_end", ""),
    ];
    assert_eq!(course_in_order(&good), Ok(()));
    let reversed: Vec<Value> = good.iter().rev().cloned().collect();
    assert!(course_in_order(&reversed).is_err());
    let mut crossed = good.clone();
    crossed.swap(3, 4);
    assert!(course_in_order(&crossed)
        .unwrap_err()
        .contains("ended while"));
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let twice = "12:00:00  warning: webhook http://127.0.0.1:9/…: x\n12:00:01  warning: webhook http://127.0.0.1:9/…: y\n";
    assert_eq!(warnings_about(twice, addr), 2);
}

#[test]
fn a_rolling_upgrade_is_told_step_by_step() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::start(&c);
    let journal = c.dir.path().join("j.jsonl");
    let out = run(
        &c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--notify",
            &r.url(),
            "--yes",
            "rolling_upgrade.rhai",
            "0.11.0",
        ],
    );
    let (_, stderr) = expect(&out, 0);
    assert_eq!(c.version_list(), ["0.11.0", "0.11.0", "0.11.0"]);
    let posts = r.posts();
    course_in_order(&posts).unwrap();
    let end = posts.last().unwrap();
    assert_eq!(end["result"], "done", "{end}");
    assert!(end["text"].as_str().unwrap().contains("done in"), "{end}");
    // One step per node was told, started and ended, as the simulator saw each node's new build
    // installed (staged and activated, by default).
    let ended: Vec<&str> = posts
        .iter()
        .filter(|p| p["event"] == "step_end" && p["result"] == "ok")
        .filter_map(|p| p["name"].as_str())
        .collect();
    let installs = c.events_of(&["install", "activate"]).len();
    assert_eq!(installs, 3);
    assert_eq!(
        ended.iter().filter(|n| n.starts_with("upgrade ")).count(),
        installs,
        "{ended:?}"
    );
    assert!(ended.contains(&"upgrade follower node2 (1/3)"), "{ended:?}");
    // Every post names the run as the journal does, the cluster, and reads as one line.
    let journaled = crate::support::journal(&journal).swap_remove(0);
    for p in &posts {
        assert_eq!(p["run_id"], journaled["run_id"]);
        assert!(
            p["cluster"].as_str().unwrap().ends_with("cluster.toml"),
            "{p}"
        );
        let t = p["text"].as_str().unwrap();
        assert!(
            t.starts_with("neumann-script run ") && !t.contains('\n'),
            "{t}"
        );
        assert!(p["time"].as_str().unwrap().ends_with('Z'));
    }
    let step_text = posts
        .iter()
        .find(|p| p["event"] == "step_end" && p["name"] == "upgrade follower node2 (1/3)")
        .unwrap()["text"]
        .clone();
    assert!(
        step_text
            .as_str()
            .unwrap()
            .contains("step `upgrade follower node2 (1/3)` done in"),
        "{step_text}"
    );
    assert!(!stderr.contains("warning: webhook"), "{stderr}");
}

#[test]
fn a_safe_stop_is_told_from_the_inventorys_receivers() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::start(&c);
    let mut toml = std::fs::read_to_string(&c.inventory).unwrap();
    toml.push_str(&format!("\n[notify]\nwebhooks = [{:?}]\n", r.url()));
    std::fs::write(&c.inventory, toml).unwrap();
    let script = c.dir.path().join("two.rhai");
    std::fs::write(
        &script,
        "step(\"stop two of three\", || { node::stop(\"node2\"); node::stop(\"node3\"); });\n",
    )
    .unwrap();
    let out = run(&c, &[script.to_str().unwrap()]);
    expect(&out, 3);
    // The interlock refused the second stop: the simulator saw one.
    assert_eq!(
        c.events_of(&["stop"]),
        [("stop".to_string(), "node2".to_string())]
    );
    let posts = r.posts();
    course_in_order(&posts).unwrap();
    let end = posts.last().unwrap();
    assert_eq!(end["result"], "stopped", "{end}");
    assert_eq!(end["exit_code"], 3);
    let t = end["text"].as_str().unwrap();
    assert!(
        t.contains(": stopped safely: ") && t.contains("two.rhai"),
        "{t}"
    );
    let step = posts.iter().find(|p| p["event"] == "step_end").unwrap();
    assert_eq!(step["result"], "failed", "{step}");
    // A snippet reads the cluster and does not tell the inventory's receivers.
    let before = r.posts().len();
    expect(&run(&c, &["-e", "cluster::health()"]), 0);
    assert_eq!(r.posts().len(), before);
}

#[test]
fn receivers_that_are_down_or_hang_never_hold_up_the_run() {
    let c = Cluster::start(3, "0.10.4");
    let down = closed_port(&c);
    let hung = hanging(&c);
    let journal = c.dir.path().join("j.jsonl");
    let script = c.dir.path().join("steps.rhai");
    // Ten step events, each a post to both receivers; a post waited for on the script's thread would
    // cost the hanging receiver's 3 s timeout each: 30 s of real time.
    std::fs::write(
        &script,
        "let t0 = now();\nfor i in 0..5 { step(`look ${i}`, || { cluster::health(); }); }\nprint(`script secs ${now() - t0}`);\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = run(
        &c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--notify",
            &format!("http://{down}/hook/sekrit-token"),
            "--notify",
            &format!("http://{hung}/hook?token=sekrit-token"),
            script.to_str().unwrap(),
        ],
    );
    let took = started.elapsed();
    let (stdout, stderr) = expect(&out, 0);
    // In the script's own clock (the simulator's, at x20): 30 real seconds would be 600.
    let secs: f64 = stdout
        .trim()
        .strip_prefix("script secs ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs < 200.0, "the script took {secs} simulated seconds");
    // Whole run: a few seconds plus at most 3 s of draining; 30 s would mean posts were waited for.
    assert!(
        took < Duration::from_secs(30),
        "the run took {took:?}\n{stderr}"
    );
    assert_eq!(warnings_about(&stderr, down), 1, "{stderr}");
    assert_eq!(warnings_about(&stderr, hung), 1, "{stderr}");
    assert!(stderr.contains("events not delivered"), "{stderr}");
    let written = std::fs::read_to_string(&journal).unwrap();
    assert!(!stderr.contains("sekrit") && !written.contains("sekrit"));
    let failed = journal_events(&journal, "notify_failed");
    let urls: Vec<&str> = failed.iter().filter_map(|r| r["url"].as_str()).collect();
    assert_eq!(failed.len(), 2, "{failed:?}\n{stderr}");
    assert!(
        urls.contains(&format!("http://{down}/…").as_str()),
        "{urls:?}"
    );
    assert!(
        urls.contains(&format!("http://{hung}/…").as_str()),
        "{urls:?}"
    );
    let down_error = failed
        .iter()
        .find(|r| r["url"] == format!("http://{down}/…"))
        .unwrap();
    assert_eq!(down_error["error"], "connection refused");
}

#[test]
fn bad_webhook_urls_are_usage_errors() {
    let c = Cluster::start(3, "0.10.4");
    for bad in ["ftp://example.com/hook", "hooks.example.com/x", "https://"] {
        let out = run(&c, &["--notify", bad, "rolling_upgrade.rhai", "0.11.0"]);
        let (_, stderr) = expect(&out, 2);
        assert!(stderr.contains("--notify: webhook"), "{bad}: {stderr}");
    }
    let mut toml = std::fs::read_to_string(&c.inventory).unwrap();
    toml.push_str(
        "\n[notify]\nwebhooks = [\"https://hooks.example.com/a\", \"gopher://x/sekrit\"]\n",
    );
    std::fs::write(&c.inventory, toml).unwrap();
    let out = run(&c, &["rolling_upgrade.rhai", "0.11.0"]);
    let (_, stderr) = expect(&out, 2);
    assert!(stderr.contains("[notify] webhooks #2"), "{stderr}");
    assert!(!stderr.contains("sekrit"), "{stderr}");
    assert!(c.events_of(&["drain", "stop", "install"]).is_empty());
    assert!(text(&out.stdout).is_empty());
}
