//! A real Prometheus for integration tests: its own config, data directory and loopback port, scraping
//! the given admin addresses every second, killed when dropped.
//!
//! Blocking on purpose (std TCP, no runtime): tests call it from plain `#[test]` functions while the
//! simulator serves `/metrics` from its own runtime's workers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Prometheus needs a moment to open its TSDB and one scrape interval (plus a random offset) per target.
const START_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
const JOB: &str = "neumann";

/// The `prometheus` binary on PATH, else Debian's location (PATH can be trimmed under test runners).
pub fn prometheus_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|dir| dir.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// The binary, or `None` after saying so where a developer will see it. Under CI (`CI` set) a missing
/// binary fails the test instead: `.ci/run` installs it, so absence there is a broken pipeline, not a skip.
pub fn prometheus_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(bin) = prometheus_binary() {
        return Some(bin);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "{test}: prometheus not installed but CI is set; .ci/run should have installed it (apt-get install prometheus)"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, which would hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: prometheus not installed (apt-get install prometheus): {test}"
    );
    None
}

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
        let bin =
            prometheus_binary().ok_or("prometheus not installed (apt-get install prometheus)")?;
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
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("prometheus exited ({status}) before it was ready"));
            }
            let last = match self.readiness() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "prometheus on {} not ready within {} s: {last}",
                    self.addr,
                    START_DEADLINE.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
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
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.query(&promql)?;
            let ready = answer
                .pointer("/data/result")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if ready >= self.targets.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "fewer than {n} scrapes of every target within {} s: {answer}",
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
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

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
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
