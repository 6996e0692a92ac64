//! The one waiting loop of the tests: look, sleep a little, look again, and give up at a deadline with a
//! message that names what was awaited and what was seen instead, so a condition that never comes fails
//! its test instead of hanging the suite.

use std::time::{Duration, Instant};

/// What one look found.
pub enum Seen<T> {
    /// The condition holds; the wait returns this.
    Done(T),
    /// Not yet; what was seen instead, for the message if the deadline passes.
    NotYet(String),
    /// It never will (a process the wait depends on is gone): the wait ends now with this error.
    GaveUp(String),
}

/// What a probe may answer: `bool`, `Option<T>` (`Some` is done), `Result<T, String>` (an `Err` says
/// what was seen instead, and the wait goes on), or a [`Seen`].
pub trait Probe {
    type Done;
    fn seen(self) -> Seen<Self::Done>;
}

impl Probe for bool {
    type Done = ();
    fn seen(self) -> Seen<()> {
        if self {
            Seen::Done(())
        } else {
            Seen::NotYet(String::new())
        }
    }
}

impl<T> Probe for Option<T> {
    type Done = T;
    fn seen(self) -> Seen<T> {
        self.map_or_else(|| Seen::NotYet(String::new()), Seen::Done)
    }
}

impl<T> Probe for Result<T, String> {
    type Done = T;
    fn seen(self) -> Seen<T> {
        self.map_or_else(Seen::NotYet, Seen::Done)
    }
}

impl<T> Probe for Seen<T> {
    type Done = T;
    fn seen(self) -> Seen<T> {
        self
    }
}

/// Calls `probe` until it is done and returns what it found; `Err` naming `what` (a phrase that follows
/// "waiting for") and the last thing seen once `within` has passed, or at once if the probe gives up.
///
/// The first looks come quickly (5 ms apart), then every 50 ms: a condition that is already near is seen
/// at once, and a long wait does not keep a loaded machine busy with probes.
pub fn try_poll_until<P: Probe>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> P,
) -> Result<P::Done, String> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        let last = match probe().seen() {
            Seen::Done(v) => return Ok(v),
            Seen::GaveUp(why) => return Err(format!("stopped waiting for {what}: {why}")),
            Seen::NotYet(last) => last,
        };
        if Instant::now() >= deadline {
            let last = if last.is_empty() {
                String::new()
            } else {
                format!("; last seen: {last}")
            };
            return Err(format!(
                "gave up after {} s waiting for {what}{last}",
                within.as_secs_f64()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// [`try_poll_until`] for a test: panics with its message when the wait fails.
pub fn poll_until<P: Probe>(what: &str, within: Duration, probe: impl FnMut() -> P) -> P::Done {
    try_poll_until(what, within, probe).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_what_its_probe_found() {
        let mut looks = 0;
        let found = poll_until("the third look", Duration::from_secs(60), || {
            looks += 1;
            (looks == 3).then_some(looks)
        });
        assert_eq!(found, 3);
    }

    #[test]
    fn a_wait_that_never_comes_gives_up_at_its_deadline_naming_what_and_the_last_look() {
        let within = Duration::from_millis(100);
        let started = Instant::now();
        let mut looks = 0;
        let e = try_poll_until("the moon", within, || {
            looks += 1;
            Err::<(), _>(format!("look {looks}"))
        })
        .unwrap_err();
        assert!(started.elapsed() >= within, "{e}");
        assert_eq!(
            e,
            format!("gave up after 0.1 s waiting for the moon; last seen: look {looks}")
        );
        assert!(looks > 1, "{looks}");
    }

    #[test]
    #[should_panic(expected = "gave up after 0.05 s waiting for a true probe")]
    fn poll_until_panics_when_its_wait_fails() {
        poll_until("a true probe", Duration::from_millis(50), || false);
    }

    #[test]
    fn a_probe_that_gives_up_ends_the_wait_at_its_first_look() {
        let mut looks = 0;
        let e = try_poll_until("a server", Duration::from_secs(60), || {
            looks += 1;
            Seen::<()>::GaveUp("it exited".into())
        })
        .unwrap_err();
        assert_eq!(e, "stopped waiting for a server: it exited");
        assert_eq!(looks, 1);
    }
}
