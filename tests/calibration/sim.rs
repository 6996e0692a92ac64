//! The simulator side: each scenario on a fresh simulator at its default timing, measured from its
//! own records (`/sim/stats` and `/sim/events`).

use std::time::Duration;

use neumann_script::sim::{SimConfig, SimEvent, SimStats, Simulator};
use serde_json::{json, Value};

use super::*;
use crate::support::poll_until;

/// Scenarios timed by the simulator's own events run fast; those whose outage is the time between
/// two host calls from this test run slowly, so the calls' real latency adds little simulated time.
const SIM_FAST: f64 = 10.0;
const SIM_SLOW: f64 = 2.0;

struct Rig {
    tokio: tokio::runtime::Runtime,
    sim: Simulator,
    http: reqwest::Client,
}

impl Rig {
    fn start(seed: u64, speed: f64) -> Rig {
        Rig::with(SimConfig {
            speed,
            seed: Some(seed),
            ..SimConfig::default()
        })
    }

    fn with(config: SimConfig) -> Rig {
        let tokio = runtime();
        let sim = tokio.block_on(Simulator::start(config)).unwrap();
        Rig {
            tokio,
            sim,
            http: reqwest::Client::new(),
        }
    }

    fn post(&self, url: String, body: Value) -> Value {
        self.tokio.block_on(async {
            let r = self.http.post(&url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "POST {url}: {}", r.status());
            r.json::<Value>().await.unwrap()
        })
    }

    fn admin(&self, node: usize, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.sim.nodes()[node].1);
        self.post(url, body)
    }

    fn control(&self, path: &str, body: Value) -> Value {
        self.post(format!("http://{}{path}", self.sim.control_addr()), body)
    }

    fn host(&self, node: usize, action: &str) {
        let out = self.control(&format!("/sim/host/node{}/{action}", node + 1), json!({}));
        assert_eq!(out["status"], 0, "{out}");
    }

    fn fault(&self, node: usize, kind: &str) {
        self.control(
            "/sim/fault",
            json!({ "node": format!("node{}", node + 1), "kind": kind }),
        );
    }

    fn drain(&self, node: usize) {
        self.admin(node, "/admin/drain", json!({}));
    }

    fn now(&self) -> f64 {
        self.tokio.block_on(async {
            let url = format!("http://{}/sim/clock", self.sim.control_addr());
            let v: Value = self
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["t"].as_f64().unwrap()
        })
    }

    /// Lets `secs` of simulated time pass (a minute of the wall clock at most, far more than the
    /// rig's speeds need).
    fn pass(&self, secs: f64) {
        let until = self.now() + secs;
        poll_until(
            &format!("simulated time {until:.1} s"),
            Duration::from_secs(60),
            || self.now() >= until,
        );
    }

    fn event_after(&self, kind: &str, node: Option<usize>, after: f64) -> Option<SimEvent> {
        let id = node.map(|n| format!("node{}", n + 1));
        self.sim
            .events()
            .into_iter()
            .find(|e| e.t >= after && e.kind == kind && (id.is_none() || e.node == id))
    }

    fn wait_event(&self, kind: &str, node: usize, after: f64) -> SimEvent {
        poll_until(
            &format!("`{kind}` on node{}", node + 1),
            Duration::from_secs(30),
            || self.event_after(kind, Some(node), after),
        )
    }

    fn finish(self, time_ms: Option<u64>) -> Measure {
        let s: SimStats = self.sim.stats();
        let m = Measure {
            failed: s.client_writes_failed,
            gap_ms: s.max_ack_gap_ms,
            time_ms,
        };
        self.tokio.block_on(self.sim.shutdown());
        m
    }

    /// Node `n` drained and stopped, started again so that it is back after `secs` (its service
    /// takes `SIM_START_SECS` to start); returns when it rejoined.
    fn down(&self, n: usize, secs: f64) -> SimEvent {
        self.drain(n);
        self.pass(0.2);
        self.host(n, "stop");
        self.pass(secs - SIM_START_SECS);
        let t = self.now();
        self.host(n, "start");
        self.wait_event("rejoined", n, t)
    }
}

fn ms(secs: f64) -> u64 {
    (secs * 1000.0).round() as u64
}

/// Each scenario of `Scenario::ALL`, in order, each on a fresh simulator.
pub fn scenarios() -> Vec<Measure> {
    Scenario::ALL
        .iter()
        .enumerate()
        .map(|(k, s)| one(*s, k as u64 + 1))
        .collect()
}

fn one(s: Scenario, seed: u64) -> Measure {
    match s {
        Scenario::FollowerRestart => {
            let r = Rig::start(seed, SIM_SLOW);
            r.pass(1.0);
            let back = r.down(2, DOWN_SECS);
            r.wait_event("caught_up", 2, back.t);
            r.pass(2.0);
            r.finish(None)
        }
        Scenario::HandOver => {
            let r = Rig::start(seed, SIM_FAST);
            r.pass(1.0);
            r.admin(
                0,
                "/admin/raft/transfer-leadership",
                json!({ "to": "node2" }),
            );
            r.pass(1.0);
            let asked = r
                .event_after("transfer_requested", Some(0), 0.0)
                .expect("requested");
            let won = r
                .event_after("elected", Some(1), asked.t)
                .expect("node2 elected");
            r.finish(Some(ms(won.t - asked.t)))
        }
        Scenario::LeaderCrash => leader_crash(None),
        Scenario::TwoDown => {
            let r = Rig::start(seed, SIM_SLOW);
            r.pass(1.0);
            r.drain(1);
            r.drain(2);
            r.pass(0.2);
            r.host(1, "stop");
            r.host(2, "stop");
            r.pass(DOWN_SECS - SIM_START_SECS);
            let t = r.now();
            r.host(1, "start");
            r.host(2, "start");
            r.wait_event("caught_up", 1, t);
            r.wait_event("caught_up", 2, t);
            r.pass(2.0);
            r.finish(None)
        }
        Scenario::CatchUp | Scenario::CatchUpBySnapshot => {
            let secs = if s == Scenario::CatchUp {
                BEHIND_SECS
            } else {
                FAR_BEHIND_SECS
            };
            let r = Rig::start(seed, SIM_FAST);
            r.pass(1.0);
            let back = r.down(2, secs);
            let caught = r.wait_event("caught_up", 2, back.t);
            let snapshot = r.event_after("snapshot_installed", Some(2), back.t);
            assert_eq!(
                snapshot.is_some(),
                s == Scenario::CatchUpBySnapshot,
                "snapshot: {snapshot:?}"
            );
            r.pass(1.0);
            r.finish(Some(ms(caught.t - back.t)))
        }
        Scenario::HandOverToRestarted => {
            let r = Rig::start(seed, SIM_SLOW);
            r.pass(1.0);
            r.down(1, DOWN_SECS);
            r.admin(
                0,
                "/admin/raft/transfer-leadership",
                json!({ "to": "node2" }),
            );
            r.pass(1.5);
            let asked = r
                .event_after("transfer_requested", Some(0), 0.0)
                .expect("requested");
            assert!(r.event_after("transfer_failed", Some(0), 0.0).is_none());
            let won = r
                .event_after("elected", Some(1), asked.t)
                .expect("node2 elected");
            r.finish(Some(ms(won.t - asked.t)))
        }
        Scenario::LaggingFollower => {
            let r = Rig::start(seed, SIM_SLOW);
            r.pass(1.0);
            r.drain(1);
            r.drain(2);
            r.pass(0.2);
            r.fault(1, "hang");
            r.pass(FROZEN_SECS);
            // node2 resumes at the moment node3 stops, inside the simulator.
            r.control(
                "/sim/fault",
                json!({ "node": "node2", "kind": "heal", "when": { "event": "stop", "node": "node3" } }),
            );
            r.host(2, "stop");
            r.pass(2.5 - SIM_START_SECS);
            r.host(2, "start");
            r.admin(1, "/admin/undrain", json!({}));
            r.pass(1.0 + SIM_START_SECS);
            r.finish(None)
        }
        Scenario::Partition => {
            let trials: Vec<Measure> = (0..SIM_PARTITION_TRIALS)
                .map(|trial| {
                    let r = Rig::start(200 + trial, SIM_FAST);
                    r.pass(1.0);
                    r.fault(1, "partition");
                    r.pass(PARTITION_SECS);
                    let t = r.now();
                    r.fault(1, "heal");
                    r.pass(2.0);
                    let elected = r.event_after("elected", None, t).map(|e| ms(e.t - t));
                    r.finish(elected)
                })
                .collect();
            median_measure(&trials)
        }
    }
}

/// The leader crashed, undrained: the median of `SIM_CRASH_TRIALS`, at the simulator's election
/// timeouts or at `election_timeout_ms`.
pub fn leader_crash(election_timeout_ms: Option<(u64, u64)>) -> Measure {
    let crashes: Vec<Measure> = (0..SIM_CRASH_TRIALS)
        .map(|trial| {
            let r = Rig::with(SimConfig {
                speed: SIM_FAST,
                seed: Some(100 + trial),
                election_timeout_ms,
                ..SimConfig::default()
            });
            r.pass(1.0);
            r.fault(0, "crash");
            // Past the load balancer's 3 s to notice, and the 2 s deadline of the writes it
            // sent node1 meanwhile (etcd refuses those at once).
            r.pass(5.5);
            let crash = r.event_after("crash", Some(0), 0.0).expect("crashed");
            let won = r
                .event_after("elected", None, crash.t)
                .expect("a new leader");
            r.finish(Some(ms(won.t - crash.t)))
        })
        .collect();
    median_measure(&crashes)
}
