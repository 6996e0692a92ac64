//! A session: everything one command needs around its script engine, set up and torn down in one
//! place: the tokio runtime, the embedded simulator or a rehearsal's twin, the clusters, the journal, the
//! interrupt handler; and at the end the state report, SSH connections closed, the simulator's figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use semver::Version;

use crate::cluster::Cluster;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::journal::{self, Journal};
use crate::notify::Notifier;
use crate::output::{outln, Format, Output};
use crate::rehearse::Twin;
use crate::report::Collector;
use crate::script::ctx::{Ctx, Rerun, Settings};
use crate::script::engine::ScriptEngine;
use crate::script::show;
use crate::sim::{SimConfig, Simulator};

/// Which cluster a run talks to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An inventory file, or the default lookup when `None`.
    Inventory(Option<PathBuf>),
    /// The embedded simulator.
    Sim {
        nodes: usize,
        version: Version,
        speed: f64,
        bad_versions: Vec<Version>,
        /// `--sim-green VERSION`: a second simulated cluster on VERSION, the blue one's green.
        green: Option<Version>,
        /// `--sim-seed N`; drawn (and printed) when not given.
        seed: Option<u64>,
    },
}

/// Options shared by script runs and snippets.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub target: Target,
    pub options: BTreeMap<String, String>,
    pub yes: bool,
    pub format: Format,
    /// `--journal FILE`.
    pub journal: Option<PathBuf>,
    /// `--rehearse`: run against a twin of the cluster.
    pub rehearse: bool,
    /// `--steal-lease`: take over a run lease whose holder is known to be gone.
    pub steal_lease: bool,
    /// `--notify URL`: webhook receivers of the run's events, already checked.
    pub notify: Vec<String>,
    /// `--notify-on KIND,...`: the event kinds posted, already checked; replaces the inventory's
    /// `notify_on` for this run. `None` when not given.
    pub notify_on: Option<Vec<String>>,
    /// `--report FILE.html`: the run's timeline, written when the session closes.
    pub report: Option<PathBuf>,
}

/// The async runtime every command runs its I/O on: two workers, never the script's own thread.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("neumann-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Tool(format!("cannot start the async runtime: {e}")))
}

/// One command's cluster, engine and the services around them.
pub struct Session {
    tokio: tokio::runtime::Runtime,
    sim: Option<Simulator>,
    /// Under `--sim` for blue-green: the green simulator and the directory holding its inventory.
    green_sim: Option<(Simulator, tempfile::TempDir)>,
    /// A rehearsal's twin and the live cluster's name.
    twin: Option<(Twin, String)>,
    /// `--journal`, for the rehearsal's prediction from past runs.
    journal: Option<PathBuf>,
    /// `--report`: gathers the run's records for its page.
    report: Option<Collector>,
    engine: ScriptEngine,
    started: std::time::Instant,
    /// Webhook receivers of the run's events, drained when the session closes.
    notifier: Option<Notifier>,
    /// A rehearsal's own record in the journal: its start and its end, never its calls (they act on the
    /// twin). `None` for a live run, whose records go through its context's journal.
    record: Option<Journal>,
}

impl Session {
    /// Sets up the cluster the options name (an inventory, or a simulator started here) and an engine on
    /// it. `script` is (name, text), for the journal; `after_rehearsal` the id of the rehearsal the
    /// operator confirmed this live run after, recorded in its `run_start`.
    pub fn open(
        run: &RunOptions,
        args: Vec<String>,
        script: (&str, &str),
        after_rehearsal: Option<&str>,
    ) -> Result<Session, Error> {
        // Before anything starts: a report that could not be written is found out now, not after the run.
        let report_path = match &run.report {
            Some(p) => Some(crate::report::check_path(p).map_err(Error::Usage)?),
            None => None,
        };
        let tokio = tokio_runtime()?;
        let mut sim = None;
        let mut green_sim = None;
        let inventory = match &run.target {
            Target::Sim {
                nodes,
                version,
                speed,
                bad_versions,
                green,
                seed,
            } => {
                let cfg = SimConfig {
                    nodes: *nodes,
                    version: version.clone(),
                    speed: *speed,
                    bad_versions: bad_versions.clone(),
                    seed: *seed,
                    ..SimConfig::default()
                };
                let s = tokio
                    .block_on(Simulator::start(cfg))
                    .map_err(|e| Error::Tool(format!("cannot start the simulator: {e}")))?;
                // The seed is printed so that a run can be replayed with --sim-seed.
                Output::new().info(&format!(
                    "simulated cluster: {nodes} nodes on {version} (speed x{speed}, seed {}), control API on {}",
                    s.seed(),
                    s.control_addr()
                ));
                let mut toml = s.inventory_toml();
                // blue_green.rhai on --sim needs a green cluster: by default one on the VERSION it is given.
                let green = green.clone().or_else(|| {
                    script.0.ends_with("blue_green.rhai").then(|| {
                        args.first()
                            .and_then(|a| crate::model::policy::parse_version(a).ok())
                    })?
                });
                if let Some(v) = green {
                    let g = tokio
                        .block_on(Simulator::start(SimConfig {
                            nodes: *nodes,
                            version: v.clone(),
                            speed: *speed,
                            // Its own stream, fixed by the blue one's seed.
                            seed: Some(s.seed().wrapping_add(1)),
                            ..SimConfig::default()
                        }))
                        .map_err(|e| {
                            Error::Tool(format!("cannot start the green simulator: {e}"))
                        })?;
                    let dir = tempfile::tempdir().map_err(|e| {
                        Error::Tool(format!(
                            "cannot make a directory for the green inventory: {e}"
                        ))
                    })?;
                    let path = dir.path().join("green.toml");
                    std::fs::write(&path, g.inventory_toml()).map_err(|e| {
                        Error::Tool(format!("cannot write `{}`: {e}", path.display()))
                    })?;
                    toml.push_str(&format!(
                        "\n[blue_green]\ngreen = {:?}\n",
                        path.display().to_string()
                    ));
                    Output::new().info(&format!(
                        "simulated green cluster: {nodes} nodes on {v}, control API on {}; client traffic is on blue",
                        g.control_addr()
                    ));
                    green_sim = Some((g, dir));
                }
                let inv = Inventory::parse(&toml, Path::new("<embedded simulator>"))?;
                sim = Some(s);
                Some(inv)
            }
            Target::Inventory(path) => Inventory::locate(path.as_deref())?,
        };
        let cluster_flag = match &inventory {
            // The embedded simulator ends with the run: nothing is left to recover.
            _ if sim.is_some() => "--sim".to_string(),
            Some(inv) => format!("--cluster {}", quote(&journal::cluster_name(&inv.source))),
            None => String::new(),
        };
        // A rehearsal swaps the cluster for a twin; the live one is read once and never written to.
        let mut inventory = inventory;
        let mut twin = None;
        if run.rehearse {
            let live = inventory.take().ok_or_else(|| {
                Error::Usage("--rehearse needs a cluster to rehearse against: --cluster FILE, $NEUMANN_CLUSTER or ./neumann-cluster.toml".into())
            })?;
            let live_source = journal::cluster_name(&live.source);
            let live = Cluster::new(live).map_err(Error::Tool)?;
            let t = tokio.block_on(crate::rehearse::twin_of(&live))?;
            Output::new().info(&format!(
                "rehearsal: {} runs against a simulated twin of {live_source} ({}); only reads reach the live cluster",
                script.0, t.described
            ));
            inventory = Some(t.inventory.clone());
            twin = Some((t, live_source));
        }
        // Runs against a real inventory are journaled by default; the embedded simulator only on request.
        let journal_path = match (&run.journal, &sim, &inventory) {
            (Some(p), _, _) => Some(p.clone()),
            (None, None, Some(_)) => journal::default_path(),
            _ => None,
        };
        let cluster_name = inventory
            .as_ref()
            .map(|i| journal::cluster_name(&i.source))
            .unwrap_or_default();
        // A rehearsal records that it happened, against the live cluster, and nothing of what it did on
        // the twin: its calls journaled would read back as changes to the live cluster (`audit`, and a
        // re-run's recovery). A journal it cannot open only costs that record.
        let mut record = None;
        let journal = match (&journal_path, &twin) {
            (Some(p), Some((_, live))) => match Journal::open(p, script.0, script.1, live) {
                Ok(j) => {
                    let silent = j.silent();
                    record = Some(j);
                    silent
                }
                Err(e) => {
                    Output::new().warn(&format!("{e}: this rehearsal is not recorded"));
                    Journal::off()
                }
            },
            (Some(p), None) => {
                Journal::open(p, script.0, script.1, &cluster_name).map_err(Error::Usage)?
            }
            (None, _) => Journal::off(),
        };
        let notifier = notifier(
            run,
            inventory.as_ref(),
            script.0,
            twin.is_some(),
            &tokio,
            &journal,
        );
        let cluster = match inventory {
            Some(inv) => Some(Arc::new(Cluster::new(inv).map_err(Error::Tool)?)),
            None => None,
        };
        let mut ctx = Ctx::bare(tokio.handle().clone());
        *ctx.cluster.borrow_mut() = cluster;
        ctx.journal = journal;
        ctx.settings = Settings {
            options: run.options.clone(),
            assume_yes: run.yes,
            simulated: sim.is_some() || twin.is_some(),
            rehearsal: twin.is_some(),
            format: run.format,
            rerun: rerun_command(run, &cluster_flag, script.0, &args),
            args,
            cluster_flag,
            embedded: sim.is_some(),
            script: script.0.to_string(),
            steal_lease: run.steal_lease,
        };
        ctx.interrupt.set_command(if sim.is_some() {
            String::new()
        } else {
            format!("neumann-script {}", ctx.settings.cluster_flag)
        });
        let report = report_path.map(|p| {
            let c = Collector::new(p, twin.is_some());
            if let Some(cl) = ctx.cluster.borrow().as_ref() {
                c.cluster(tokio.handle(), cl);
            }
            ctx.listeners.borrow_mut().push(c.listener());
            c
        });
        let journal = ctx.journal.clone();
        let exit_report = report.clone();
        let interrupt = ctx.interrupt.clone();
        ctx.interrupt.on_exit(move |sig, stopped| {
            journal.record(
                "interrupted",
                None,
                serde_json::json!({
                    "signal": sig.name(),
                    "exit_code": sig.exit_code(),
                    "at_once": true,
                    "left_stopped": stopped,
                }),
                None,
                Duration::ZERO,
            );
            // The page as far as the run got: its own events, since there is no time to ask the simulator.
            if let Some(r) = &exit_report {
                let first = interrupt.first_signal().map(|(s, at)| (s.name(), at));
                r.exited_at_once(sig.name(), sig.exit_code(), stopped, first);
                if let Ok(path) = r.write() {
                    crate::output::errln!("report (as far as the run got): {}", path.display());
                }
            }
        });
        ctx.interrupt.install(tokio.handle());
        if let Some(n) = &notifier {
            ctx.listeners.borrow_mut().push(n.listener());
        }
        let (user, host) = journal::whoami();
        let start = serde_json::json!({
            "run_id": ctx.journal.run_id(),
            "script": ctx.settings.script,
            "args": ctx.settings.args,
            "cluster": cluster_name,
            "user": user,
            "host": host,
            "simulated": ctx.settings.simulated,
            "rehearsal": ctx.settings.rehearsal,
            "options": run.options,
            "command_line": journal::command_line(),
            "tool_version": journal::TOOL_VERSION,
            "commit": journal::COMMIT,
            "continues": continues(&ctx),
            "after_rehearsal": after_rehearsal,
        });
        if let Some(r) = &record {
            r.event("run_start", &start);
        }
        ctx.event("run_start", start);
        Ok(Session {
            started: std::time::Instant::now(),
            tokio,
            sim,
            green_sim,
            twin,
            journal: run.journal.clone(),
            report,
            engine: ScriptEngine::new(ctx),
            notifier,
            record,
        })
    }

    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }

    /// A rehearsal's record in the journal, for what the operator answers after it (`declined`); `None`
    /// for a live run, or a rehearsal that could not open the journal.
    pub fn rehearsal_record(&self) -> Option<Journal> {
        self.record.clone()
    }

    /// Reports what the run left if it ended early (or what a rehearsal found), closes SSH connections,
    /// and shuts the simulator down, whatever happened.
    pub fn close(self, result: &Result<(), Error>) {
        let Session {
            tokio,
            sim,
            green_sim,
            twin,
            journal,
            report,
            engine,
            started,
            notifier,
            record,
        } = self;
        // The versions the run leaves and the simulator's log, before it goes away.
        let read_simulator = |tokio: &tokio::runtime::Handle| {
            if let Some(r) = &report {
                let cluster = engine.ctx().cluster.borrow().clone();
                if let Err(e) = r.read_end(tokio, cluster.as_deref()) {
                    engine.ctx().out.warn(&format!(
                        "the report has no node lanes from the simulator: cannot read its records ({e})"
                    ));
                }
            }
        };
        let rehearsal = twin.is_some();
        let mut plan = None;
        if let Some((t, live_source)) = twin {
            // Before the twin goes away: the lease lives in the cluster.
            engine.ctx().release_leases();
            let (found, summary) = print_rehearsal(
                &engine,
                &t,
                &live_source,
                journal.or_else(journal::default_path),
                result,
            );
            plan = Some(summary);
            if let Some(r) = &report {
                r.rehearsal(found);
            }
            read_simulator(tokio.handle());
            tokio.block_on(t.sim.shutdown());
        } else if let Err(e) = result {
            let ctx = engine.ctx();
            let interrupted = matches!(e, Error::Interrupted { .. });
            // A stop, of whatever kind, does not leave out of service what this run took out.
            ctx.undrain_after_stop(if interrupted {
                "was interrupted"
            } else {
                "stopped"
            });
            ctx.resume_after_stop();
            if interrupted {
                print_changes(ctx);
            }
            print_state(ctx);
            // An abort asked from another terminal ends like an interrupt: the same command goes on.
            if matches!(e, Error::Interrupted { .. }) || ctx.aborted.borrow().is_some() {
                print_how_to_continue(ctx);
            }
        }
        if let (Some(r), Some((sig, at))) = (&report, engine.ctx().interrupt.first_signal()) {
            r.signalled(sig.name(), at, false);
        }
        if let Err(Error::Interrupted { signal }) = result {
            // The journal says why the run ended where it did, whoever reads it later.
            let name =
                crate::interrupt::Signal::from_number(*signal).map_or("signal", |s| s.name());
            engine.ctx().journal.record(
                "interrupted",
                None,
                serde_json::json!({ "signal": name, "exit_code": 128 + signal, "at_once": false }),
                None,
                Duration::ZERO,
            );
        }
        // After an interrupt's undrain, which is a change made under this run's lease; before the
        // simulator goes away, since the lease lives in the cluster.
        engine.ctx().release_leases();
        // SSH master connections end with the run, not at the remote end's idle timeout.
        let ctx = engine.ctx();
        let clusters: Vec<Arc<Cluster>> = ctx
            .cluster
            .borrow()
            .iter()
            .cloned()
            .chain(ctx.others.borrow().values().cloned())
            .collect();
        for c in clusters {
            tokio.block_on(c.hosts.close());
        }
        if !rehearsal {
            read_simulator(tokio.handle());
        }
        if let Some(s) = sim {
            let st = s.stats();
            // A usage stop changed nothing; the simulator's figures would only bury the message.
            if !matches!(result, Err(Error::Usage(_))) {
                engine.ctx().out.info(&format!(
                    "simulator: {} client writes ok, {} failed; {} elections; {} leader losses; {} ms without quorum; at least {} nodes healthy throughout; {} committed writes lost",
                    st.client_writes_ok, st.client_writes_failed, st.elections, st.leader_losses, st.quorum_lost_ms, st.min_healthy_seen, st.lost_committed_writes
                ));
            }
            tokio.block_on(s.shutdown());
        }
        if let Some((g, _dir)) = green_sim {
            tokio.block_on(g.shutdown());
        }
        let mut end = run_end(result, started.elapsed());
        if let Some(plan) = plan {
            end["rehearsal"] = plan;
        }
        if let Some(r) = &record {
            r.event("run_end", &end);
        }
        engine.ctx().event("run_end", end);
        if let Some(r) = &report {
            match r.write() {
                Ok(path) => engine.ctx().out.info(&format!(
                    "report: {}{}",
                    path.display(),
                    if rehearsal {
                        " (the predicted timeline)"
                    } else {
                        ""
                    }
                )),
                Err(e) => engine.ctx().out.warn(&e),
            }
        }
        // Last: `run_end` is queued, and the receivers get a bounded time to take it.
        if let Some(n) = notifier {
            n.finish();
        }
    }
}

/// The run this one continues, for its `run_start`: a script run again after the newest earlier run of
/// the same script, arguments and cluster did not end done (it stopped, failed, was interrupted or killed)
/// and its process is gone. The rerun command a stopped run prints is the same command, so it is linked
/// to it; so is a plain re-run after a kill. A rehearsal, a snippet or the REPL continues nothing.
fn continues(ctx: &Ctx) -> Option<String> {
    if ctx.settings.rehearsal || ctx.settings.rerun.is_none() {
        return None;
    }
    let earlier = match ctx.journal.previous_run(&ctx.settings.args) {
        Ok(e) => e?,
        Err(e) => {
            ctx.out.warn(&format!(
                "{e}: whether this run continues an earlier one is not recorded"
            ));
            return None;
        }
    };
    let running = earlier
        .pid
        .is_some_and(|pid| crate::lease::process_alive_here(&earlier.host, pid) == Some(true));
    (earlier.result.as_deref() != Some("done") && !running).then_some(earlier.run_id)
}

/// The webhook receivers of this run: `--notify` URLs, and for a script run the inventory's `[notify]
/// webhooks` too (a snippet or the REPL, mostly reads, would flood the channel: it notifies only when
/// `--notify` asks). A rehearsal changes nothing and tells nobody.
fn notifier(
    run: &RunOptions,
    inventory: Option<&Inventory>,
    script: &str,
    rehearsal: bool,
    tokio: &tokio::runtime::Runtime,
    journal: &Journal,
) -> Option<Notifier> {
    let is_script = !script.starts_with('<') || script.starts_with("<stock>/");
    let mut urls = run.notify.clone();
    if is_script {
        urls.extend(inventory.map(|i| i.webhooks.clone()).unwrap_or_default());
    }
    if urls.is_empty() {
        if run.notify_on.is_some() {
            Output::new().info(
                "--notify-on: this run has no webhook to post to (--notify URL; a script run also posts to the inventory's [notify] webhooks)",
            );
        }
        return None;
    }
    if rehearsal {
        Output::new().info("rehearsal: the webhooks are not told (a rehearsal changes nothing)");
        return None;
    }
    // One choice of kinds for every receiver of the run: the command line's, else the inventory's.
    let kinds = run
        .notify_on
        .as_deref()
        .or_else(|| inventory.and_then(|i| i.notify_on.as_deref()));
    Some(Notifier::start(
        &urls,
        kinds,
        tokio.handle().clone(),
        journal.clone(),
    ))
}

/// The `run_end` event's fields: how the run ended (`done`, `script error`, `usage`, `stopped`,
/// `interrupted`), its exit code and message.
fn run_end(result: &Result<(), Error>, took: Duration) -> serde_json::Value {
    let (outcome, code, message) = match result {
        Ok(()) => ("done", 0, None),
        Err(e) => {
            let outcome = match e {
                Error::Usage(_) | Error::Inventory { .. } => "usage",
                Error::Guard(_) => "stopped",
                Error::Interrupted { .. } => "interrupted",
                _ => "script error",
            };
            (outcome, e.exit_code(), Some(e.to_string()))
        }
    };
    serde_json::json!({
        "result": outcome,
        "exit_code": code,
        "message": message,
        "duration_ms": took.as_millis() as u64,
    })
}

/// A word for a shell command line, quoted when it needs to be.
fn quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| word.into(), |q| q.into_owned())
}

/// The command that runs `script` again as this run did; `None` for snippets and the REPL, which do not
/// resume.
fn rerun_command(
    run: &RunOptions,
    cluster_flag: &str,
    script: &str,
    args: &[String],
) -> Option<Rerun> {
    let stock = script.starts_with("<stock>/");
    let script = match script.strip_prefix("<stock>/") {
        Some(stock) => stock,
        None if script.starts_with('<') => return None,
        None => script,
    };
    let mut words = vec!["neumann-script".to_string()];
    if !cluster_flag.is_empty() {
        words.push(cluster_flag.to_string());
    }
    for (k, v) in &run.options {
        words.push(format!("--set {}", quote(&format!("{k}={v}"))));
    }
    if let Some(j) = &run.journal {
        words.push(format!("--journal {}", quote(&j.display().to_string())));
    }
    if run.format == Format::Json {
        words.push("--format json".into());
    }
    words.push(quote(script));
    words.extend(args.iter().map(|a| quote(a)));
    Some(Rerun {
        command: words.join(" "),
        stock,
    })
}

/// What this run changed before it was interrupted, node by node, from its record of mutating calls.
fn print_changes(ctx: &Ctx) {
    let plan = ctx.plan.borrow();
    let mut by_node: Vec<(String, Vec<String>)> = Vec::new();
    for p in plan.iter() {
        let node = p.node.clone().unwrap_or_else(|| "cluster".into());
        let op = p.op.rsplit("::").next().unwrap_or(&p.op);
        let mut what = match p.args.get("version").and_then(|v| v.as_str()) {
            Some(v) => format!("{op} {v}"),
            None => op.to_string(),
        };
        if p.args.get("force") == Some(&serde_json::Value::Bool(true)) {
            what.push_str(" (forced)");
        }
        match (&p.refused, p.error.as_deref()) {
            (Some(rule), _) => what.push_str(&format!(" (refused: {rule})")),
            (None, Some("interrupted")) => what.push_str(" (interrupted)"),
            (None, Some(_)) => what.push_str(" (failed)"),
            (None, None) => {}
        }
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, ops)) => ops.push(what),
            None => by_node.push((node, vec![what])),
        }
    }
    if by_node.is_empty() {
        ctx.out
            .info("this run changed nothing before it was interrupted");
        return;
    }
    let lines: Vec<String> = by_node
        .iter()
        .map(|(n, ops)| format!("{n} ({})", ops.join(", ")))
        .collect();
    ctx.out.info(&format!(
        "this run, before it was interrupted: {}",
        lines.join("; ")
    ));
}

/// How to go on after an interrupt: the same command again, which decides for itself what is left.
fn print_how_to_continue(ctx: &Ctx) {
    if ctx.settings.embedded {
        ctx.out.info(
            "the embedded simulated cluster ends with this run, so there is nothing to continue: the same command starts a new one",
        );
        return;
    }
    match &ctx.settings.rerun {
        Some(r) => ctx.out.info(&format!(
            "to continue, run it again (it re-reads the cluster and decides what is left{}): {}",
            if r.stock {
                "; a stock runbook skips the nodes already on its target"
            } else {
                ""
            },
            r.command
        )),
        None => ctx
            .out
            .info("a snippet does not resume: check the state above before running it again"),
    }
}

/// What a rehearsal found: the plan, the guards that fired, the predicted duration and final state. Returns
/// what it printed of the first three, for the report to show the same, and the figures the journal keeps.
fn print_rehearsal(
    engine: &ScriptEngine,
    twin: &crate::rehearse::Twin,
    live_source: &str,
    journal: Option<std::path::PathBuf>,
    result: &Result<(), Error>,
) -> (crate::report::timeline::Rehearsal, serde_json::Value) {
    let ctx = engine.ctx();
    let plan = ctx.plan.borrow();
    outln!("\nrehearsal against a twin of {live_source}: nothing was changed on the live cluster");
    let gate_count = plan.iter().filter(|p| p.op == "gate").count();
    let changes = plan.len() - gate_count;
    let s = if changes == 1 { "" } else { "s" };
    let gates = match gate_count {
        0 => String::new(),
        1 => ", 1 gate".to_string(),
        n => format!(", {n} gates"),
    };
    let mut lines = vec![format!("plan ({changes} change{s}{gates}, in order):")];
    lines.extend(crate::rehearse::plan_lines(&plan, &ctx.plan_steps.borrow()));
    if plan.is_empty() {
        lines.push("     (none)".into());
    }
    for line in &lines {
        outln!("{line}");
    }
    let guards = match result {
        Ok(()) => "guards: none fired".to_string(),
        Err(Error::Guard(m)) => format!("guards: {m}"),
        Err(e) => format!("the run would fail: {e}"),
    };
    outln!("{guards}");
    let medians = journal
        .map(|p| crate::rehearse::journal_medians(&p, live_source))
        .unwrap_or_default();
    let waits = ctx
        .cluster
        .borrow()
        .as_ref()
        .map(|c| c.waits())
        .unwrap_or_default();
    let (duration, basis) = crate::rehearse::predicted(&twin.sim.events(), &medians, &waits);
    let predicted = format!(
        "{} (from {basis}, plus the tool's few percent)",
        crate::output::human_duration(duration)
    );
    outln!("predicted duration: {predicted}");
    // What the journal keeps of it: the plan in figures, not its calls (they acted on the twin).
    let summary = serde_json::json!({
        "planned_changes": changes,
        "gates": gate_count,
        "predicted_ms": duration.as_millis() as u64,
    });
    if let Some(cluster) = ctx.cluster.borrow().clone() {
        if let Ok(h) = ctx.tokio.block_on(cluster.health()) {
            outln!("predicted final state:");
            outln!(
                "{}",
                show::to_text(&rhai::Dynamic::from(h)).unwrap_or_default()
            );
        }
    }
    let found = crate::report::timeline::Rehearsal {
        plan: lines,
        guards,
        predicted,
    };
    (found, summary)
}

/// After a run that ended early: the cluster's health now, and every node the run touched that is not
/// up and healthy, so the operator knows what was left and where.
fn print_state(ctx: &Ctx) {
    let (Some(cluster), touched) = (ctx.cluster.borrow().clone(), ctx.touched.borrow()) else {
        return;
    };
    if touched.is_empty() {
        return;
    }
    // Not `ctx.block_on`: after Ctrl-C that would refuse to run; this survey is read-only and bounded.
    let health = ctx
        .tokio
        .block_on(async { tokio::time::timeout(Duration::from_secs(15), cluster.health()).await });
    let out = &ctx.out;
    match health {
        Ok(Ok(h)) => {
            out.info(&format!(
                "state now: {}/{} members healthy (quorum {}), leader {}{}",
                h.healthy_members,
                h.members.len(),
                h.quorum,
                h.leader.as_deref().unwrap_or("none"),
                if h.paused { ", cluster PAUSED" } else { "" }
            ));
            for m in h.members.iter().filter(|m| touched.contains(&m.id)) {
                // A node that is up but still catching up is not back as it was: say so, with its lag.
                let catching_up = m.replication_lag_ms > crate::model::values::CAUGHT_UP_MS;
                let fine = m.state == "up" && m.healthy && !catching_up;
                out.info(&format!(
                    "  {} (changed by this run): {} on {}, {}{}{}",
                    m.id,
                    m.state,
                    m.version,
                    if m.healthy { "healthy" } else { "unhealthy" },
                    if catching_up && m.state != "down" {
                        format!(", catching up, lag {} ms", m.replication_lag_ms)
                    } else {
                        String::new()
                    },
                    if fine { "" } else { "  <- needs attention" }
                ));
            }
        }
        Ok(Err(e)) => out.warn(&format!("could not read the cluster's state: {e}")),
        Err(_) => out.warn("could not read the cluster's state within 15 s"),
    }
    if let Some(p) = ctx.journal.path() {
        out.info(&format!(
            "every change this run made is in the journal {}",
            p.display()
        ));
    }
}
