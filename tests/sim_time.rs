//! Under a simulated cluster a script's waits run on the simulator's clock: `sleep`, `now()`,
//! `metrics::watch` and a canary's watch are compressed by the simulator's speed, so a day-long canary
//! can be rehearsed in minutes. Judged by the simulator's own clock.

use std::time::Instant;

use neumann_script::sim::SimConfig;

use crate::support::{expect, Cluster};

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
