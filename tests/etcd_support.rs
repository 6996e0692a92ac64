//! A real etcd cluster for the calibration test: three members on loopback ports with their own data
//! directories, stopped and started with signals as a service manager would, killed when dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, signal, try_poll_until, Seen};

/// Neumann-like timing: heartbeat 50 ms, election timeout 300 ms (etcd draws each timeout in 300-600 ms).
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 300;
const START_DEADLINE: Duration = Duration::from_secs(30);

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
        let endpoints: Vec<String> = (0..3).map(|i| self.endpoint(i)).collect();
        let statuses = try_poll_until("etcd to be ready", START_DEADLINE, || {
            let statuses: Vec<Option<(String, String)>> =
                endpoints.iter().map(|e| status(e)).collect();
            if statuses
                .iter()
                .all(|s| s.as_ref().is_some_and(|(_, leader)| leader != "0"))
            {
                return Seen::Done(statuses);
            }
            for m in &mut self.members {
                if let Some(Ok(Some(code))) = m.child.as_mut().map(Child::try_wait) {
                    return Seen::GaveUp(format!("etcd {} exited ({code}) while starting", m.name));
                }
            }
            Seen::NotYet(format!("{statuses:?}"))
        })?;
        for (m, s) in self.members.iter_mut().zip(statuses) {
            m.id = s.map(|(id, _)| id).unwrap_or_default();
        }
        Ok(())
    }

    /// The member that leads, as the live members report it.
    pub fn leader(&self) -> Option<usize> {
        (0..3)
            .filter(|&i| self.members[i].child.is_some())
            .filter_map(|i| status(&self.endpoint(i)))
            .find_map(|(_, leader)| self.members.iter().position(|m| m.id == leader))
    }

    /// Sends `signal` (`TERM` for a service stop, `KILL` for a crash) and waits for the exit.
    pub fn signal(&mut self, i: usize, sig: &str) {
        if let Some(mut child) = self.members[i].child.take() {
            if sig == "KILL" {
                // Directly, without a `kill` process in between: a crash is timed from here.
                let _ = child.kill();
            } else {
                signal(&child, sig);
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped member again on its data directory; returns once it answers with a leader.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i)?;
        let name = &self.members[i].name;
        try_poll_until(
            &format!("{name} to answer with a leader"),
            START_DEADLINE,
            || status(&self.endpoint(i)).is_some_and(|(_, l)| l != "0"),
        )
        .map_err(|e| format!("{e}\n{}", self.logs()))
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
