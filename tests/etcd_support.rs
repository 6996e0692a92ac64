//! A real etcd cluster for the calibration test: three members on loopback ports with their own data
//! directories, stopped and started with signals as a service manager would, killed when dropped.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Neumann-like timing: heartbeat 50 ms, election timeout 300 ms (etcd draws each timeout in 300-600 ms).
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 300;
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `etcd` binary on PATH, else Debian's location (PATH can be trimmed under test runners).
pub fn etcd_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|dir| dir.join("etcd"))
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The binary, or `None` after saying so where a developer will see it. Under CI (`CI` set) a missing
/// binary fails the test instead: `.ci/run` installs it, so absence there is a broken pipeline.
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(bin) = etcd_binary() {
        return Some(bin);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "{test}: etcd not installed but CI is set; .ci/run should have installed it (apt-get install etcd-server)"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, which would hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: etcd not installed (apt-get install etcd-server): {test}"
    );
    None
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

pub struct Member {
    pub name: String,
    pub client: u16,
    peer: u16,
    child: Option<Child>,
    /// etcd's member id, as the JSON gateway spells it (a decimal string).
    pub id: String,
}

pub struct EtcdCluster {
    bin: PathBuf,
    pub members: Vec<Member>,
    // Dropped after the children are killed.
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts three members and returns once each answers and they agree on a leader. A port taken
    /// between choosing it and etcd binding it is retried with fresh ports.
    pub fn start(bin: &Path) -> Result<EtcdCluster, String> {
        let mut last = String::new();
        for _ in 0..3 {
            // On tmpfs where there is one: the comparison is about Raft's timing, and an fsync
            // queued behind a busy disk would show as a stall the simulator has no cause for.
            let dir = tempfile::Builder::new()
                .prefix("etcd-calibration")
                .tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir())
                .map_err(|e| format!("temp dir: {e}"))?;
            let mut members = Vec::new();
            for n in 1..=3 {
                members.push(Member {
                    name: format!("m{n}"),
                    client: free_port()?,
                    peer: free_port()?,
                    child: None,
                    id: String::new(),
                });
            }
            let mut c = EtcdCluster {
                bin: bin.to_path_buf(),
                members,
                dir,
            };
            for i in 0..3 {
                c.spawn(i)?;
            }
            match c.wait_ready() {
                Ok(()) => return Ok(c),
                Err(e) => last = format!("{e}\n{}", c.logs()),
            }
        }
        Err(last)
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let initial = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let m = &self.members[i];
        let log_path = self.dir.path().join(format!("{}.log", m.name));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let client = format!("http://127.0.0.1:{}", m.client);
        let peer = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new(&self.bin)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "calibration"])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Every member answers its status and one of them leads; fills in the member ids.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let statuses: Vec<Option<(String, String)>> =
                (0..3).map(|i| status(&self.endpoint(i))).collect();
            if statuses
                .iter()
                .all(|s| s.as_ref().is_some_and(|(_, leader)| leader != "0"))
            {
                for (m, s) in self.members.iter_mut().zip(statuses) {
                    m.id = s.map(|(id, _)| id).unwrap_or_default();
                }
                return Ok(());
            }
            for m in &mut self.members {
                if let Some(Ok(Some(code))) = m.child.as_mut().map(Child::try_wait) {
                    return Err(format!("etcd {} exited ({code}) while starting", m.name));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "etcd not ready within {START_DEADLINE:?}: {statuses:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The member that leads, as the live members report it.
    pub fn leader(&self) -> Option<usize> {
        (0..3)
            .filter(|&i| self.members[i].child.is_some())
            .filter_map(|i| status(&self.endpoint(i)))
            .find_map(|(_, leader)| self.members.iter().position(|m| m.id == leader))
    }

    /// Sends `signal` (`TERM` for a service stop, `KILL` for a crash) and waits for the exit.
    pub fn signal(&mut self, i: usize, signal: &str) {
        if let Some(mut child) = self.members[i].child.take() {
            if signal == "KILL" {
                // Directly, without a `kill` process in between: a crash is timed from here.
                let _ = child.kill();
            } else {
                let _ = Command::new("kill")
                    .args([format!("-{signal}"), child.id().to_string()])
                    .status();
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped member again on its data directory; returns once it answers with a leader.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i)?;
        let deadline = Instant::now() + START_DEADLINE;
        while status(&self.endpoint(i)).is_none_or(|(_, l)| l == "0") {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not come back\n{}",
                    self.members[i].name,
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                format!(
                    "--- {}\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `(member id, leader id)` from the JSON gateway's maintenance status; leader "0" is none.
pub fn status(endpoint: &str) -> Option<(String, String)> {
    let body = post_blocking(
        endpoint,
        "/v3/maintenance/status",
        "{}",
        Duration::from_millis(500),
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let id = v.pointer("/header/member_id")?.as_str()?.to_string();
    let leader = v
        .get("leader")
        .and_then(|l| l.as_str())
        .unwrap_or("0")
        .to_string();
    Some((id, leader))
}

/// A small blocking HTTP/1.1 POST for control calls; the load itself goes through reqwest.
pub fn post_blocking(endpoint: &str, path: &str, body: &str, timeout: Duration) -> Option<String> {
    use std::io::Read;
    let addr = endpoint.trim_start_matches("http://");
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, rest) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        Some(dechunk(rest))
    } else {
        Some(rest.to_string())
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
