//! A real etcd cluster for the calibration test: three members on loopback ports with their own data
//! directories, stopped and started with signals as a service manager would, killed when dropped.
//! Their peer traffic passes through `PeerNet`, a relay in this process, so a test can cut one member
//! off from the others (a network partition) without touching the machine's network.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{free_port, signal, try_poll_until, Seen};

/// The simulator's default timing: election timeout 150 ms (etcd draws each timeout in 150-300 ms, as
/// the simulator does) and a heartbeat of 30 ms, the longest etcd accepts with it (a fifth).
pub const HEARTBEAT_MS: u64 = 30;
pub const ELECTION_MS: u64 = 150;
/// A snapshot every 1000 applied entries, as the simulator takes them (etcd keeps 5000 entries
/// before each, as the simulator does).
pub const SNAPSHOT_COUNT: u64 = 1000;
const START_DEADLINE: Duration = Duration::from_secs(30);

pub struct Member {
    pub name: String,
    pub client: u16,
    /// Where etcd listens for its peers, and where they reach it: through the relay.
    peer: u16,
    relayed: u16,
    child: Option<Child>,
    /// Stopped with SIGSTOP: it holds its connections and answers nothing.
    frozen: bool,
    /// etcd's member id, as the JSON gateway spells it (a decimal string).
    pub id: String,
}

pub struct EtcdCluster {
    bin: PathBuf,
    pub members: Vec<Member>,
    pub net: PeerNet,
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
            let mut relays = Vec::new();
            for n in 1..=3 {
                let peer = free_port()?;
                let relay = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("relay: {e}"))?;
                let relayed = relay.local_addr().map_err(|e| e.to_string())?.port();
                relays.push((relay, peer));
                members.push(Member {
                    name: format!("m{n}"),
                    client: free_port()?,
                    peer,
                    relayed,
                    child: None,
                    frozen: false,
                    id: String::new(),
                });
            }
            let mut c = EtcdCluster {
                bin: bin.to_path_buf(),
                members,
                net: PeerNet::start(relays),
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
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.relayed))
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
        let relayed = format!("http://127.0.0.1:{}", m.relayed);
        let child = Command::new(&self.bin)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &relayed])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "calibration"])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_MS.to_string()])
            .args(["--snapshot-count", &SNAPSHOT_COUNT.to_string()])
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
        let hex = self
            .members
            .iter()
            .map(|m| {
                m.id.parse::<u64>()
                    .map_or_else(|_| String::new(), |id| format!("{id:x}"))
            })
            .collect();
        self.net.name_members(hex);
        Ok(())
    }

    /// The member that leads, as the live members report it.
    pub fn leader(&self) -> Option<usize> {
        (0..3)
            .filter(|&i| self.members[i].child.is_some() && !self.members[i].frozen)
            .filter_map(|i| status(&self.endpoint(i)))
            .find_map(|(_, leader)| self.members.iter().position(|m| m.id == leader))
    }

    /// Sends `signal` (`TERM` for a service stop, `KILL` for a crash) and waits for the exit.
    pub fn signal(&mut self, i: usize, sig: &str) {
        self.members[i].frozen = false;
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

    /// Freezes the member (SIGSTOP): its ports accept and nothing answers, as a hung process.
    pub fn freeze(&mut self, i: usize) {
        if let Some(child) = &self.members[i].child {
            signal(child, "STOP");
            self.members[i].frozen = true;
        }
    }

    /// Lets a frozen member run again (SIGCONT).
    pub fn thaw(&mut self, i: usize) {
        if let Some(child) = &self.members[i].child {
            signal(child, "CONT");
            self.members[i].frozen = false;
        }
    }

    /// Starts a stopped member again on its data directory; returns once it answers with a leader,
    /// with the time that took. etcd serves its clients only once it has applied what the leader
    /// sent it, so that time includes catching up.
    pub fn restart(&mut self, i: usize) -> Result<Duration, String> {
        let since = Instant::now();
        self.spawn(i)?;
        let name = &self.members[i].name;
        try_poll_until(
            &format!("{name} to answer with a leader"),
            START_DEADLINE,
            || status(&self.endpoint(i)).is_some_and(|(_, l)| l != "0"),
        )
        .map_err(|e| format!("{e}\n{}", self.logs()))?;
        Ok(since.elapsed())
    }

    /// How many snapshots member `i` has received from a leader since it started (its `/metrics`);
    /// None when it does not answer.
    pub fn snapshots_received(&self, i: usize) -> Option<u64> {
        let text = request_blocking(
            &self.endpoint(i),
            "GET",
            "/metrics",
            "",
            Duration::from_secs(2),
        )?;
        let received = text
            .lines()
            .filter(|l| l.starts_with("etcd_network_snapshot_receive_success"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(received as u64)
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

/// The JSON gateway's maintenance status of member `endpoint`, when it answers within 500 ms.
fn maintenance_status(endpoint: &str) -> Option<serde_json::Value> {
    let body = post_blocking(
        endpoint,
        "/v3/maintenance/status",
        "{}",
        Duration::from_millis(500),
    )?;
    serde_json::from_str(&body).ok()
}

/// The leader id a status names; "0" is none.
fn leader_of(v: &serde_json::Value) -> String {
    v.get("leader")
        .and_then(|l| l.as_str())
        .unwrap_or("0")
        .to_string()
}

/// `(member id, leader id)` from the maintenance status; leader "0" is none.
pub fn status(endpoint: &str) -> Option<(String, String)> {
    let v = maintenance_status(endpoint)?;
    let id = v.pointer("/header/member_id")?.as_str()?.to_string();
    Some((id, leader_of(&v)))
}

/// `(raft term, leader id)` as member `endpoint` sees them; leader "0" is none.
pub fn term(endpoint: &str) -> Option<(u64, String)> {
    let v = maintenance_status(endpoint)?;
    let term = v.get("raftTerm")?.as_str()?.parse().ok()?;
    Some((term, leader_of(&v)))
}

/// A small blocking HTTP/1.1 POST for control calls; the load itself goes through reqwest.
pub fn post_blocking(endpoint: &str, path: &str, body: &str, timeout: Duration) -> Option<String> {
    request_blocking(endpoint, "POST", path, body, timeout)
}

fn request_blocking(
    endpoint: &str,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Option<String> {
    let addr = endpoint.trim_start_matches("http://");
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

/// The members' peer traffic, relayed through this process: member `i` is reached at its relay port,
/// which forwards to where it listens. Every peer request etcd makes names its sender
/// (`X-Server-From`), and one connection carries one sender's requests, so cutting a member off
/// refuses the connections it opens and those opened to it, both ways, and closes the ones open.
pub struct PeerNet {
    state: Arc<Mutex<NetState>>,
    stop: Arc<AtomicBool>,
    ports: Vec<u16>,
}

#[derive(Default)]
struct NetState {
    /// Each member's id as etcd writes it in `X-Server-From` (hexadecimal).
    ids: Vec<String>,
    cut: Option<usize>,
    next: u64,
    /// Open relays: (sender if named, receiver, the two sockets).
    open: BTreeMap<u64, (Option<usize>, usize, TcpStream, TcpStream)>,
}

impl NetState {
    fn blocked(&self, from: Option<usize>, to: usize) -> bool {
        self.cut.is_some_and(|c| c == to || Some(c) == from)
    }
}

impl PeerNet {
    /// Relays each listener to its member's peer port.
    fn start(relays: Vec<(TcpListener, u16)>) -> PeerNet {
        let state = Arc::new(Mutex::new(NetState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        for (to, (listener, upstream)) in relays.into_iter().enumerate() {
            ports.push(listener.local_addr().map_or(0, |a| a.port()));
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || relay(&state, conn, to, upstream));
                }
            });
        }
        PeerNet { state, stop, ports }
    }

    fn name_members(&self, ids: Vec<String>) {
        self.state.lock().unwrap().ids = ids;
    }

    /// Cuts member `i` off from the others (until `heal`).
    pub fn cut(&self, i: usize) {
        let mut s = self.state.lock().unwrap();
        s.cut = Some(i);
        let doomed: Vec<u64> = s
            .open
            .iter()
            .filter(|(_, (from, to, _, _))| *to == i || *from == Some(i))
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            if let Some((_, _, a, b)) = s.open.remove(&k) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().cut = None;
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for port in &self.ports {
            // Wakes each listener so its thread sees `stop`.
            let _ = TcpStream::connect(("127.0.0.1", *port));
        }
        for (_, (_, _, a, b)) in std::mem::take(&mut self.state.lock().unwrap().open) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

/// One relayed connection to member `to`: reads the first request's head for its sender, then
/// copies both ways until either side closes or the member is cut off.
fn relay(state: &Mutex<NetState>, mut conn: TcpStream, to: usize, upstream: u16) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = conn.set_read_timeout(None);
    let sender = String::from_utf8_lossy(&head).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-server-from")
            .then(|| v.trim().to_string())
    });
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(conn_kept), Ok(up_kept), Ok(mut up_read), Ok(mut conn_write)) = (
        conn.try_clone(),
        up.try_clone(),
        up.try_clone(),
        conn.try_clone(),
    ) else {
        return;
    };
    let key = {
        let mut s = state.lock().unwrap();
        let from = sender.and_then(|id| s.ids.iter().position(|m| *m == id));
        if s.blocked(from, to) {
            return;
        }
        s.next += 1;
        let key = s.next;
        s.open.insert(key, (from, to, conn_kept, up_kept));
        key
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut conn_write);
        let _ = conn_write.shutdown(Shutdown::Both);
    });
    if up.write_all(&head).is_ok() {
        let _ = std::io::copy(&mut conn, &mut up);
    }
    let _ = up.shutdown(Shutdown::Both);
    let _ = conn.shutdown(Shutdown::Both);
    let _ = back.join();
    state.lock().unwrap().open.remove(&key);
}
