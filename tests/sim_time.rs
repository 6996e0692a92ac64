//! Under a simulated cluster a script's waits run on the simulator's clock: `sleep`, `now()`,
//! `metrics::watch` and a canary's watch are compressed by the simulator's speed, so a day-long canary
//! can be rehearsed in minutes. Judged by the simulator's own clock. And that clock moves in fixed steps,
//! so a seed replays: the same seed gives the same event log.

use std::time::{Duration, Instant};

use neumann_script::sim::{SimConfig, SimEvent};
use serde_json::Value;

use crate::support::{bare_command, expect, poll_until, Cluster, Running};

fn fast_cluster() -> Cluster {
    Cluster::with(SimConfig {
        nodes: 3,
        version: semver::Version::new(0, 10, 4),
        speed: 200.0,
        ..SimConfig::default()
    })
}

/// Runs `args` and returns (stdout, simulated seconds that passed, real seconds that passed).
fn timed(c: &Cluster, args: &[&str]) -> (String, f64, f64) {
    let (sim0, real0) = (c.clock(), Instant::now());
    let (stdout, _) = expect(&c.run(args), 0);
    (stdout, c.clock() - sim0, real0.elapsed().as_secs_f64())
}

#[test]
fn sleep_and_now_run_on_the_simulators_clock() {
    let c = fast_cluster();
    let (stdout, sim, real) = timed(&c, &["-e", "let t = now(); sleep(900); now() - t"]);
    let slept: f64 = stdout.trim().parse().unwrap();
    // The upper bound leaves 1.5 s of real time at x200 for the calls around the sleep on a loaded machine.
    assert!((900.0..1200.0).contains(&slept), "now() moved {slept} s");
    assert!(sim >= 900.0, "the simulator's clock moved only {sim} s");
    // At x200, 900 simulated seconds are 4.5 real ones; real time would be 900.
    assert!(
        real < sim / 4.0,
        "{real} real seconds for {sim} simulated ones"
    );
}

#[test]
fn a_watch_counts_its_interval_on_the_simulators_clock() {
    let c = fast_cluster();
    let (stdout, sim, _) = timed(
        &c,
        &[
            "-e",
            "metrics::watch(\"node2\", 600, 60, |s| s.tx_per_sec > 0.0)",
        ],
    );
    // One sample per simulated minute, the last at the end: ten. At x200 a minute is 0.3 s of real time;
    // a machine that stalls longer than that can land the ninth sample past the end, which closes the
    // watch with nine, never more than ten.
    let samples: i64 = stdout.trim().parse().unwrap();
    assert!((9..=10).contains(&samples), "{samples} samples");
    assert!(sim >= 600.0, "{sim}");
}

#[test]
fn a_long_canary_watch_is_compressed_with_the_simulator() {
    let c = fast_cluster();
    let (_, sim, real) = timed(
        &c,
        &[
            "--yes",
            "--set",
            "monitor_secs=1800",
            "--set",
            "interval_secs=300",
            "canary_upgrade.rhai",
            "0.11.0",
        ],
    );
    assert!(sim >= 1800.0, "{sim}");
    assert!(
        real < sim / 4.0,
        "{real} real seconds for {sim} simulated ones"
    );
}

/// `neumann-script sim ARGS` at speed 20 in the foreground: its event log up to `until` simulated seconds,
/// read from its control API (`/sim/events?until=`) once its clock is past that, and what it printed
/// before it was stopped with Ctrl-C.
fn foreground_events(args: &[&str], until: f64) -> (Vec<SimEvent>, String) {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("c.toml");
    let child = bare_command(dir.path())
        .arg("sim")
        .args(args)
        .args(["--speed", "20", "--inventory"])
        .arg(&inv)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = Running::of(child);
    let control = poll_until("the inventory", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&inv).ok()?;
        let table: toml::Table = text.parse().ok()?;
        Some(format!(
            "http://{}",
            table.get("sim")?.get("control")?.as_str()?
        ))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |path: &str| -> Option<Value> {
        rt.block_on(async {
            reqwest::get(format!("{control}{path}"))
                .await
                .ok()?
                .json()
                .await
                .ok()
        })
    };
    poll_until(
        "the clock to pass the window",
        Duration::from_secs(60),
        || (get("/sim/clock")?["t"].as_f64()? > until).then_some(()),
    );
    let events = get(&format!("/sim/events?until={until}")).expect("the event log");
    run.signal("INT");
    let out = run.finish();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (serde_json::from_value(events).unwrap(), stderr)
}

/// `sim --seed 7 --fault node1:crash` twice: the same election at the same simulated moment, the same
/// writes failed, event for event; the seed is what the start-up line names. Another seed, another log.
#[test]
fn the_same_seed_replays_the_same_events_from_the_command_line() {
    let args = ["--seed", "7", "--fault", "node1:crash"];
    let (first, said) = foreground_events(&args, 4.0);
    let (second, _) = foreground_events(&args, 4.0);
    assert!(said.contains("seed 7"), "{said}");
    for kind in ["crash", "elected", "write_failed"] {
        assert!(first.iter().any(|e| e.kind == kind), "no {kind}: {first:?}");
    }
    assert_eq!(first, second);
    let (other, _) = foreground_events(&["--seed", "8", "--fault", "node1:crash"], 4.0);
    assert_ne!(first, other);
}

/// `--sim` prints the seed it drew, and `--sim-seed` gives it back: the same run again.
#[test]
fn the_embedded_simulator_prints_its_seed_and_takes_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let snippet = "sleep(1.0); 1";
    let run = |extra: &[&str]| {
        let mut cmd = crate::support::bare(dir.path());
        cmd.args(["--sim", "--sim-speed", "20"])
            .args(extra)
            .args(["-e", snippet]);
        expect(&cmd.output().unwrap(), 0)
    };
    let (_, said) = run(&[]);
    let seed = said
        .split("seed ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no seed in {said}"))
        .to_string();
    assert!(seed.parse::<u64>().is_ok(), "{said}");
    let (_, again) = run(&["--sim-seed", &seed]);
    assert!(again.contains(&format!("seed {seed})")), "{again}");
}
