//! What the servers share: the world behind its mutex, the run lease beside it, and the time scale that
//! turns simulated waits into real ones.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lease::state::LeaseState;
use super::world::World;

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) world: Arc<Mutex<World>>,
    /// Simulated seconds per real second.
    pub(crate) speed: f64,
    /// The run lease; locked before the world when both are needed.
    pub(crate) lease: Arc<Mutex<LeaseState>>,
    pub(crate) lease_api: bool,
    /// Simulated seconds fast-forwarded (`/sim/sleep` with `warp`): the tick task's target is real time
    /// times the speed plus this, so the clock goes on from where a warp left it.
    pub(crate) warped: Arc<Mutex<f64>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("simulator world mutex poisoned")
    }

    pub(crate) fn warped_secs(&self) -> f64 {
        *self.warped.lock().expect("simulator warp mutex poisoned")
    }

    /// Moves simulated time on by `secs` as fast as the machine can simulate it, rather than at the
    /// simulator's speed: every node, client and timer runs through it in the same fixed slices as paced
    /// time, in ticks of at most 20 simulated seconds with the world unlocked between them. Each tick
    /// moves the run lease's expiry on by what it simulated, since the TTL counts its holder's real
    /// seconds, which a warp does not take; a renewal that lands mid-warp is moved on from there.
    pub(crate) async fn warp(&self, secs: f64) -> f64 {
        let until = self.lock().now + secs;
        loop {
            {
                let mut lease = self.lease.lock().expect("simulator lease mutex poisoned");
                let mut m = self.lock();
                if m.reached(until) {
                    return m.now;
                }
                let before = m.now;
                m.tick_towards(until);
                let gained = m.now - before;
                lease.postpone(gained);
                *self.warped.lock().expect("simulator warp mutex poisoned") += gained;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Waits (real time) until `ready` holds, which it will within `sim_secs` simulated seconds, or a
    /// real-time cap passes; returns whether it got there. The cap only matters if the tick task is gone.
    pub(crate) async fn wait_for(&self, sim_secs: f64, ready: impl Fn(&World) -> bool) -> bool {
        let until = self.lock().now + sim_secs;
        self.wait_capped(0.0, until, ready).await
    }

    /// Waits (real time) until simulated time reaches `t` and `ready` holds, or a real-time cap
    /// passes; returns whether it got there. The cap only matters if the tick task is gone.
    pub(crate) async fn wait_until(&self, t: f64, ready: impl Fn(&World) -> bool) -> bool {
        self.wait_capped(t, t, ready).await
    }

    /// `wait_until(t, ready)`, giving up some real time after simulated time `patience` would pass.
    async fn wait_capped(&self, t: f64, patience: f64, ready: impl Fn(&World) -> bool) -> bool {
        let cap = Instant::now()
            + Duration::from_secs(30)
            + Duration::from_secs_f64(secs_real(patience, self.speed));
        loop {
            let remaining = {
                let m = self.lock();
                if m.reached(t) && ready(&m) {
                    return true;
                }
                (t - m.now).max(0.0) / self.speed
            };
            if Instant::now() >= cap {
                return false;
            }
            let nap = remaining.clamp(0.001, 0.01);
            tokio::time::sleep(Duration::from_secs_f64(nap)).await;
        }
    }
}

fn secs_real(sim_secs: f64, speed: f64) -> f64 {
    (sim_secs.max(0.0) / speed).min(3600.0)
}
