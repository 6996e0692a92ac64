//! Webhooks (`--notify URL`, `[notify] webhooks`, `--notify-on`, `notify_on`): real HTTP receivers on
//! loopback collect what the run posts, answering as each test says (200, 503, 400, or not at all) and
//! keeping every attempt; the run's effect on the cluster is judged by the simulator's records.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    bare_command, expect, journal, journal_events, text, without_proxies, Cluster, Running,
    PROXY_VARS,
};

/// What a receiver does with its nth request (counted from 0 over all events).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Status(u16),
    /// Never answers: the poster's timeout is what ends the request.
    Hang,
}

/// One request as the receiver saw it: the body and what it answered.
type Seen = (Value, Answer);

/// A receiver that answers each POST as `answer` says and keeps every request in arrival order.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    /// Answers 200 to every POST.
    fn start(c: &Cluster) -> Receiver {
        Receiver::answering(c, |_| Answer::Status(200))
    }

    fn answering(
        c: &Cluster,
        answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let answer = Arc::new(answer);
        let listener = c
            .tokio
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(axum::routing::post(
            move |axum::Json(body): axum::Json<Value>| {
                let kept = kept.clone();
                let answer = answer.clone();
                async move {
                    let said = {
                        let mut kept = kept.lock().unwrap();
                        let said = answer(kept.len());
                        kept.push((body, said));
                        said
                    };
                    match said {
                        Answer::Status(code) => {
                            (axum::http::StatusCode::from_u16(code).unwrap(), "answered")
                        }
                        Answer::Hang => std::future::pending().await,
                    }
                }
            },
        ));
        c.tokio
            .spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, seen }
    }

    /// A URL on this receiver with a secret in its path, as Slack's carry.
    fn url(&self) -> String {
        format!("http://{}/services/T000/B000/sekrit-token", self.addr)
    }

    /// The events it took (answered 2xx), in order.
    fn posts(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| matches!(a, Answer::Status(200..=299)))
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// Every request, as (event kind, answer).
    fn attempts(&self) -> Vec<(String, Answer)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(b, a)| (b["event"].as_str().unwrap_or("").to_string(), *a))
            .collect()
    }

    /// The bodies posted again right after themselves: retries (a retry posts the same body, `time`
    /// included, before anything later).
    fn retried(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .map(|w| w[1].0["event"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn took(&self, kind: &str) -> bool {
        self.posts().iter().any(|p| p["event"] == kind)
    }
}

/// The binary against `c`. Webhook posts honour the proxy environment (receivers are usually on the
/// internet); the receivers here are on loopback, so a proxy set where the tests run must not see them.
fn run(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut cmd = c.cmd();
    without_proxies(&mut cmd);
    cmd.args(args).output().unwrap()
}

/// The binary against `c` in the background, for a run held at a gate.
fn start(c: &Cluster, args: &[&str]) -> Running {
    let mut cmd = c.command();
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    Running::of(cmd.args(args).spawn().unwrap())
}

/// A script that looks, stops at a gate, and looks again: a run that stays open, paused, until the test
/// has seen what it waits for and resumes it (so no assertion races the end of the run's drain).
fn gated(c: &Cluster) -> String {
    let script = c.dir.path().join("gated.rhai");
    std::fs::write(
        &script,
        "step(\"look\", || { cluster::health(); });\ngate(\"hold\");\nstep(\"look again\", || { cluster::health(); });\n",
    )
    .unwrap();
    script.display().to_string()
}

/// Holds `run` until the receiver has taken `paused` (everything before it taken, since a receiver's
/// events go in order), then resumes it and returns its output.
fn resume_once_taken(c: &Cluster, run: Running, r: &Receiver) -> std::process::Output {
    resume_once(c, run, "the receiver to take `paused`", || r.took("paused"))
}

fn resume_once(
    c: &Cluster,
    mut run: Running,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> std::process::Output {
    run.wait_until(what, |_| done());
    expect(&c.run(&["resume"]), 0);
    run.finish()
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
    // Refused on every retry; had the run's end cut the retries short, the error says so after it.
    assert!(
        down_error["error"]
            .as_str()
            .unwrap()
            .starts_with("connection refused"),
        "{down_error}"
    );
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

#[test]
fn a_receiver_answering_503_twice_gets_the_event_once() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::answering(&c, |n| Answer::Status(if n < 2 { 503 } else { 200 }));
    let journal = c.dir.path().join("j.jsonl");
    let run = start(
        &c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--notify",
            &r.url(),
            &gated(&c),
        ],
    );
    let out = resume_once_taken(&c, run, &r);
    let (_, stderr) = expect(&out, 0);
    // The server saw run_start three times, answered 503, 503 and 200, and every later event once.
    let attempts = r.attempts();
    assert_eq!(
        attempts[..3],
        [
            ("run_start".to_string(), Answer::Status(503)),
            ("run_start".to_string(), Answer::Status(503)),
            ("run_start".to_string(), Answer::Status(200)),
        ],
        "{attempts:?}"
    );
    assert_eq!(r.retried(), ["run_start", "run_start"], "{attempts:?}");
    let posts = r.posts();
    course_in_order(&posts).unwrap();
    assert_eq!(
        posts.iter().filter(|p| p["event"] == "run_start").count(),
        1
    );
    assert_eq!(posts.len(), attempts.len() - 2, "{attempts:?}");
    // Delivered in the end: no failure told or journaled.
    assert!(!stderr.contains("warning: webhook"), "{stderr}");
    assert!(journal_events(&journal, "notify_failed").is_empty());
    assert!(journal_events(&journal, "notify_undelivered").is_empty());
}

#[test]
fn a_4xx_is_not_retried() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::answering(&c, |_| Answer::Status(400));
    let journaled = c.dir.path().join("j.jsonl");
    let script = c.dir.path().join("steps.rhai");
    std::fs::write(
        &script,
        "for i in 0..2 { step(`look ${i}`, || { cluster::health(); }); }\n",
    )
    .unwrap();
    let out = run(
        &c,
        &[
            "--journal",
            journaled.to_str().unwrap(),
            "--notify",
            &r.url(),
            script.to_str().unwrap(),
        ],
    );
    let (_, stderr) = expect(&out, 0);
    // Each event was posted once, the next one straight after it: no retry waited in between.
    let attempts = r.attempts();
    assert!(r.retried().is_empty(), "{attempts:?}");
    let posted: Vec<String> = attempts.iter().map(|(k, _)| k.clone()).collect();
    let course: Vec<String> = journal(&journaled)
        .iter()
        .filter_map(|l| l["event"].as_str().map(str::to_string))
        .filter(|k| !k.starts_with("notify_"))
        .collect();
    assert_eq!(posted, course);
    assert_eq!(posted.len(), 6, "{posted:?}");
    // Failed at once, and told once.
    assert_eq!(warnings_about(&stderr, r.addr), 1, "{stderr}");
    assert!(stderr.contains("HTTP 400 Bad Request;"), "{stderr}");
    assert!(stderr.contains("6 of 6 events not delivered"), "{stderr}");
    let failed = journal_events(&journaled, "notify_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["error"], "HTTP 400 Bad Request");
    assert_eq!(failed[0]["attempts"], 1);
    assert_eq!(failed[0]["posting"], "run_start");
}

#[test]
fn a_receiver_that_stays_down_gets_one_round_of_retries_then_one_post_an_event() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::answering(&c, |_| Answer::Status(503));
    let journal = c.dir.path().join("j.jsonl");
    let run = start(
        &c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--notify",
            &r.url(),
            &gated(&c),
        ],
    );
    let out = resume_once(&c, run, "the receiver to be sent `paused`", || {
        r.attempts().iter().any(|(k, _)| k == "paused")
    });
    let (_, stderr) = expect(&out, 0);
    let attempts = r.attempts();
    assert_eq!(
        r.retried(),
        ["run_start", "run_start", "run_start"],
        "{attempts:?}"
    );
    assert!(attempts[4..].iter().all(|(k, _)| k != "run_start"));
    assert!(attempts.len() > 6, "{attempts:?}");
    assert_eq!(warnings_about(&stderr, r.addr), 1, "{stderr}");
    assert!(
        stderr.contains("HTTP 503 Service Unavailable (4 attempts);"),
        "{stderr}"
    );
    let failed = journal_events(&journal, "notify_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempts"], 4);
    assert_eq!(failed[0]["posting"], "run_start");
}

#[test]
fn a_post_that_times_out_is_retried() {
    let c = Cluster::start(3, "0.10.4");
    // The first post is never answered: only the poster's timeout ends it.
    let r = Receiver::answering(&c, |n| {
        if n == 0 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    });
    let journal = c.dir.path().join("j.jsonl");
    let run = start(
        &c,
        &[
            "--journal",
            journal.to_str().unwrap(),
            "--notify",
            &r.url(),
            &gated(&c),
        ],
    );
    let out = resume_once_taken(&c, run, &r);
    let (_, stderr) = expect(&out, 0);
    let attempts = r.attempts();
    assert_eq!(
        attempts[..2],
        [
            ("run_start".to_string(), Answer::Hang),
            ("run_start".to_string(), Answer::Status(200)),
        ],
        "{attempts:?}"
    );
    assert_eq!(r.retried(), ["run_start"], "{attempts:?}");
    course_in_order(&r.posts()).unwrap();
    assert!(!stderr.contains("warning: webhook"), "{stderr}");
    assert!(journal_events(&journal, "notify_failed").is_empty());
}

/// The kinds a receiver took, in order.
fn kinds(posts: &[Value]) -> Vec<String> {
    posts
        .iter()
        .map(|p| p["event"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn notify_on_chooses_the_kinds_and_the_command_line_replaces_the_inventorys() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::start(&c);
    let script = c.dir.path().join("probe.rhai");
    std::fs::write(
        &script,
        "step(\"probe\", || { journal::event(\"probe_failed\", #{node: \"node2\"}); });\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let inventory = std::fs::read_to_string(&c.inventory).unwrap();
    let with = |notify: &str| {
        std::fs::write(
            &c.inventory,
            format!(
                "{inventory}\n[notify]\nwebhooks = [{:?}]\n{notify}",
                r.url()
            ),
        )
        .unwrap()
    };
    // Every kind by default: the script's own event too.
    with("");
    expect(&run(&c, &[script]), 0);
    assert_eq!(
        kinds(&r.posts()),
        [
            "run_start",
            "step_start",
            "probe_failed",
            "step_end",
            "run_end"
        ]
    );
    // The inventory's choice: step_end arrives, step_start does not.
    with("notify_on = [\"step_end\", \"run_end\"]\n");
    let before = r.posts().len();
    expect(&run(&c, &[script]), 0);
    assert_eq!(kinds(&r.posts()[before..]), ["step_end", "run_end"]);
    // The command line's replaces it: none of the inventory's kinds, and `script` is the script's own.
    let before = r.posts().len();
    expect(&run(&c, &["--notify-on", "run_start,script", script]), 0);
    assert_eq!(kinds(&r.posts()[before..]), ["run_start", "probe_failed"]);
    let before = r.posts().len();
    expect(
        &run(
            &c,
            &[
                "--notify-on",
                "run_start",
                "--notify-on",
                "step_start",
                script,
            ],
        ),
        0,
    );
    assert_eq!(kinds(&r.posts()[before..]), ["run_start", "step_start"]);
    // A snippet posts only to --notify receivers: with none, a choice of kinds is said to go nowhere.
    let before = r.posts().len();
    let (_, e) = expect(&run(&c, &["--notify-on", "run_start", "-e", "1"]), 0);
    assert!(
        e.contains("--notify-on: this run has no webhook to post to"),
        "{e}"
    );
    assert_eq!(r.posts().len(), before);
    // Unknown kinds are refused before anything runs, with the kinds to choose from.
    let (_, e) = expect(&run(&c, &["--notify-on", "step_ended", script]), 2);
    assert!(
        e.contains("'step_ended'") && e.contains("run_start, recovered, step_start, step_end"),
        "{e}"
    );
    with("notify_on = [\"run_start\", \"steps\"]\n");
    let (o, e) = expect(&run(&c, &[script]), 2);
    assert!(
        e.contains("[notify] notify_on: unknown event kind `steps`")
            && e.contains("run_start, recovered, step_start"),
        "{e}"
    );
    assert!(o.is_empty(), "{o}");
    assert_eq!(r.posts().len(), before);
}

#[test]
fn a_gate_tells_the_channel_the_command_that_resumes_the_run() {
    let c = Cluster::start(3, "0.10.4");
    let r = Receiver::start(&c);
    let script = c.dir.path().join("gated.rhai");
    std::fs::write(
        &script,
        "gate(\"check the dashboards\");\nnode::drain(\"node2\");\nnode::undrain(\"node2\");\n",
    )
    .unwrap();
    let mut run = start(&c, &["--notify", &r.url(), script.to_str().unwrap()]);
    run.wait_until("the receiver to take `gate`", |_| r.took("gate"));
    let gate = r
        .posts()
        .into_iter()
        .find(|p| p["event"] == "gate")
        .unwrap();
    let t = gate["text"].as_str().unwrap();
    let path = std::fs::canonicalize(&c.inventory).unwrap();
    let want = format!(
        "neumann-script --cluster {} resume",
        shlex::try_quote(path.to_str().unwrap()).unwrap()
    );
    assert!(
        t.ends_with(&format!(
            ": gate on cluster.toml: check the dashboards; the run waits: resume it with `{want}`"
        )),
        "{t}"
    );
    assert_eq!(gate["resume"], want.as_str(), "{gate}");
    // Paused: nothing changed yet.
    assert!(c.events_of(&["drain"]).is_empty());
    // The command as posted, run from another directory, resumes the run.
    let words = shlex::split(&want).unwrap();
    assert_eq!(words[0], "neumann-script");
    let elsewhere = tempfile::tempdir().unwrap();
    let resumed = bare_command(elsewhere.path())
        .args(&words[1..])
        .output()
        .unwrap();
    expect(&resumed, 0);
    let (_, e) = expect(&run.finish(), 0);
    assert!(e.contains("resumed by "), "{e}");
    assert_eq!(c.events_of(&["drain"]).len(), 1);
    let journaled = journal_events(&c.default_journal(), "gate");
    assert_eq!(journaled[0]["resume"], want.as_str(), "{journaled:?}");
}
