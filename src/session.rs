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
use crate::output::{outln, Format, Output};
use crate::rehearse::Twin;
use crate::script::ctx::{Ctx, Settings};
use crate::script::engine::ScriptEngine;
use crate::script::value;
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
    /// A rehearsal's twin and the live cluster's name.
    twin: Option<(Twin, String)>,
    /// `--journal`, for the rehearsal's prediction from past runs.
    journal: Option<PathBuf>,
    engine: ScriptEngine,
}

impl Session {
    /// Sets up the cluster the options name (an inventory, or a simulator started here) and an engine on
    /// it. `script` is (name, text), for the journal.
    pub fn open(
        run: &RunOptions,
        args: Vec<String>,
        script: (&str, &str),
    ) -> Result<Session, Error> {
        let tokio = tokio_runtime()?;
        let mut sim = None;
        let inventory = match &run.target {
            Target::Sim {
                nodes,
                version,
                speed,
                bad_versions,
            } => {
                let cfg = SimConfig {
                    nodes: *nodes,
                    version: version.clone(),
                    speed: *speed,
                    bad_versions: bad_versions.clone(),
                    ..SimConfig::default()
                };
                let s = tokio
                    .block_on(Simulator::start(cfg))
                    .map_err(|e| Error::Tool(format!("cannot start the simulator: {e}")))?;
                let inv = Inventory::parse(&s.inventory_toml(), Path::new("<embedded simulator>"))?;
                Output::new().info(&format!(
                    "simulated cluster: {nodes} nodes on {version} (speed x{speed}), control API on {}",
                    s.control_addr()
                ));
                sim = Some(s);
                Some(inv)
            }
            Target::Inventory(path) => Inventory::locate(path.as_deref())?,
        };
        // A rehearsal swaps the cluster for a twin; the live one is read once and never written to.
        let mut inventory = inventory;
        let mut twin = None;
        if run.rehearse {
            let live = inventory.take().ok_or_else(|| {
                Error::Usage("--rehearse needs a cluster to rehearse against: --cluster FILE, $NEUMANN_CLUSTER or ./neumann-cluster.toml".into())
            })?;
            let live_source = cluster_id(&live.source);
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
            _ if twin.is_some() => None,
            (Some(p), _, _) => Some(p.clone()),
            (None, None, Some(_)) => journal::default_path(),
            _ => None,
        };
        let cluster_name = inventory
            .as_ref()
            .map(|i| cluster_id(&i.source))
            .unwrap_or_default();
        let journal = match &journal_path {
            Some(p) => Journal::open(p, script.0, script.1, &cluster_name).map_err(Error::Usage)?,
            None => Journal::off(),
        };
        let cluster = match inventory {
            Some(inv) => Some(Arc::new(Cluster::new(inv).map_err(Error::Tool)?)),
            None => None,
        };
        let mut ctx = Ctx::bare(tokio.handle().clone());
        *ctx.cluster.borrow_mut() = cluster;
        ctx.journal = journal;
        ctx.settings = Settings {
            options: run.options.clone(),
            args,
            assume_yes: run.yes,
            simulated: sim.is_some() || twin.is_some(),
            rehearsal: twin.is_some(),
            format: run.format,
        };
        let journal = ctx.journal.clone();
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
        });
        ctx.interrupt.install(tokio.handle());
        Ok(Session {
            tokio,
            sim,
            twin,
            journal: run.journal.clone(),
            engine: ScriptEngine::new(ctx),
        })
    }

    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }

    /// Reports what the run left if it ended early (or what a rehearsal found), closes SSH connections,
    /// and shuts the simulator down, whatever happened.
    pub fn close(self, result: &Result<(), Error>) {
        let Session {
            tokio,
            sim,
            twin,
            journal,
            engine: runtime,
        } = self;
        if let Some((t, live_source)) = twin {
            report_rehearsal(
                &runtime,
                &t,
                &live_source,
                journal.or_else(journal::default_path),
                result,
            );
            tokio.block_on(t.sim.shutdown());
        } else if result.is_err() {
            report_state(runtime.ctx());
        }
        if let Err(Error::Interrupted { signal }) = result {
            // The journal says why the run ended where it did, whoever reads it later.
            let name =
                crate::interrupt::Signal::from_number(*signal).map_or("signal", |s| s.name());
            runtime.ctx().journal.record(
                "interrupted",
                None,
                serde_json::json!({ "signal": name, "exit_code": 128 + signal, "at_once": false }),
                None,
                Duration::ZERO,
            );
        }
        // SSH master connections end with the run, not at the remote end's idle timeout.
        let ctx = runtime.ctx();
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
        if let Some(s) = sim {
            let st = s.stats();
            runtime.ctx().out.info(&format!(
                "simulator: {} client writes ok, {} failed; {} elections; at least {} nodes healthy throughout; {} committed writes lost",
                st.client_writes_ok, st.client_writes_failed, st.elections, st.min_healthy_seen, st.lost_committed_writes
            ));
            tokio.block_on(s.shutdown());
        }
        warn_unused_options(runtime.ctx());
    }
}

/// Last, so it is not lost above the run's output: `--set` values the run never read had no effect.
fn warn_unused_options(ctx: &Ctx) {
    let unused = ctx.options_never_asked();
    if unused.is_empty() {
        return;
    }
    let asked = ctx.options_asked.borrow();
    let asked = if asked.is_empty() {
        "it asked for none".to_string()
    } else {
        format!(
            "it asked for {}",
            asked
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    for name in unused {
        let value = ctx.settings.options.get(&name).cloned().unwrap_or_default();
        ctx.out.warn(&format!(
            "--set {name}={value} had no effect: the run never asked for an option named `{name}` ({asked})"
        ));
    }
}

/// How the journal names a cluster: its inventory's absolute path, so two `c.toml`s in different
/// directories are different clusters.
fn cluster_id(source: &Path) -> String {
    std::fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string()
}

/// What a rehearsal found: the plan, the guards that fired, the predicted duration and final state.
fn report_rehearsal(
    rt: &ScriptEngine,
    twin: &crate::rehearse::Twin,
    live_source: &str,
    journal: Option<std::path::PathBuf>,
    result: &Result<(), Error>,
) {
    let ctx = rt.ctx();
    let plan = ctx.plan.borrow();
    outln!("\nrehearsal against a twin of {live_source}: nothing was changed on the live cluster");
    outln!("plan ({} changes, in order):", plan.len());
    for line in crate::rehearse::plan_lines(&plan) {
        outln!("{line}");
    }
    if plan.is_empty() {
        outln!("     (none)");
    }
    match result {
        Ok(()) => outln!("guards: none fired"),
        Err(Error::Guard(m)) => outln!("guards: {m}"),
        Err(e) => outln!("the run would fail: {e}"),
    }
    let medians = journal
        .map(|p| crate::rehearse::journal_medians(&p, live_source))
        .unwrap_or_default();
    let (duration, basis) = crate::rehearse::predicted(&twin.sim.events(), &medians);
    outln!(
        "predicted duration: {} (from {basis}, plus the tool's few percent)",
        crate::output::human_duration(duration)
    );
    if let Some(cluster) = ctx.cluster.borrow().clone() {
        if let Ok(h) = ctx.rt.block_on(cluster.health()) {
            outln!("predicted final state:");
            outln!(
                "{}",
                value::to_text(&rhai::Dynamic::from(h)).unwrap_or_default()
            );
        }
    }
}

/// After a run that ended early: the cluster's health now, and every node the run touched that is not
/// up and healthy, so the operator knows what was left and where.
fn report_state(ctx: &Ctx) {
    let (Some(cluster), touched) = (ctx.cluster.borrow().clone(), ctx.touched.borrow()) else {
        return;
    };
    if touched.is_empty() {
        return;
    }
    // Not `ctx.block_on`: after Ctrl-C that would refuse to run; this survey is read-only and bounded.
    let health = ctx
        .rt
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
                let fine = m.state == "up" && m.healthy;
                out.info(&format!(
                    "  {} (changed by this run): {} on {}, {}{}",
                    m.id,
                    m.state,
                    m.version,
                    if m.healthy { "healthy" } else { "unhealthy" },
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
