//! What every native function of one engine shares: the tokio handle, the cluster it talks to, output,
//! settings, the interrupt, the journal, and the record of mutating calls.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use rhai::{EvalAltResult, Position};

use super::diagnostics;
use super::stop::{fail, refused_rule, ScriptStop};
use crate::cluster::{Cluster, Force, Guarded, OpError, Refusal};
use crate::interrupt;
use crate::journal;
use crate::lease::{self, Lease};
use crate::model::RhaiResult;
use crate::output::{Format, Output};

/// Turns an operation's failure into a catchable script error; unknown names become usage stops.
pub fn throw(e: OpError) -> Box<EvalAltResult> {
    match e {
        OpError::Usage(m) => ScriptStop::usage(m),
        // A safe stop (exit 3 when uncaught): nothing was changed, and the message names the rule.
        OpError::Refused(r) => ScriptStop::refused(r.rule.name(), r.message),
        e
        @ (OpError::Admin(_) | OpError::Host(_) | OpError::Prometheus(_) | OpError::Failed(_)) => {
            fail(e.to_string())
        }
        // Not catchable by `try`: Ctrl-C ends the run, it is not an error a script may swallow.
        OpError::Interrupted => {
            EvalAltResult::ErrorTerminated("interrupted".into(), Position::NONE).into()
        }
    }
}

/// How long a run that stops early waits for a node it changed to rejoin before it resumes the cluster.
const REJOIN_BEFORE_RESUME: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a call may go without an answer before the operator is shown what it waits for.
const SLOW_CALL: std::time::Duration = std::time::Duration::from_secs(2);

/// What the script API needs from the outside world.
pub struct Settings {
    /// `--set NAME=VALUE` pairs.
    pub options: BTreeMap<String, String>,
    /// Arguments after the script path.
    pub args: Vec<String>,
    /// `--yes`: `confirm()` answers yes.
    pub assume_yes: bool,
    /// The cluster is the embedded simulator: nothing real is at stake, `confirm()` answers yes.
    pub simulated: bool,
    /// A rehearsal on a twin: commands that would run outside the twin (exec, traffic switch) are not run.
    pub rehearsal: bool,
    pub format: Format,
    /// The command-line words that name this run's cluster (`--cluster '/abs/c.toml'`), for recovery
    /// hints an operator pastes; empty when the cluster lives only as long as the run (`--sim`).
    pub cluster_flag: String,
    /// The cluster is the embedded simulator (`--sim`), which ends with the run: a hint can only show the
    /// code, never a command to paste.
    pub embedded: bool,
    /// How to run this script again against the same cluster; `None` for snippets and the REPL.
    pub rerun: Option<Rerun>,
    /// The script's name, for the run lease.
    pub script: String,
    /// `--steal-lease`: take over a lease whose holder is known to be gone.
    pub steal_lease: bool,
}

/// The command that runs a script again as this run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rerun {
    pub command: String,
    /// A stock runbook, which skips the nodes already on its target.
    pub stock: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            options: BTreeMap::new(),
            args: Vec::new(),
            assume_yes: false,
            simulated: false,
            rehearsal: false,
            format: Format::Text,
            cluster_flag: String::new(),
            embedded: false,
            rerun: None,
            script: String::new(),
            steal_lease: false,
        }
    }
}

/// Shared by every native function of one runtime.
pub struct Ctx {
    pub tokio: tokio::runtime::Handle,
    /// The cluster API calls talk to: the run's own, or another inside `on_cluster`.
    pub cluster: RefCell<Option<Arc<Cluster>>>,
    /// Clusters opened by `on_cluster`, by inventory path, reused for the rest of the run.
    pub others: RefCell<HashMap<std::path::PathBuf, Arc<Cluster>>>,
    pub out: Output,
    pub settings: Settings,
    pub interrupt: interrupt::Interrupt,
    pub journal: journal::Journal,
    /// Nodes this run changed (drained, stopped, installed, started...), reported if the run ends early.
    pub touched: RefCell<BTreeSet<String>>,
    /// Every mutating call of the run, in order: a rehearsal's plan.
    pub plan: RefCell<Vec<Planned>>,
    /// Each step as it began: (calls in `plan` before it, nesting depth, name). A rehearsal's plan shows
    /// the calls under the steps (batches, groups, hooks, gates) that made them.
    pub plan_steps: RefCell<Vec<(usize, usize, String)>>,
    /// Nodes this run drained and has neither stopped nor undrained: put back if the run stops early.
    pub drained: RefCell<BTreeSet<String>>,
    /// What the run does first once it holds a cluster's lease, before the change that asked for it: the
    /// engine sets it to finish what earlier runs left (`recovery`); `None` in a bare context.
    pub on_lease: RefCell<Option<OnLease>>,
    /// While this run finishes what an earlier one left: that run's id, recorded with every call made for it.
    pub recovering: RefCell<Option<String>>,
    /// Clusters this run paused and has not resumed: resumed if the run stops early, unless a node whose
    /// version it changed is down.
    pub paused: RefCell<Vec<Arc<Cluster>>>,
    /// The run leases this run holds, one per cluster it changed.
    leases: RefCell<Vec<(Arc<Cluster>, Lease)>>,
    /// The steps the run is in, innermost last.
    steps: RefCell<Vec<String>>,
    /// The steps the run has begun, which its leases carry for `status --watch`.
    course: RefCell<lease::Course>,
    /// Waits in progress that show their own live line: calls inside them do not add another.
    pub announced: std::cell::Cell<u32>,
    /// Option names the script asked for with `option(name, ...)`: a `--set` the up-front check could not
    /// judge (`script::options`) and the run never read is reported at its end.
    pub options_asked: RefCell<BTreeSet<String>>,
    /// Told of every event of the run's course after the journal (webhooks, the report).
    pub listeners: RefCell<Vec<journal::Listener>>,
    /// An `abort` this run took: every later safe point throws it again, so a script that catches it
    /// still ends at its next one.
    pub aborted: RefCell<Option<String>>,
    /// The request a safe point inside a node's restart put off, said once.
    pub deferred: RefCell<Option<String>>,
    /// Where each module the run imported was read from, by name: a file's path, or `<stdlib>/NAME.rhai`
    /// for the embedded one (`module_file`). Shared with the engine's module resolver.
    pub modules: Rc<RefCell<HashMap<String, String>>>,
}

/// Called once a run holds a cluster's lease (`Ctx::on_lease`).
pub type OnLease = Rc<dyn Fn(&Ctx, &Arc<Cluster>) -> RhaiResult<()>>;

/// One mutating call as it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub op: String,
    pub node: Option<String>,
    pub args: serde_json::Value,
    pub error: Option<String>,
    /// The interlock that refused the call, when one did (then nothing was changed).
    pub refused: Option<&'static str>,
}

impl Ctx {
    /// The cluster, or a usage stop saying how to name one.
    pub fn cluster(&self) -> RhaiResult<Arc<Cluster>> {
        self.cluster.borrow().clone().ok_or_else(|| {
            ScriptStop::usage(
                "no cluster to talk to: pass --cluster FILE, set NEUMANN_CLUSTER, create ./neumann-cluster.toml, or use --sim",
            )
        })
    }

    /// A context with no cluster, journal or signal handling (`check`, `functions`, unit tests).
    pub fn bare(tokio: tokio::runtime::Handle) -> Ctx {
        Ctx {
            tokio,
            cluster: RefCell::new(None),
            others: RefCell::new(HashMap::new()),
            out: Output::new(),
            settings: Settings::default(),
            interrupt: interrupt::Interrupt::new(),
            journal: journal::Journal::off(),
            touched: RefCell::new(BTreeSet::new()),
            plan: RefCell::new(Vec::new()),
            plan_steps: RefCell::new(Vec::new()),
            drained: RefCell::new(BTreeSet::new()),
            paused: RefCell::new(Vec::new()),
            recovering: RefCell::new(None),
            on_lease: RefCell::new(None),
            leases: RefCell::new(Vec::new()),
            steps: RefCell::new(Vec::new()),
            course: RefCell::default(),
            announced: std::cell::Cell::new(0),
            options_asked: RefCell::new(BTreeSet::new()),
            listeners: RefCell::new(Vec::new()),
            aborted: RefCell::new(None),
            deferred: RefCell::new(None),
            modules: Rc::default(),
        }
    }

    /// One event of the run's course, journaled and passed to every listener. The kinds and their fields
    /// are listed in docs/SCRIPTING.md ("The run's events").
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        self.journal.event(kind, &fields);
        self.notify(kind, &fields);
    }

    /// Tells the listeners only: for what the journal already holds in its own form (`op`, each mutating
    /// call) or does not keep (`wait`, a wait's outcome).
    pub fn notify(&self, kind: &str, fields: &serde_json::Value) {
        for listen in self.listeners.borrow().iter() {
            listen(kind, fields);
        }
    }

    /// After a run that stopped early (interrupted, stopped safely, failed): nodes it drained and did not
    /// stop are undrained, so the stop does not leave them out of service. Bounded, and not through
    /// `block_on`, which refuses work once interrupted. `why` completes "the run ... while the node was
    /// drained".
    pub fn undrain_after_stop(&self, why: &str) {
        let drained: Vec<String> = self.drained.borrow().iter().cloned().collect();
        let Some(cluster) = self.cluster.borrow().clone() else {
            return;
        };
        for id in drained {
            let r = self.mutate(
                "node::undrain",
                Some(&id),
                serde_json::json!({ "id": id }),
                || match self.tokio.block_on(async {
                    tokio::time::timeout(
                        std::time::Duration::from_secs(15),
                        cluster.drain(&id, false, &Force::No),
                    )
                    .await
                }) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(fail(e.to_string())),
                    Err(_) => Err(fail(format!("{id}: undrain: no answer within 15 s"))),
                },
            );
            match r {
                Ok(()) => {
                    self.drained.borrow_mut().remove(&id);
                    self.out.info(&format!(
                        "{id}: undrained: the run {why} while the node was drained"
                    ));
                }
                Err(e) => self.out.warn(&format!(
                    "{id} is still DRAINED: undrain failed ({}); undrain it with: {}",
                    diagnostics::short(&e),
                    self.command_for(&format!("node::undrain(\"{id}\")"))
                )),
            }
        }
    }

    /// After a run that stopped early: a pause it made and did not resume is resumed, so client requests
    /// are served again, unless a node whose version this run changed is down (the runbook's rollback
    /// pauses so that no request meets a node on a version half put back). What it says is read from
    /// the cluster just before.
    pub fn resume_after_stop(&self) {
        let paused: Vec<Arc<Cluster>> = self.paused.borrow_mut().drain(..).collect();
        let bounded = std::time::Duration::from_secs(15);
        for cluster in paused {
            let health = self
                .tokio
                .block_on(async { tokio::time::timeout(bounded, cluster.health()).await });
            let h = match health {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    self.out.warn(&format!(
                        "this run paused the cluster, and whether it still is cannot be read ({e}); once it is healthy, resume it with: {}",
                        self.command_for("cluster::resume()")
                    ));
                    continue;
                }
                Err(_) => {
                    self.out.warn(&format!(
                        "this run paused the cluster, and whether it still is cannot be read (no answer within 15 s); once it is healthy, resume it with: {}",
                        self.command_for("cluster::resume()")
                    ));
                    continue;
                }
            };
            if !h.paused {
                continue;
            }
            let changed = self.versions_put();
            let mut down: Vec<String> = Vec::new();
            for m in h.members.iter().filter(|m| m.state == "down") {
                let Some(v) = changed.get(&m.id) else {
                    continue;
                };
                // A node this run has just started again (a restart finished before the run stopped)
                // is down for the seconds its start takes, not for good.
                self.out.info(&format!(
                    "{}: down on {v}, which this run put on it: waiting up to 30 s for it to rejoin before resuming the cluster",
                    m.id
                ));
                let rejoined = self.tokio.block_on(async {
                    tokio::time::timeout(
                        REJOIN_BEFORE_RESUME + bounded,
                        cluster.wait_rejoined(&m.id, REJOIN_BEFORE_RESUME, &mut |_| {}),
                    )
                    .await
                });
                if !matches!(rejoined, Ok(Ok(_))) {
                    down.push(format!("{} is down on {v}, which this run put on it", m.id));
                }
            }
            if !down.is_empty() {
                self.out.warn(&format!(
                    "the cluster stays PAUSED (client requests are rejected): {}. Once it runs, resume it with: {}",
                    down.join("; "),
                    self.command_for("cluster::resume()")
                ));
                continue;
            }
            let r = self.mutate(
                "cluster::resume",
                None,
                serde_json::json!({ "after_stop": true }),
                || match self.tokio.block_on(async {
                    tokio::time::timeout(bounded, cluster.set_paused(false)).await
                }) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(fail(e.to_string())),
                    Err(_) => Err(fail("cluster: resume: no answer within 15 s".to_string())),
                },
            );
            match r {
                Ok(()) => self.out.info(
                    "resumed the cluster: this run paused it and stopped before resuming it; no node whose version it changed is down",
                ),
                Err(e) => self.out.warn(&format!(
                    "the cluster is still PAUSED: resuming it failed ({}); resume it with: {}",
                    diagnostics::short(&e),
                    self.command_for("cluster::resume()")
                )),
            }
        }
    }

    /// The version this run last put on each node it installed or activated one on.
    fn versions_put(&self) -> BTreeMap<String, String> {
        let mut put = BTreeMap::new();
        for p in self.plan.borrow().iter().filter(|p| p.error.is_none()) {
            if !matches!(
                p.op.as_str(),
                "node::install" | "node::activate" | "node::install_all"
            ) {
                continue;
            }
            let Some(v) = p.args.get("version").and_then(|v| v.as_str()) else {
                continue;
            };
            let ids: Vec<String> = match (&p.node, p.args.get("ids")) {
                (Some(n), _) => vec![n.clone()],
                (None, Some(serde_json::Value::Array(ids))) => ids
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            for id in ids {
                put.insert(id, v.to_string());
            }
        }
        put
    }

    /// `neumann-script --cluster PATH -e 'CODE'`: a command the operator can paste to run `code`
    /// against this run's cluster, not whatever `$NEUMANN_CLUSTER` names.
    pub fn command_for(&self, code: &str) -> String {
        if self.settings.embedded {
            // `neumann-script --sim -e ...` would start a new simulator, not reach the one this run used.
            return format!(
                "`{code}` on a cluster that outlives the run (the embedded simulated cluster ends with this run, so there is nothing to run here)"
            );
        }
        let flag = &self.settings.cluster_flag;
        let sep = if flag.is_empty() { "" } else { " " };
        let quoted = shlex::try_quote(code).map_or_else(|_| code.into(), |q| q.into_owned());
        format!("neumann-script{sep}{flag} -e {quoted}")
    }

    /// The interlocks in front of a guarded call, asked before the call is announced, so a refused call
    /// says only that it was refused. A refusal `force` does not go past is an error. The ones it goes
    /// past are said loudly and returned, for the journal (empty when none would refuse it now). The
    /// cluster operation checks again as it acts; this is the early, clean answer, not the only guard.
    pub fn gate(
        &self,
        cluster: &Cluster,
        guarded: &Guarded<'_>,
        force: &Force,
    ) -> RhaiResult<Vec<Refusal>> {
        let judged = match self.block_on(cluster.interlock(guarded, force)) {
            Ok(j) => j,
            Err(e @ (OpError::Interrupted | OpError::Usage(_))) => return Err(throw(e)),
            // An emergency is when the cluster may not answer: forcing every rule goes ahead unchecked,
            // and says so.
            Err(e) if *force == Force::All => {
                self.out.warn(&format!(
                    "FORCED: the interlocks could not be checked ({e}); going ahead unchecked because of #{{force: true}}"
                ));
                return Ok(Vec::new());
            }
            Err(e) => return Err(throw(e)),
        };
        if let Some(r) = judged.refused {
            return Err(throw(OpError::Refused(r)));
        }
        for r in &judged.overridden {
            self.out.warn(&format!(
                "FORCED: {} goes past the {} interlock, which would refuse it: {}. Going ahead because of #{{force: {}}}; the override is journaled",
                r.subject,
                r.rule.name(),
                r.reason,
                force.written()
            ));
        }
        Ok(judged.overridden)
    }

    /// Runs a cluster call to completion from the script thread; Ctrl-C abandons it unless a node is
    /// between stop and start. A call with no answer after 2 s gets a live line naming what it waits
    /// for on which nodes, unless a wait already shows one.
    pub fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        let interrupt = self.interrupt.clone();
        let started = std::time::Instant::now();
        let in_flight = (self.announced.get() == 0)
            .then(|| {
                self.cluster
                    .borrow()
                    .as_ref()
                    .map(|c| c.admin.in_flight.clone())
            })
            .flatten();
        self.tokio.block_on(async move {
            tokio::pin!(f);
            tokio::select! {
                biased;
                r = &mut f => return r,
                _ = interrupt.stopped() => return Err(OpError::Interrupted),
                _ = tokio::time::sleep(SLOW_CALL) => {}
            }
            let mut live = None;
            let result = loop {
                let now = in_flight.as_ref().and_then(|s| s.describe());
                match (&mut live, now) {
                    (None, Some(now)) => live = Some((self.out.wait_since(&now, started), now)),
                    // Every 10 s without a terminal, so a long install is not silence.
                    (Some((wait, first)), Some(now)) if *first != now => {
                        wait.update(&format!("now {now}"))
                    }
                    (Some((wait, _)), _) => wait.update("no answer yet"),
                    (None, None) => {}
                }
                tokio::select! {
                    biased;
                    r = &mut f => break r,
                    _ = interrupt.stopped() => break Err(OpError::Interrupted),
                    _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                }
            };
            if let Some((wait, label)) = live {
                wait.finish(&match &result {
                    Ok(_) => format!("{label}: answered"),
                    Err(OpError::Interrupted) => format!("{label}: interrupted"),
                    Err(_) => format!("{label}: failed"),
                });
            }
            result
        })
    }

    /// Runs a mutating call: journaled with its arguments and result, and its node remembered as touched.
    pub fn mutate<T>(
        &self,
        op: &str,
        node: Option<&str>,
        args: serde_json::Value,
        f: impl FnOnce() -> RhaiResult<T>,
    ) -> RhaiResult<T> {
        self.mutate_overriding(op, node, args, &[], f)
    }

    /// As `mutate`, for a call that `overrode` interlocks with `#{force: ...}`: the journal records the
    /// rules and why each would have refused.
    pub fn mutate_overriding<T>(
        &self,
        op: &str,
        node: Option<&str>,
        args: serde_json::Value,
        overrode: &[Refusal],
        f: impl FnOnce() -> RhaiResult<T>,
    ) -> RhaiResult<T> {
        self.hold_lease()?;
        let mut args = args;
        if let (Some(run), serde_json::Value::Object(a)) =
            (self.recovering.borrow().clone(), &mut args)
        {
            a.insert("recovering".into(), run.into());
        }
        let started = std::time::Instant::now();
        // Journaled before it is sent: a process killed inside the call leaves the journal saying what
        // it may have done, for the next run to finish (`journal::leftovers`); the report draws a stop
        // still in progress from it.
        self.event(
            "op_begin",
            serde_json::json!({ "op": op, "node": node, "args": args }),
        );
        let result = f();
        // A call an interlock refused changed nothing: the node is not "changed by this run".
        let refused = result.as_ref().err().and_then(|e| refused_rule(e));
        if let (Some(n), None) = (node, refused) {
            self.touched.borrow_mut().insert(n.to_string());
        }
        let error = result.as_ref().err().map(|e| diagnostics::short(e));
        // One record per call: the rules it went past, joined (`quorum, leader`), each with its reason.
        let overrode = (!overrode.is_empty()).then(|| {
            let rules: Vec<&str> = overrode.iter().map(|r| r.rule.name()).collect();
            let reasons: Vec<&str> = overrode.iter().map(|r| r.reason.as_str()).collect();
            serde_json::json!({
                "rule": rules.join(", "),
                "reason": reasons.join("; "),
                "forced": true,
            })
        });
        let took = started.elapsed();
        self.journal
            .record_overriding(op, node, args.clone(), error.as_deref(), took, overrode);
        if !self.listeners.borrow().is_empty() {
            self.notify(
                "op",
                &serde_json::json!({
                    "op": op,
                    "node": node,
                    "args": args,
                    "error": error,
                    "refused": refused,
                    "duration_ms": took.as_millis() as u64,
                }),
            );
        }
        self.plan.borrow_mut().push(Planned {
            op: op.to_string(),
            node: node.map(str::to_string),
            args,
            error: error.clone(),
            refused,
        });
        result
    }

    /// Makes sure this run holds the lease of the cluster it is about to change: asked for on the first
    /// mutating call, so read-only runs never need it; callers that announce a change or enter a
    /// critical section first ask for it before that. A lease held by another run is a safe stop that
    /// changed nothing; a lease this run lost is a safe stop too.
    pub fn hold_lease(&self) -> RhaiResult<()> {
        let Some(cluster) = self.cluster.borrow().clone() else {
            return Ok(());
        };
        if let Some((_, held)) = self
            .leases
            .borrow()
            .iter()
            .find(|(c, _)| Arc::ptr_eq(c, &cluster))
        {
            return match held.lost() {
                Some(why) => Err(ScriptStop::guard(format!(
                    "{why}. This run stopped before its next change"
                ))),
                None => Ok(()),
            };
        }
        let me = lease::Identity::new(
            self.journal.run_id(),
            &self.settings.script,
            &self.settings.args,
        );
        let step = self.steps.borrow().last().cloned();
        let started = std::time::Instant::now();
        let steal = self.settings.steal_lease;
        let granted = self
            .block_on(async { Ok(lease::acquire(&cluster, &me, step, steal).await) })
            .map_err(throw)?;
        let granted = match granted {
            Ok(g) => g,
            Err(lease::Refused::Held(why)) => return Err(ScriptStop::guard(why)),
            Err(lease::Refused::Failed(e)) => return Err(throw(e)),
        };
        for w in &granted.warnings {
            self.out.warn(w);
        }
        if let Some(old) = &granted.stolen {
            self.out.warn(&if granted.holder_gone {
                format!(
                    "the cluster's lease was held by a process of this machine that is no longer running: this run took it over from {}",
                    lease::describe(old)
                )
            } else {
                format!(
                    "--steal-lease: this run took over the cluster's lease from {}",
                    lease::describe(old)
                )
            });
            self.journal.record(
                "lease::steal",
                None,
                serde_json::json!({
                    "from": old.holder,
                    "run_id": old.run_id,
                    "script": old.script,
                    "args": old.args,
                    "step": old.step,
                    "holder_gone": granted.holder_gone,
                }),
                None,
                started.elapsed(),
            );
        }
        granted.lease.set_course(self.course.borrow().to_json());
        self.leases
            .borrow_mut()
            .push((cluster.clone(), granted.lease));
        // With the lease in hand and before this run's first change: what earlier runs left undone.
        let first = self.on_lease.borrow().clone();
        match first {
            Some(finish) => finish(self, &cluster),
            None => Ok(()),
        }
    }

    /// The run leases this run holds, one per cluster it changed.
    pub fn held_leases(&self) -> std::cell::Ref<'_, Vec<(Arc<Cluster>, Lease)>> {
        self.leases.borrow()
    }

    /// A step begins: the leases this run holds show it, and add it to the run's course.
    pub fn step_begun(&self, name: &str) {
        let mut steps = self.steps.borrow_mut();
        self.plan_steps.borrow_mut().push((
            self.plan.borrow().len(),
            steps.len(),
            name.to_string(),
        ));
        self.course.borrow_mut().begin(name, steps.len());
        steps.push(name.to_string());
        self.show_steps(&steps);
    }

    /// The innermost step ends, `ok` or failed: the leases show the step around it, if any.
    pub fn step_ended(&self, ok: bool) {
        let mut steps = self.steps.borrow_mut();
        steps.pop();
        self.course.borrow_mut().end(ok);
        self.show_steps(&steps);
    }

    fn show_steps(&self, steps: &[String]) {
        let course = self.course.borrow().to_json();
        for (_, l) in self.leases.borrow().iter() {
            l.set_step(steps.last().map(String::as_str));
            l.set_course(course.clone());
        }
    }

    /// Gives back every lease this run holds; for the end of a session, whatever happened.
    pub fn release_leases(&self) {
        for (cluster, l) in self.leases.borrow_mut().drain(..) {
            // Not `block_on`: after Ctrl-C that refuses to run, and this must happen regardless.
            if let Err(e) = self.tokio.block_on(l.release()) {
                self.out.warn(&format!(
                    "could not release the run lease of `{}`: {e}; it expires on its own",
                    cluster.inventory.source.display()
                ));
            }
        }
    }
}
