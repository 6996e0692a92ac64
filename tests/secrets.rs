//! The inventory is trusted only as far as the cluster confirms it, and the admin token never leaves the
//! process: a node answering under another node's name stops the run before any call reaches it (judged
//! by the simulator's events), and a server that echoes the `Authorization` header back gets its echo
//! into none of stdout, stderr, the journal, the webhook posts or the report.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::support::{bare, expect, without_proxies, Cluster};

/// The cluster's inventory with the admin_urls of `a` and `b` exchanged, written beside it.
fn swapped(c: &Cluster, a: &str, b: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    let url_of = |id: &str| {
        let block = &text[text.find(&format!("id = \"{id}\"\n")).unwrap()..];
        let line = block.lines().find(|l| l.starts_with("admin_url")).unwrap();
        line.to_string()
    };
    let (ua, ub) = (url_of(a), url_of(b));
    let out = text
        .replace(&ua, "@A@")
        .replace(&ub, &ua)
        .replace("@A@", &ub);
    assert_ne!(out, text);
    let path = c.dir.path().join("swapped.toml");
    std::fs::write(&path, out).unwrap();
    path
}

fn run_with(c: &Cluster, inventory: &Path, args: &[&str]) -> std::process::Output {
    bare(c.dir.path())
        .arg("--cluster")
        .arg(inventory)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn swapped_admin_urls_stop_every_call_before_it_reaches_a_node() {
    let c = Cluster::start(3, "0.10.4");
    let bad = swapped(&c, "node1", "node2");
    let named = |stderr: &str| {
        let url = std::fs::read_to_string(&bad).unwrap();
        let node1_url = url[url.find("id = \"node1\"").unwrap()..]
            .lines()
            .find_map(|l| l.strip_prefix("admin_url = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        stderr.contains(&format!(
            "inventory `{}`: node1's admin_url {node1_url} answers as node2",
            bad.display()
        ))
    };

    // A read names both and exits 2; the same read through the true inventory answers.
    let (_, stderr) = expect(&run_with(&c, &bad, &["-e", "node::status(\"node1\")"]), 2);
    assert!(named(&stderr), "{stderr}");
    let (stdout, _) = expect(&c.run(&["-e", "node::status(\"node1\")"]), 0);
    assert!(stdout.starts_with("node1 "), "{stdout}");

    // A drain under the wrong name, with or without the interlock, reaches no node.
    for code in [
        "node::drain(\"node2\")",
        "node::drain(\"node2\", #{force: true})",
    ] {
        let (_, stderr) = expect(&run_with(&c, &bad, &["-e", code]), 2);
        assert!(named(&stderr), "{code}: {stderr}");
    }
    // The cluster-wide calls sent to any node, and a whole runbook, stop the same way.
    for args in [
        &["-e", "cluster::pause()"][..],
        &["--yes", "rolling_upgrade.rhai", "0.11.0"][..],
    ] {
        let (_, stderr) = expect(&run_with(&c, &bad, args), 2);
        assert!(named(&stderr), "{args:?}: {stderr}");
    }
    assert!(
        c.events_of(&["drain", "pause", "stop", "install", "transfer"])
            .is_empty(),
        "{:?}",
        c.events()
    );

    // The check on the events fires: the same drain through the true inventory is recorded.
    expect(&c.run(&["-e", "node::drain(\"node3\")"]), 0);
    assert_eq!(
        c.events_of(&["drain"]),
        vec![("drain".to_string(), "node3".to_string())]
    );
    expect(&c.run(&["-e", "node::undrain(\"node3\")"]), 0);
}

#[test]
fn a_dead_node_in_the_inventory_is_said_to_be_not_answering() {
    let c = Cluster::start(3, "0.10.4");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let four = c.dir.path().join("four.toml");
    let mut text = std::fs::read_to_string(&c.inventory).unwrap();
    text.push_str(&format!(
        "\n[[nodes]]\nid = \"node4\"\nadmin_url = \"http://127.0.0.1:{port}\"\n"
    ));
    std::fs::write(&four, text).unwrap();

    let (_, stderr) = expect(
        &run_with(&c, &four, &["--rehearse", "rolling_upgrade.rhai", "0.11.0"]),
        1,
    );
    assert!(
        stderr.contains("cannot rehearse: node4 is not answering and no answering member lists it"),
        "{stderr}"
    );
    assert!(!stderr.contains("is not a version"), "{stderr}");

    let (_, stderr) = expect(
        &run_with(&c, &four, &["-e", "version::skew_ok(cluster::versions())"]),
        1,
    );
    assert!(
        stderr.contains("`unknown` stands for the version of a member that is not answering"),
        "{stderr}"
    );
    assert!(!stderr.contains("is not a version"), "{stderr}");
    // What the check above looks for is what junk gets.
    let (_, stderr) = expect(&c.run(&["-e", "version::parse(\"X.Y.Z\")"]), 1);
    assert!(stderr.contains("`X.Y.Z` is not a version"), "{stderr}");
    assert!(c.events_of(&["drain", "stop", "install"]).is_empty());
}

#[test]
fn a_token_file_open_to_others_gets_a_warning_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::start(3, "0.10.4");
    let token = c.dir.path().join("admin.token");
    std::fs::write(&token, "tf-9c1e0d\n").unwrap();
    let inv = c.dir.path().join("with-token.toml");
    let text = std::fs::read_to_string(&c.inventory).unwrap();
    std::fs::write(
        &inv,
        format!("[cluster]\ntoken_file = \"admin.token\"\n{text}"),
    )
    .unwrap();

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (stdout, stderr) = expect(&run_with(&c, &inv, &["-e", "cluster::leader()"]), 0);
    assert!(stdout.starts_with("node"), "{stdout}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("warning: token_file"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(
        warning.contains(&format!(
            "token_file `{}` is open to its group and other users (mode 0644)",
            token.display()
        )) && warning.ends_with(&format!("chmod 600 {}", token.display())),
        "{warning}"
    );
    assert!(!stderr.contains("tf-9c1e0d"), "{stderr}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, stderr) = expect(&run_with(&c, &inv, &["-e", "cluster::leader()"]), 0);
    assert!(!stderr.contains("token_file"), "{stderr}");
}

/// What the echoing node sent back: every error body, each quoting the request's `Authorization`.
type Sent = Arc<Mutex<Vec<String>>>;

/// A node that answers `/health` as `node1` and every other call with an error whose body repeats the
/// request's headers, as a misconfigured proxy or a debug build might. The lease is answered 404 so the
/// run goes on (to a local lock file) and reaches its drain.
fn echoing_node(tokio: &tokio::runtime::Runtime, sent: Sent) -> std::net::SocketAddr {
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let health = json!({
        "status": "healthy", "raft_state": "leader", "term": 1, "commit_index": 7, "members": 1,
        "healthy_members": 1, "node_id": "node1", "version": "0.10.4", "leader": "node1",
        "applied_index": 7, "replication_lag_ms": 0,
    });
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || async move { axum::Json(health) }),
        )
        .fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let sent = sent.clone();
            async move {
                let seen: Vec<String> = headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                    .collect();
                let body = json!({ "error": format!("refused, request headers were: {}", seen.join("; ")) });
                sent.lock().unwrap().push(body.to_string());
                let status = if uri.path() == "/admin/lease" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::FORBIDDEN
                };
                (status, axum::Json(body))
            }
        });
    tokio.spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A webhook receiver that keeps every body as it arrived, as text.
fn receiver(tokio: &tokio::runtime::Runtime, posts: Sent) -> std::net::SocketAddr {
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: String| {
        let posts = posts.clone();
        async move {
            posts.lock().unwrap().push(body);
            "ok"
        }
    }));
    tokio.spawn(async move { axum::serve(listener, app).await });
    addr
}

#[test]
fn a_token_echoed_by_a_server_is_in_nothing_the_tool_writes() {
    // Characters JSON and HTML escape, so an escaped copy would be caught too: every form keeps `s3cr3t`.
    const TOKEN: &str = "T0k-\"s3cr3t&<9f1c>";
    const MARK: &str = "s3cr3t";
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent: Sent = Default::default();
    let posts: Sent = Default::default();
    let node = echoing_node(&tokio, sent.clone());
    let hook = receiver(&tokio, posts.clone());
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("echo.toml");
    std::fs::write(
        &inventory,
        format!(
            "[cluster]\ntoken_env = \"NEUMANN_TEST_ADMIN_TOKEN\"\n[[nodes]]\nid = \"node1\"\nadmin_url = \"http://{node}\"\n"
        ),
    )
    .unwrap();
    let script = dir.path().join("drain.rhai");
    std::fs::write(
        &script,
        "step(\"drain node1\", || {\n    try {\n        node::drain(\"node1\", #{force: true});\n    } catch (e) {\n        print(`caught: ${e}`);\n        throw e;\n    }\n});\n",
    )
    .unwrap();
    let journal = dir.path().join("journal.jsonl");
    let report = dir.path().join("out.html");
    let mut cmd = bare(dir.path());
    without_proxies(&mut cmd);
    let out = cmd
        .env("NEUMANN_TEST_ADMIN_TOKEN", TOKEN)
        .arg("--cluster")
        .arg(&inventory)
        .arg("--journal")
        .arg(&journal)
        .arg("--report")
        .arg(&report)
        .arg("--notify")
        .arg(format!("http://{hook}/hook"))
        .arg(&script)
        .output()
        .unwrap();
    let (stdout, stderr) = expect(&out, 1);

    // The check can fire: the node really sent the token back, in the answers to the lease and the drain.
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.len() >= 2
            && sent.iter().all(|b| b.contains(&format!(
                "authorization: Bearer {}",
                TOKEN.replace('"', "\\\"")
            ))),
        "{sent:?}"
    );
    // ...and the echo reached each text, where it shows redacted.
    assert!(
        stdout.contains("caught: node1: drain failed: POST http://"),
        "{stdout}"
    );
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            text.contains("authorization: Bearer <redacted>"),
            "{what}: {text}"
        );
    }
    let journal = std::fs::read_to_string(&journal).unwrap();
    let report = std::fs::read_to_string(&report).unwrap();
    let posts = posts.lock().unwrap().clone();
    assert!(journal.contains("Bearer <redacted>"), "{journal}");
    assert!(report.contains("Bearer &lt;redacted&gt;"), "{report}");
    assert!(
        posts.iter().any(|p| p.contains("Bearer <redacted>")),
        "{posts:?}"
    );
    for p in &posts {
        serde_json::from_str::<Value>(p).unwrap();
    }

    for (what, text) in [
        ("stdout", stdout.as_str()),
        ("stderr", stderr.as_str()),
        ("journal", journal.as_str()),
        ("report", report.as_str()),
        ("webhook posts", &posts.join("\n")),
    ] {
        assert!(!text.contains(MARK), "the token is in the {what}:\n{text}");
    }
}
