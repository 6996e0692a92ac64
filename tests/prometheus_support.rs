//! A real Prometheus for integration tests: its own config, data directory and loopback port, scraping
//! the given admin addresses every second, killed when dropped.
//!
//! Blocking on purpose (std TCP, no runtime): tests call it from plain `#[test]` functions while the
//! simulator serves `/metrics` from its own runtime's workers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{find_program, free_port, try_poll_until, Cluster, Seen, PROMETHEUS};

/// Prometheus needs a moment to open its TSDB and one scrape interval (plus a random offset) per target.
const START_DEADLINE: Duration = Duration::from_secs(30);
const JOB: &str = "neumann";

pub struct PromServer {
    child: Child,
    addr: String,
    targets: Vec<String>,
    // Dropped after `child` is killed, so Prometheus never writes into a removed directory.
    dir: tempfile::TempDir,
}

impl PromServer {
    /// Starts Prometheus scraping `targets` (`127.0.0.1:PORT` admin addresses) and returns once it is
    /// ready and has scraped every target successfully at least once.
    pub fn start(targets: &[String]) -> Result<PromServer, String> {
        let bin = find_program(&PROMETHEUS)
            .ok_or("prometheus not installed (apt-get install prometheus)")?;
        let deadline = Instant::now() + START_DEADLINE;
        let mut last_error = String::new();
        // A free port found by binding :0 can be taken before Prometheus binds it; try a fresh one then.
        for _ in 0..3 {
            match PromServer::start_once(&bin, targets, deadline) {
                Ok(server) => return Ok(server),
                Err((e, port_taken)) if port_taken => last_error = e,
                Err((e, _)) => return Err(e),
            }
        }
        Err(last_error)
    }

    fn start_once(
        bin: &Path,
        targets: &[String],
        deadline: Instant,
    ) -> Result<PromServer, (String, bool)> {
        let fatal = |e: String| (e, false);
        let dir = tempfile::tempdir().map_err(|e| fatal(format!("temp dir: {e}")))?;
        let config = dir.path().join("prometheus.yml");
        let data = dir.path().join("data");
        let log_path = dir.path().join("prometheus.log");
        // JSON is YAML, and quoting this way keeps any target string a single YAML scalar.
        let target_list = serde_json::to_string(targets).map_err(|e| fatal(e.to_string()))?;
        let yml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: {target_list}\n"
        );
        std::fs::write(&config, yml)
            .map_err(|e| fatal(format!("write {}: {e}", config.display())))?;
        let port = free_port().map_err(fatal)?;
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| fatal(format!("create {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| fatal(e.to_string()))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| fatal(format!("cannot run {}: {e}", bin.display())))?;
        let mut server = PromServer {
            child,
            addr,
            targets: targets.to_vec(),
            dir,
        };
        match server.wait_ready(deadline) {
            Ok(()) => Ok(server),
            Err(e) => {
                let log = server.log();
                let port_taken = log.contains("address already in use");
                Err((format!("{e}\nprometheus log:\n{log}"), port_taken))
            }
        }
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let what = format!("prometheus on {} to be ready", self.addr);
        let within = deadline.saturating_duration_since(Instant::now());
        try_poll_until(&what, within, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Seen::GaveUp(format!("prometheus exited ({status})"));
            }
            match self.readiness() {
                Ok(()) => Seen::Done(()),
                Err(e) => Seen::NotYet(e),
            }
        })
    }

    /// `Ok` once `/-/ready` answers 200 and every target's last scrape succeeded.
    fn readiness(&self) -> Result<(), String> {
        let (status, _) = http_get(&self.addr, "/-/ready")?;
        if status != 200 {
            return Err(format!("/-/ready answered {status}"));
        }
        let (status, body) = http_get(&self.addr, "/api/v1/targets?state=active")?;
        if status != 200 {
            return Err(format!("/api/v1/targets answered {status}: {body}"));
        }
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("targets: {e}"))?;
        let active = doc
            .pointer("/data/activeTargets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut waiting = Vec::new();
        for target in &self.targets {
            let found = active.iter().find(|t| {
                t.pointer("/labels/instance").and_then(Value::as_str) == Some(target.as_str())
            });
            let health = found
                .and_then(|t| t.get("health"))
                .and_then(Value::as_str)
                .unwrap_or("not discovered");
            if health != "up" {
                let why = found
                    .and_then(|t| t.get("lastError"))
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                waiting.push(format!("{target} {health}{why}"));
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(format!("targets not up: {}", waiting.join(", ")))
        }
    }

    /// The base URL, as an inventory's `prometheus_url` would name it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prometheus's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until Prometheus holds at least `n` samples of `up` for every target in the last minute:
    /// `rate`/`increase` need two, so window queries asked earlier would see no data.
    pub fn wait_for_scrapes(&self, n: usize, timeout: Duration) -> Result<(), String> {
        let promql = format!("count_over_time(up{{job=\"{JOB}\"}}[1m]) >= {n}");
        try_poll_until(&format!("{n} scrapes of every target"), timeout, || {
            let answer = match self.query(&promql) {
                Ok(answer) => answer,
                Err(e) => return Seen::GaveUp(e),
            };
            let ready = answer
                .pointer("/data/result")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if ready >= self.targets.len() {
                Seen::Done(())
            } else {
                Seen::NotYet(answer.to_string())
            }
        })
    }

    /// An instant query answered as Prometheus's raw JSON, independent of the client under test.
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get(&self.addr, &path)?;
        let doc: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{promql}: HTTP {status}: {e}: {body}"))?;
        if status == 200 {
            Ok(doc)
        } else {
            Err(format!("{promql}: HTTP {status}: {doc}"))
        }
    }
}

/// A Prometheus scraping every node of `c`, named in its inventory (`prometheus_url`), returned once it
/// holds enough history for a window query: ten scrapes of every node.
pub fn scraping(c: &Cluster) -> PromServer {
    let prom = PromServer::start(&c.admin_addrs()).unwrap_or_else(|e| panic!("{e}"));
    prom.wait_for_scrapes(10, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", prom.log()));
    let mut inv = std::fs::read_to_string(&c.inventory).unwrap();
    inv.push_str(&format!(
        "\n[cluster]\nprometheus_url = \"{}\"\n",
        prom.url()
    ));
    std::fs::write(&c.inventory, inv).unwrap();
    prom
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HTTP/1.0 so the server answers without chunking and closes: the whole body is what `read_to_end` gets.
fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(5);
    let sock = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("GET {path}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(|e| format!("GET {path}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP header in {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {path}: bad status line in {head}"))?;
    Ok((status, body.to_string()))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
