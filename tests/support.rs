//! The integration harness: a simulated cluster started in this process, its inventory in a temp dir,
//! and the real `neumann-script` binary run against it over loopback HTTP with a blanked environment;
//! with the waits, processes, journals and programs every test module shares (one copy of each).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use neumann_script::sim::{SimConfig, SimEvent, SimStats, Simulator};
use serde_json::Value;

mod journal;
mod poll;
mod process;
mod programs;
mod terminal;

pub use journal::{journal, journal_events, journal_events_so_far, journal_ops};
pub use poll::{poll_until, try_poll_until, Seen};
pub use process::{kill9, signal, Running, Trigger};
pub use programs::{
    binary_or_skip, find_program, free_port, CHROMIUM, ETCD, PROMETHEUS, SSHD, TMUX,
};
pub use terminal::Term;

pub const BIN: &str = env!("CARGO_BIN_EXE_neumann-script");

/// Speed for tests: fast enough to keep the suite short, slow enough that a restart is still visible.
pub const SPEED: f64 = 20.0;

pub struct Cluster {
    pub tokio: tokio::runtime::Runtime,
    /// Taken out when a test stops the simulator mid-run (`stop_simulator`).
    sim: std::sync::Mutex<Option<Simulator>>,
    pub dir: tempfile::TempDir,
    pub inventory: PathBuf,
    control: String,
    /// Simulated seconds per real second, for the deadlines of waits on simulated time.
    speed: f64,
}

impl Cluster {
    pub fn start(nodes: usize, version: &str) -> Cluster {
        Cluster::with(SimConfig {
            nodes,
            version: semver::Version::parse(version).unwrap(),
            speed: SPEED,
            ..SimConfig::default()
        })
    }

    /// A cluster on which `bad` is a broken release: its nodes fail some writes.
    pub fn with_bad(nodes: usize, bad: &str) -> Cluster {
        Cluster::with(SimConfig {
            nodes,
            speed: SPEED,
            bad_versions: vec![semver::Version::parse(bad).unwrap()],
            ..SimConfig::default()
        })
    }

    pub fn with(cfg: SimConfig) -> Cluster {
        let speed = cfg.speed;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = tokio.block_on(Simulator::start(cfg)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("cluster.toml");
        std::fs::write(&inventory, sim.inventory_toml()).unwrap();
        let control = format!("http://{}", sim.control_addr());
        Cluster {
            tokio,
            sim: std::sync::Mutex::new(Some(sim)),
            dir,
            inventory,
            control,
            speed,
        }
    }

    /// The binary with `--cluster` pointing at this simulator, run in the temp dir.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = bare(self.dir.path());
        c.arg("--cluster").arg(&self.inventory);
        c
    }

    /// Runs the binary with these arguments after `--cluster FILE`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.control);
        self.tokio.block_on(async {
            reqwest::get(&url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.control);
        self.tokio.block_on(async {
            let resp = reqwest::Client::new()
                .post(&url)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
            resp.json::<Value>().await.unwrap()
        })
    }

    /// Injects a fault through the control API (`crash`, `hang`, `partition`, `heal`, ...).
    pub fn inject(&self, node: &str, kind: &str) {
        self.post(
            "/sim/fault",
            serde_json::json!({ "node": node, "kind": kind }),
        );
    }

    /// Arms a fault that the simulator fires itself when it logs `event` for node `on`, so a test
    /// never races the clock to inject it mid-run.
    pub fn inject_when(&self, node: &str, kind: &str, event: &str, on: &str) {
        self.post(
            "/sim/fault",
            serde_json::json!({ "node": node, "kind": kind, "when": { "event": event, "node": on } }),
        );
    }

    /// Splits the network into these groups when the simulator logs `event` for node `on` (`heal`
    /// on any node mends it).
    pub fn partition_groups_when(&self, groups: &[&[&str]], event: &str, on: &str) {
        self.post(
            "/sim/fault",
            serde_json::json!({
                "kind": "partition",
                "groups": groups,
                "when": { "event": event, "node": on },
            }),
        );
    }

    /// Marks a schema change or a feature in use, as a newer release would (the rollback limits).
    pub fn mark_rollback_limit(&self, kind: &str, detail: &str, since: &str) {
        self.post(
            "/sim/rollback_limit",
            serde_json::json!({ "kind": kind, "detail": detail, "since": since }),
        );
    }

    /// Every node's admin address, `127.0.0.1:PORT`.
    pub fn admin_addrs(&self) -> Vec<String> {
        self.sim
            .lock()
            .unwrap()
            .as_ref()
            .expect("the simulator was stopped")
            .nodes()
            .into_iter()
            .map(|(_, url)| url.trim_start_matches("http://").to_string())
            .collect()
    }

    /// Runs a host-side command on a simulated node, as an operator would by hand.
    pub fn host(&self, node: &str, action: &str) {
        let out = self.post(&format!("/sim/host/{node}/{action}"), serde_json::json!({}));
        assert_eq!(out["status"], 0, "{action} {node}: {out}");
    }

    /// Waits until the simulator has logged `kind` for `node`. For a signal mid-step: the step that
    /// follows the event (an install, 3 s at real speed) is the margin the signal has to land in.
    pub fn wait_for_event(&self, kind: &str, node: &str) {
        poll_until(
            &format!("a `{kind}` event for {node}"),
            Duration::from_secs(60),
            || {
                self.events()
                    .iter()
                    .any(|e| e.kind == kind && e.node.as_deref() == Some(node))
            },
        );
    }

    /// The binary with `--cluster` pointing at this simulator, run in the temp dir, its stdout and
    /// stderr piped; for a run in the background that needs more than `spawn` sets.
    pub fn command(&self) -> std::process::Command {
        let mut c = bare_command(self.dir.path());
        c.arg("--cluster")
            .arg(&self.inventory)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    /// Starts the binary in the background (for faults and signals mid-run).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command().args(args).spawn().unwrap()
    }

    /// Starts the binary, waits until its stderr shows `needle` (so the run is known to be at that
    /// point, whatever the machine's load), calls `then` with the child, and returns its output.
    pub fn run_until_stderr(
        &self,
        args: &[&str],
        needle: &str,
        then: impl FnOnce(&std::process::Child),
    ) -> Output {
        let mut run = Running::start(self, args);
        run.until(needle);
        then(run.child());
        run.finish()
    }

    /// Members whose state is not "up" or that are unhealthy, as (id, state).
    pub fn not_up(&self) -> Vec<(String, String)> {
        let out = self.run(&["--format", "json", "-e", "cluster::members()"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let members: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        members
            .iter()
            .filter(|m| m["state"] != "up" || m["healthy"] != true)
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or("").to_string(),
                    m["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Whether the cluster rejects client requests now, from the simulator's own log: its last `pause`
    /// or `resume`.
    pub fn paused(&self) -> bool {
        self.events()
            .iter()
            .rev()
            .find(|e| e.kind == "pause" || e.kind == "resume")
            .is_some_and(|e| e.kind == "pause")
    }

    /// Simulated seconds since the simulator started.
    pub fn clock(&self) -> f64 {
        self.get("/sim/clock")["t"].as_f64().unwrap()
    }

    /// Waits until simulated time reaches `t` (time only moves forward, so this holds under any load).
    /// The deadline is ten times what the simulator's speed needs, and a minute more: a clock that
    /// stops is a failure, not a slow machine.
    pub fn wait_until_sim(&self, t: f64) {
        let needs = ((t - self.clock()).max(0.0) / self.speed).min(3600.0);
        let within = Duration::from_secs(60) + Duration::from_secs_f64(10.0 * needs);
        poll_until(&format!("simulated time {t:.1} s"), within, || {
            match self.clock() {
                now if now >= t => Ok(()),
                now => Err(format!("the simulator's clock at {now:.1} s")),
            }
        });
    }

    pub fn stats(&self) -> SimStats {
        serde_json::from_value(self.get("/sim/stats")).unwrap()
    }

    pub fn events(&self) -> Vec<SimEvent> {
        serde_json::from_value(self.get("/sim/events")).unwrap()
    }

    /// Events of these kinds, as (kind, node).
    pub fn events_of(&self, kinds: &[&str]) -> Vec<(String, String)> {
        self.events_since(0, kinds)
    }

    /// Events of these kinds from index `from` of the log on (a length of it read earlier: events are
    /// appended, never reordered), as (kind, node).
    pub fn events_since(&self, from: usize, kinds: &[&str]) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .skip(from)
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .map(|e| (e.kind, e.node.unwrap_or_default()))
            .collect()
    }

    /// The journal a run keeps when not given `--journal` (`HOME` is the test's temp dir).
    pub fn default_journal(&self) -> PathBuf {
        self.dir
            .path()
            .join(".local/state/neumann-script/journal.jsonl")
    }

    /// Versions as the cluster reports them, read with the tool itself.
    pub fn versions(&self) -> serde_json::Map<String, Value> {
        let out = self.run(&["--format", "json", "-e", "cluster::versions()"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        match serde_json::from_slice::<Value>(&out.stdout).unwrap() {
            Value::Object(m) => m,
            other => panic!("versions: {other}"),
        }
    }

    /// Versions in node order (node1, node2, ...), for comparing with a literal list.
    pub fn version_list(&self) -> Vec<String> {
        self.versions()
            .values()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn leader(&self) -> String {
        let out = self.run(&["-e", "cluster::leader()"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

impl Cluster {
    /// Stops the simulator, as a killed `neumann-script sim` would stop: every node and the control API
    /// refuse connections after this. The records (`events`, `stats`) go with it.
    pub fn stop_simulator(&self) {
        let sim = self.sim.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sim) = sim {
            self.tokio.block_on(sim.shutdown());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_simulator();
    }
}

/// The binary in `dir` with HOME there, and nothing from the environment that names an inventory or
/// moves the journal and lease files out of HOME.
pub fn bare(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::from_std(bare_command(dir));
    c.env("NO_COLOR", "1").timeout(Duration::from_secs(180));
    c
}

/// `bare` as a process to start in the background and steer (`Running`).
pub fn bare_command(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.current_dir(dir)
        .env_remove("NEUMANN_CLUSTER")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", dir)
        .env("TERM", "dumb");
    c
}

/// The environment that sends HTTP through a proxy.
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// Takes the proxy variables out of the binary's environment: notification and report URLs are on
/// loopback here, and a proxy set where the tests run must not see them.
pub fn without_proxies(cmd: &mut assert_cmd::Command) {
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
}

/// Makes a named pipe at `path`.
pub fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the exit code and returns (stdout, stderr).
pub fn expect(out: &Output, code: i32) -> (String, String) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n--- stdout\n{o}\n--- stderr\n{e}"
    );
    (o, e)
}
