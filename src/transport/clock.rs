//! Where a run's time comes from. Against a real cluster, real time. Against a simulated one, the
//! simulator's clock (its control API), so `sleep`, `metrics::watch` and a canary's 24 h watch are
//! compressed by `--sim-speed` like everything else the simulator does. A rehearsal's twin goes further:
//! it fast-forwards those waits (`warp`), simulating them as fast as the machine can.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The longest simulated wait asked of the simulator in one call; longer waits are several calls.
const CHUNK_SECS: f64 = 60.0;

pub enum Clock {
    Real,
    Sim {
        base: String,
        http: reqwest::Client,
        /// Ask the simulator to fast-forward each wait rather than pace it at its speed.
        warp: bool,
        /// (unix seconds, simulated seconds) when first read: `unix_now` counts on from there.
        origin: OnceLock<(f64, f64)>,
    },
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Clock {
    /// The simulator's clock when `control` (the inventory's `[sim] control`) names one, else real time.
    pub fn new(control: Option<&str>, warp: bool) -> Result<Clock, String> {
        let Some(control) = control else {
            return Ok(Clock::Real);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot set up the simulator's clock client: {e}"))?;
        Ok(Clock::Sim {
            base: format!("http://{control}"),
            http,
            warp,
            origin: OnceLock::new(),
        })
    }

    pub fn simulated(&self) -> bool {
        matches!(self, Clock::Sim { .. })
    }

    /// The simulator's control address when it refuses connections (the simulator is gone); `None`
    /// when it answers, is slower than `within`, or there is no simulator.
    pub async fn control_refuses(&self, within: Duration) -> Option<String> {
        let Clock::Sim { base, http, .. } = self else {
            return None;
        };
        let e = http
            .get(format!("{base}/sim/clock"))
            .timeout(within)
            .send()
            .await
            .err()?;
        (super::http::Cause::of(&e, within) == super::http::Cause::Refused)
            .then(|| base.trim_start_matches("http://").to_string())
    }

    async fn sim_get(http: &reqwest::Client, base: &str) -> Result<(f64, f64), String> {
        let url = format!("{base}/sim/clock");
        let v: Value = http
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                format!(
                    "simulator clock: GET {url}: {}",
                    crate::error::root_cause(&e)
                )
            })?
            .json()
            .await
            .map_err(|e| format!("simulator clock: GET {url}: {e}"))?;
        let t = v["t"]
            .as_f64()
            .ok_or_else(|| format!("simulator clock: GET {url}: no `t` in {v}"))?;
        Ok((t, v["speed"].as_f64().filter(|s| *s > 0.0).unwrap_or(1.0)))
    }

    /// How many of this clock's seconds pass in a real second: 1 in real time, the simulator's speed.
    pub async fn speed(&self) -> Result<f64, String> {
        match self {
            Clock::Real => Ok(1.0),
            Clock::Sim { base, http, .. } => Ok(Clock::sim_get(http, base).await?.1),
        }
    }

    /// Unix seconds: real ones, or on a simulated cluster the real time of the first reading plus the
    /// simulated time since.
    pub async fn unix_now(&self) -> Result<f64, String> {
        match self {
            Clock::Real => Ok(unix_secs()),
            Clock::Sim {
                base, http, origin, ..
            } => {
                let (t, _) = Clock::sim_get(http, base).await?;
                let (unix0, t0) = *origin.get_or_init(|| (unix_secs(), t));
                Ok(unix0 + (t - t0))
            }
        }
    }

    /// Waits `d` on this clock. On a simulated one, returns the simulated time it began and ended at.
    pub async fn sleep(&self, d: Duration) -> Result<Option<(f64, f64)>, String> {
        let (base, http, warp) = match self {
            Clock::Real => {
                tokio::time::sleep(d).await;
                return Ok(None);
            }
            Clock::Sim {
                base, http, warp, ..
            } => (base, http, *warp),
        };
        let (t0, speed) = Clock::sim_get(http, base).await?;
        let end = t0 + d.as_secs_f64();
        let url = format!("{base}/sim/sleep");
        let mut t = t0;
        // Each call asks for what is left until `end`, so time spent between calls is not added on.
        while t < end {
            let chunk = (end - t).min(CHUNK_SECS);
            // The simulator answers after chunk / speed real seconds (fast-forwarded, after simulating
            // the chunk flat out: a few seconds for an hour in a debug build); the margin is for a busy
            // machine.
            let limit = Duration::from_secs_f64(chunk / speed + 30.0);
            let started = Instant::now();
            let answer: Value = http
                .post(&url)
                .json(&serde_json::json!({ "secs": chunk, "warp": warp }))
                .timeout(limit)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| {
                    format!(
                        "simulator clock: POST {url} ({chunk:.1} s) failed after {:.1} s: {}",
                        started.elapsed().as_secs_f64(),
                        crate::error::root_cause(&e)
                    )
                })?
                .json()
                .await
                .map_err(|e| format!("simulator clock: POST {url}: {e}"))?;
            t = answer["t"].as_f64().unwrap_or(end);
        }
        Ok(Some((t0, t)))
    }
}
