//! neumann-script's performance figures (issue 7), printed as a table; see docs/BENCHMARKS.md.
//!
//!   cargo bench --bench bench              # everything (about 5 minutes: the 50-node upgrade runs in real time)
//!   cargo bench --bench bench -- --quick   # 9 nodes only, fewer repetitions
//!   cargo bench --bench bench -- --upgrades 9,50   # only the rolling upgrades, pre-staged and in-window
//!
//! The tool is the release binary, run as a child process against a simulator in this process, so its
//! figures (wall time, RSS) are its own. The upgrade runs at speed 1: the tool's overheads are real-time
//! (polling, HTTP round trips), and any speed-up would inflate them relative to the simulated outages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neumann_script::sim::{SimConfig, SimEvent, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_neumann-script");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Sim {
    rt: tokio::runtime::Runtime,
    sim: Option<Simulator>,
    dir: tempfile::TempDir,
}

impl Sim {
    fn start(nodes: usize, speed: f64) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cfg = SimConfig {
            nodes,
            speed,
            ..SimConfig::default()
        };
        let sim = rt.block_on(Simulator::start(cfg)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.toml"), sim.inventory_toml()).unwrap();
        Sim {
            rt,
            sim: Some(sim),
            dir,
        }
    }

    fn inventory(&self) -> std::path::PathBuf {
        self.dir.path().join("c.toml")
    }

    fn events(&self) -> Vec<SimEvent> {
        self.sim.as_ref().unwrap().events()
    }

    fn stats(&self) -> neumann_script::sim::SimStats {
        self.sim.as_ref().unwrap().stats()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(s) = self.sim.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

fn tool(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("NEUMANN_CLUSTER")
        .env("HOME", dir)
        .stdin(Stdio::null());
    c
}

/// Peak resident memory of a running process, from /proc (kB).
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One rolling upgrade's figures, from the simulator's event log and stats.
struct Upgrade {
    wall: f64,
    /// Per-node outage: from its stop until it has caught up again.
    outages: Vec<f64>,
    /// From the first node's staging starting (the earliest `stage` less the install time) to its last.
    staging: f64,
    failed_writes: u64,
    rss_mb: f64,
}

impl Upgrade {
    fn sum(&self) -> f64 {
        self.outages.iter().sum()
    }
    fn mean(&self) -> f64 {
        self.sum() / self.outages.len().max(1) as f64
    }
    fn max(&self) -> f64 {
        self.outages.iter().cloned().fold(0.0, f64::max)
    }
}

/// A rolling upgrade of `nodes` nodes at speed 1, pre-staged or installing in the window.
fn upgrade(nodes: usize, prestage: bool) -> Upgrade {
    let sim = Sim::start(nodes, 1.0);
    let started = Instant::now();
    let mut child = tool(sim.dir.path())
        .arg("--cluster")
        .arg(sim.inventory())
        .args(["--yes", "--set", &format!("prestage={prestage}")])
        .args(["rolling_upgrade.rhai", "0.11.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak_kb = 0;
    let status = loop {
        if let Some(kb) = vm_hwm_kb(child.id()) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed().as_secs_f64();
    assert!(status.success(), "the {nodes}-node upgrade failed");
    // Simulated seconds = real at speed 1.
    let events = sim.events();
    let mut outages = Vec::new();
    for e in events.iter().filter(|e| e.kind == "stop") {
        let node = e.node.clone();
        let back = events
            .iter()
            .find(|c| c.kind == "caught_up" && c.node == node && c.t >= e.t)
            .map_or(e.t, |c| c.t);
        outages.push(back - e.t);
    }
    let staged: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == "stage" && !e.detail.contains("already"))
        .map(|e| e.t)
        .collect();
    let staging = match staged.is_empty() {
        true => 0.0,
        false => {
            let first = staged.iter().cloned().fold(f64::INFINITY, f64::min);
            let last = staged.iter().cloned().fold(0.0, f64::max);
            last - first + neumann_script::sim::INSTALL_SECS
        }
    };
    let failed_writes = sim.stats().client_writes_failed;
    Upgrade {
        wall,
        outages,
        staging,
        failed_writes,
        rss_mb: peak_kb as f64 / 1024.0,
    }
}

/// Median milliseconds of `expr` evaluated `reps` times in one process against a `nodes`-node simulator.
fn in_process_ms(sim: &Sim, expr: &str, reps: usize) -> f64 {
    let script = format!(
        "{expr}; let ts = []; for i in 0..{reps} {{ let t = now(); {expr}; ts.push((now() - t) * 1000.0); }} ts.sort(); ts[ts.len() / 2]"
    );
    let out = tool(sim.dir.path())
        .arg("--cluster")
        .arg(sim.inventory())
        .args(["-e", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Median wall milliseconds of a whole command, `reps` runs.
fn command_ms(dir: &Path, args: &[&str], reps: usize) -> f64 {
    let times = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let out = tool(dir).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(times)
}

/// CPU the simulator's process spends per wall second with `nodes` nodes idle under client load.
fn sim_cpu_share(nodes: usize) -> f64 {
    let ticks = || -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let sim = Sim::start(nodes, 1.0);
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let share = (ticks() - c0) / t0.elapsed().as_secs_f64();
    drop(sim);
    share
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--upgrades N,N`: only the rolling upgrades of these sizes (the comparison of pre-staged and in-window).
    let args: Vec<String> = std::env::args().collect();
    let only: Vec<usize> = args
        .iter()
        .position(|a| a == "--upgrades")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let reps = if quick { 10 } else { 30 };
    println!(
        "neumann-script benchmarks ({} cores); method in docs/BENCHMARKS.md",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<58} {:>12} {:>10}", "figure", "value", "target");

    if only.is_empty() {
        let empty = tempfile::tempdir().unwrap();
        println!(
            "{:<58} {:>9.1} ms {:>10}",
            "start-up: neumann-script -e 1 (median)",
            command_ms(empty.path(), &["-e", "1"], reps),
            "<= 10 ms"
        );
        println!(
            "{:<58} {:>9.1} ms {:>10}",
            "check of every stock script and stdlib module (median)",
            command_ms(empty.path(), &["check"], reps),
            "<= 50 ms"
        );

        let big = Sim::start(300, 1.0);
        println!(
            "{:<58} {:>9.1} ms {:>10}",
            "cluster::health() over 300 nodes (median of 20)",
            in_process_ms(&big, "cluster::health()", 20),
            "<= 100 ms"
        );
        let baseline: Vec<String> = (2..=300).map(|i| format!("\"node{i}\"")).collect();
        let compare = format!("metrics::compare(\"node1\", [{}], 0)", baseline.join(", "));
        println!(
            "{:<58} {:>9.1} ms {:>10}",
            "metrics::compare(node1, 299 nodes, window 0) (median of 10)",
            in_process_ms(&big, &compare, 10),
            "<= 100 ms"
        );
        drop(big);
        println!(
            "{:<58} {:>9.1} %  {:>10}",
            "simulator CPU, 300 nodes under load (share of one core)",
            sim_cpu_share(300) * 100.0,
            ""
        );
    }

    let sizes: &[usize] = if quick { &[9] } else { &[9, 50] };
    for &n in sizes.iter().filter(|n| only.is_empty() || only.contains(n)) {
        let window = upgrade(n, false);
        let staged = upgrade(n, true);
        for (how, u) in [("in-window", &window), ("pre-staged", &staged)] {
            println!(
                "{:<58} {:>12} {:>10}",
                format!("rolling upgrade, {n} nodes, {how}"),
                format!("{:.1} s", u.wall),
                ""
            );
            println!(
                "{:<58} {:>12} {:>10}",
                format!("  outage mean / max / sum, failed writes"),
                format!(
                    "{:.2} / {:.2} / {:.1} s, {}",
                    u.mean(),
                    u.max(),
                    u.sum(),
                    u.failed_writes
                ),
                ""
            );
            // The unavoidable: every node's outage, and the staging the run waits for before the first stop.
            println!(
                "{:<58} {:>12.3} {:>10}",
                format!(
                    "  wall {:.1} s / (outages {:.1} s + staging {:.1} s)",
                    u.wall,
                    u.sum(),
                    u.staging
                ),
                u.wall / (u.sum() + u.staging),
                "<= 1.05"
            );
        }
        println!(
            "{:<58} {:>12.3} {:>10}",
            format!("pre-staged / in-window, {n} nodes: mean outage"),
            staged.mean() / window.mean(),
            "<= 0.5"
        );
        println!(
            "{:<58} {:>12.3} {:>10}",
            format!("pre-staged / in-window, {n} nodes: wall"),
            staged.wall / window.wall,
            if n == 9 { "<= 0.6" } else { "" }
        );
        println!(
            "{:<58} {:>9.1} MB {:>10}",
            format!("peak RSS of the tool during the {n}-node upgrades"),
            window.rss_mb.max(staged.rss_mb),
            if n == 50 { "<= 50 MB" } else { "" }
        );
        // The seed's bash procedure on paper: sleep 10 after each follower's restart, sleep 5 after the
        // transfer, on top of in-window outages.
        let bash_sleeps = 10.0 * (n as f64 - 1.0) + 5.0;
        println!(
            "{:<58} {:>12.3} {:>10}",
            format!(
                "seed bash script on paper: (outages + {bash_sleeps:.0} s of sleeps) / outages"
            ),
            (window.sum() + bash_sleeps) / window.sum(),
            ""
        );
    }
}
