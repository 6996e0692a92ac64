//! The run's side of `pause`, `resume` and `abort` (docs/CONTROL.md): requests wait on the run lease
//! until the run reaches a safe point (every `step` boundary, `checkpoint()`, `gate()`, and all through
//! the waits a script chooses: `sleep`, a metrics window, a watch), never while a node is between its
//! stop and its start. A paused run keeps its lease (the renewal task goes on) and waits for `resume`
//! from any terminal, or "y" at its own.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::ctx::{throw, Ctx, Planned};
use super::stop::{fail, ScriptStop};
use crate::cluster::Cluster;
use crate::cluster::OpError;
use crate::lease::{Action, Lease, Request};
use crate::model::RhaiResult;
use crate::output::{self, human_duration, Answer, Typed, Unanswered};

/// How often a paused run reads its lease for `resume` or `abort`: an operator's request is taken within
/// about a second, and a cluster is asked once a second at most.
const POLL: Duration = Duration::from_secs(1);

/// How often a wait reads its lease for a request: once a second of the wait's own clock, so a request
/// is taken within about a second of waiting, real or simulated; but never less often than once a real
/// second, nor more often than ten times (a simulator at --sim-speed 1000 is not read a thousand times a
/// second: there, a tenth of a real second is a hundred simulated ones).
fn poll_every(speed: f64) -> Duration {
    Duration::from_secs_f64((1.0 / speed.max(1.0)).clamp(0.1, 1.0))
}

/// The first request waiting on any of `leases` that carries requests, read every `every`.
async fn next_request(leases: &[(Arc<Cluster>, Lease)], every: Duration) -> Request {
    loop {
        for (_, l) in leases.iter().filter(|(_, l)| l.carries_requests()) {
            if let Some(r) = l.request().await {
                return r;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Who is paused by whom, and where: what the lease shows `status` while the run waits.
struct Pause {
    by: String,
    reason: String,
    at: String,
}

impl Pause {
    fn record(&self) -> Value {
        json!({
            "by": self.by,
            "reason": self.reason,
            "at": self.at,
            "since": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        })
    }
}

/// How the operator ends a wait: `resume` elsewhere, or "y" here.
enum Wake {
    Request(Request),
    Terminal,
    Lost(String),
}

fn reason_text(reason: &str) -> &str {
    if reason.is_empty() {
        "(no reason given)"
    } else {
        reason
    }
}

impl Ctx {
    /// A safe point: a `pause` or `abort` asked for this run is taken here, unless a node is between its
    /// stop and start, in which case it waits for the next safe point. `at` says where, for the operator
    /// and the lease ("before step \"upgrade node2\"", "checkpoint").
    pub fn safe_point(&self, at: &str) -> RhaiResult<()> {
        if let Some(why) = self.aborted.borrow().clone() {
            return Err(ScriptStop::guard(why));
        }
        if self.settings.rehearsal {
            return Ok(());
        }
        let Some(request) = self.pending_request() else {
            return Ok(());
        };
        self.act_on(request, at)
    }

    /// Takes `request` at the safe point `at`; one that arrives while a node is between its stop and its
    /// start waits for the next safe point.
    fn act_on(&self, request: Request, at: &str) -> RhaiResult<()> {
        let critical = self.interrupt.critical_nodes();
        if !critical.is_empty() {
            let key = format!("{}:{}", request.action, request.by);
            if self.deferred.borrow().as_deref() != Some(&key) {
                self.out.info(&format!(
                    "{} requested by {}: taken at the next safe point, once {} is started again",
                    request.action,
                    request.by,
                    critical.join(", ")
                ));
                *self.deferred.borrow_mut() = Some(key);
            }
            return Ok(());
        }
        *self.deferred.borrow_mut() = None;
        match request.action {
            Action::Pause => {
                let pause = Pause {
                    by: request.by.clone(),
                    reason: request.reason.clone(),
                    at: at.to_string(),
                };
                self.tell_leases(Some(&request), Some(pause.record()));
                self.event(
                    "paused",
                    json!({ "by": pause.by, "reason": pause.reason, "at": at }),
                );
                self.out.warn(&format!(
                    "paused by {}: {} ({at})",
                    pause.by,
                    reason_text(&pause.reason)
                ));
                self.wait_paused(&pause)
            }
            Action::Abort => self.take_abort(&request, at),
            Action::Resume => {
                // A resume with nothing paused (or a pause it cancelled before the run got here).
                self.tell_leases(Some(&request), None);
                self.out.info(&format!(
                    "resume requested by {}: the run was not paused; going on",
                    request.by
                ));
                Ok(())
            }
        }
    }

    /// Waits `d` on `cluster`'s clock (`sleep`, a metrics window, a watch's interval), as a safe point
    /// all the way through: the run's leases are read about once a second of the wait's clock, and a
    /// `pause` or `abort` is taken at once. Paused, the wait holds; resumed, it waits what was left of it.
    /// `what` names the wait for the operator (`a 1 min sample of node2`); `live` is its progress line,
    /// if it shows one. Between a node's stop and its start a request is only said to wait for the
    /// next safe point after the start; a wait with nothing to steer it (no lease that carries requests,
    /// a rehearsal) is a plain one. Returns how long it was paused, in seconds of the cluster's clock.
    pub fn steered_sleep(
        &self,
        cluster: &Arc<Cluster>,
        d: Duration,
        what: &str,
        live: Option<&str>,
    ) -> RhaiResult<f64> {
        if let Some(why) = self.aborted.borrow().clone() {
            return Err(ScriptStop::guard(why));
        }
        let mut steerable = !self.settings.rehearsal
            && self.held_leases().iter().any(|(_, l)| l.carries_requests());
        let speed = if steerable {
            let clock = &cluster.clock;
            self.block_on(async { clock.speed().await.map_err(OpError::Failed) })
                .map_err(throw)?
        } else {
            1.0
        };
        let now = || self.block_on(cluster.unix_now()).map_err(throw);
        let mut left = d;
        let mut paused = 0.0;
        let mut label = live.map(str::to_string);
        loop {
            // Read before the live line and the count of announced waits: a clock that cannot be read
            // returns here, with nothing left to close.
            let began = if steerable { Some(now()?) } else { None };
            // The wait's own live line: calls inside it do not add one of their own.
            let wait = label.as_deref().map(|l| self.out.wait(l));
            self.announced.set(self.announced.get() + 1);
            let heard = {
                let leases = self.held_leases();
                self.block_on(async {
                    if !steerable {
                        return cluster.sleep(left).await.map(|()| None);
                    }
                    tokio::select! {
                        r = cluster.sleep(left) => r.map(|()| None),
                        r = next_request(&leases, poll_every(speed)) => Ok(Some(r)),
                    }
                })
            };
            self.announced.set(self.announced.get() - 1);
            let finish = |wait: Option<output::Wait>, how: &str| {
                if let (Some(w), Some(l)) = (wait, &label) {
                    w.finish(&format!("{l}: {how}"));
                }
            };
            let request = match heard {
                Ok(None) => {
                    finish(wait, "done");
                    return Ok(paused);
                }
                Ok(Some(r)) => r,
                Err(e) => {
                    let how = if matches!(e, OpError::Interrupted) {
                        "interrupted"
                    } else {
                        "failed"
                    };
                    finish(wait, how);
                    return Err(throw(e));
                }
            };
            let heard_at = now()?;
            let waited = (heard_at - began.unwrap_or(heard_at)).max(0.0);
            left = left.saturating_sub(Duration::from_secs_f64(waited));
            finish(
                wait,
                &format!("{} requested by {}", request.action, request.by),
            );
            self.act_on(
                request,
                &format!("during {what} ({} of it left)", human_duration(left)),
            )?;
            // Between a node's stop and its start the request was only said to wait: the rest of this
            // wait is a plain one, and the next safe point after the start takes it.
            if !self.interrupt.critical_nodes().is_empty() {
                steerable = false;
            }
            paused += (now()? - heard_at).max(0.0);
            if left.is_zero() {
                return Ok(paused);
            }
            label = live.map(|l| format!("{l} (the {} left of it)", human_duration(left)));
        }
    }

    /// `gate(reason)`: the run pauses itself and waits for `resume` (or "y" at its terminal); `abort`
    /// ends it safely. `--yes` does not pass a gate.
    pub fn gate_here(&self, reason: &str) -> RhaiResult<()> {
        if self.settings.rehearsal {
            self.out.info(&format!(
                "gate: {reason}: a live run pauses here until it is resumed (rehearsal: going on)"
            ));
            self.event("gate", json!({ "reason": reason, "rehearsal": true }));
            self.plan.borrow_mut().push(Planned {
                op: "gate".into(),
                node: None,
                args: json!({ "reason": reason }),
                error: None,
                refused: None,
            });
            return Ok(());
        }
        self.safe_point(&format!("gate \"{reason}\""))?;
        let critical = self.interrupt.critical_nodes();
        let terminal = self.has_terminal();
        let passes = !critical.is_empty() || (self.settings.simulated && !terminal);
        // A paused run holds the lease: no other run changes the cluster while this one waits. Taken
        // before the gate is told, so the event can say whether another terminal can resume the run.
        let held = if passes { Ok(()) } else { self.hold_lease() };
        let remote =
            held.is_ok() && !passes && self.held_leases().iter().any(|(_, l)| l.carries_requests());
        let mut fields = json!({ "reason": reason });
        // The embedded simulator ends with the run: no other terminal can reach it.
        if remote && self.settings.cluster_flag != "--sim" {
            fields["resume"] = json!(self.steer_command("resume"));
        }
        self.event("gate", fields);
        held?;
        if !critical.is_empty() {
            self.out.warn(&format!(
                "gate: {reason}: not pausing while {} is between its stop and its start; going on",
                critical.join(", ")
            ));
            return Ok(());
        }
        if self.settings.simulated && !terminal {
            self.out.info(&format!(
                "gate: {reason}: passed (embedded simulator: no terminal to answer on, and no other \
                 terminal can reach it to resume)"
            ));
            return Ok(());
        }
        if !remote && !terminal {
            return Err(ScriptStop::guard(format!(
                "gate: {reason}: nobody can resume this run: there is no terminal to answer on and the \
                 cluster has no run lease to carry a `resume`. Nothing was changed at the gate; re-run \
                 from a terminal"
            )));
        }
        let pause = Pause {
            by: "gate".into(),
            reason: reason.to_string(),
            at: format!("gate \"{reason}\""),
        };
        self.tell_leases(None, Some(pause.record()));
        self.event(
            "paused",
            json!({ "by": "gate", "reason": reason, "at": pause.at }),
        );
        self.out.warn(&format!("gate: {reason}: paused"));
        self.wait_paused(&pause)
    }

    /// The first request waiting on any lease this run holds.
    fn pending_request(&self) -> Option<Request> {
        let leases = self.held_leases();
        for (_, l) in leases.iter().filter(|(_, l)| l.carries_requests()) {
            if let Some(r) = self.tokio.block_on(l.request()) {
                return Some(r);
            }
        }
        None
    }

    /// Acknowledges `acted_on` and sets the paused record on every lease this run holds.
    fn tell_leases(&self, acted_on: Option<&Request>, paused: Option<Value>) {
        for (cluster, l) in self.held_leases().iter() {
            if let Err(e) = self.tokio.block_on(l.update(acted_on, paused.clone())) {
                self.out.warn(&format!(
                    "could not update the run lease of `{}`: {e}; its next renewal carries it",
                    cluster.inventory.source.display()
                ));
            }
        }
    }

    fn take_abort(&self, request: &Request, at: &str) -> RhaiResult<()> {
        self.tell_leases(Some(request), None);
        self.event(
            "abort",
            json!({ "by": request.by, "reason": request.reason, "at": at }),
        );
        let why = format!(
            "aborted by {}: {} (taken at a safe point: {at}; no node was between its stop and start)",
            request.by,
            reason_text(&request.reason)
        );
        *self.aborted.borrow_mut() = Some(why.clone());
        Err(ScriptStop::guard(why))
    }

    /// `neumann-script --cluster /abs/prod.toml VERB`: steers this run from any terminal (the inventory's
    /// absolute path, so it works from any directory and whatever `$NEUMANN_CLUSTER` says).
    fn steer_command(&self, verb: &str) -> String {
        let flag = &self.settings.cluster_flag;
        if flag.is_empty() {
            format!("neumann-script {verb}")
        } else {
            format!("neumann-script {flag} {verb}")
        }
    }

    /// Stdin and stderr are a terminal, outside the REPL (whose line editor owns the terminal between
    /// entries).
    fn has_terminal(&self) -> bool {
        self.settings.script != "<repl>" && output::at_terminal()
    }

    /// `confirm(question)`: `--yes` and the embedded simulator answer yes; with no terminal it is a usage
    /// error; a signal while it waits ends the run as anywhere else.
    pub fn confirm(&self, question: &str) -> RhaiResult<bool> {
        let answered = if self.settings.assume_yes {
            Some("--yes")
        } else if self.settings.simulated {
            Some("simulated cluster")
        } else {
            None
        };
        match self
            .out
            .confirm(question, answered, &|| self.interrupt.should_stop())
        {
            Ok(Answer::Yes) => Ok(true),
            Ok(Answer::No) => Ok(false),
            Ok(Answer::Stopped) => Err(throw(OpError::Interrupted)),
            Err(Unanswered::NoTerminal(m)) => Err(ScriptStop::usage(m)),
            Err(Unanswered::Unreadable(m)) => Err(fail(m)),
        }
    }

    /// Waits, paused, until `resume` (any terminal) or "y" (this one); `abort` ends the run safely.
    fn wait_paused(&self, pause: &Pause) -> RhaiResult<()> {
        let terminal = self.has_terminal();
        let remote = self.settings.cluster_flag != "--sim"
            && self.held_leases().iter().any(|(_, l)| l.carries_requests());
        if remote {
            self.out.info(&format!(
                "the run holds its lease and waits. Resume it from any terminal with: {}   \
                 (or end it safely: {} --reason TEXT; see where it is: {})",
                self.steer_command("resume"),
                self.steer_command("abort"),
                self.steer_command("status")
            ));
        }
        if terminal {
            self.out.info("type y and Enter here to resume");
        }
        loop {
            let wake = self.next_wake(terminal)?;
            match wake {
                Wake::Lost(why) => {
                    return Err(ScriptStop::guard(format!(
                        "{why}. This run was paused and stopped without changing anything more"
                    )))
                }
                Wake::Terminal => {
                    self.tell_leases(None, None);
                    let (user, host) = crate::journal::whoami();
                    let by = format!("{user}@{host} (terminal)");
                    self.event("resumed", json!({ "by": by }));
                    self.out.info(&format!("resumed by {by}"));
                    return Ok(());
                }
                Wake::Request(r) => match r.action {
                    Action::Resume => {
                        self.tell_leases(Some(&r), None);
                        self.event("resumed", json!({ "by": r.by }));
                        self.out.info(&format!("resumed by {}", r.by));
                        return Ok(());
                    }
                    Action::Abort => return self.take_abort(&r, &pause.at),
                    Action::Pause => {
                        // Paused already: the newer pause's words replace the old ones.
                        let again = Pause {
                            by: r.by.clone(),
                            reason: r.reason.clone(),
                            at: pause.at.clone(),
                        };
                        self.tell_leases(Some(&r), Some(again.record()));
                        self.out.info(&format!(
                            "paused by {} as well: {}",
                            r.by,
                            reason_text(&r.reason)
                        ));
                    }
                },
            }
        }
    }

    /// The next thing that ends or changes a pause; Ctrl-C (or a signal) ends the run as anywhere else.
    fn next_wake(&self, mut terminal: bool) -> RhaiResult<Wake> {
        loop {
            for (_, l) in self.held_leases().iter() {
                if let Some(why) = l.lost() {
                    return Ok(Wake::Lost(why));
                }
            }
            if let Some(r) = self.pending_request() {
                return Ok(Wake::Request(r));
            }
            let typed = if terminal {
                // A terminal that cannot be read is as good as closed: only a request can resume.
                output::typed_line(&|| self.interrupt.should_stop(), Some(POLL))
                    .unwrap_or(Typed::Closed)
            } else {
                let interrupt = self.interrupt.clone();
                self.tokio.block_on(async {
                    tokio::select! {
                        _ = interrupt.stopped() => Typed::Stopped,
                        _ = tokio::time::sleep(POLL) => Typed::Nothing,
                    }
                })
            };
            match typed {
                Typed::Stopped => return Err(throw(OpError::Interrupted)),
                Typed::Line(line) if output::is_yes(&line) => return Ok(Wake::Terminal),
                Typed::Line(_) => self.out.info("type y and Enter to resume"),
                Typed::Closed => terminal = false,
                Typed::Nothing => {}
            }
        }
    }
}
