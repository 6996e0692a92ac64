//! What every native function of one engine shares: the tokio handle, the cluster it talks to, output,
//! settings, the interrupt, the journal, and the record of mutating calls.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rhai::{EvalAltResult, Position};

use super::report;
use super::stop::{fail, ScriptStop};
use crate::cluster::{Cluster, OpError};
use crate::interrupt;
use crate::journal;
use crate::output::{Format, Output};

/// Turns an operation's failure into a catchable script error; unknown names become usage stops.
pub fn throw(e: OpError) -> Box<EvalAltResult> {
    match e {
        OpError::Usage(m) => ScriptStop::usage(m),
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
        }
    }
}

/// Shared by every native function of one runtime.
pub struct Ctx {
    pub rt: tokio::runtime::Handle,
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
    /// Option names the script asked for with `option(name, ...)`, so a `--set` it never read is reported.
    pub options_asked: RefCell<BTreeSet<String>>,
}

/// One mutating call as it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub op: String,
    pub node: Option<String>,
    pub args: serde_json::Value,
    pub error: Option<String>,
}

impl Ctx {
    /// `--set` names the run never asked for: a typo, or an option of another script.
    pub fn options_never_asked(&self) -> Vec<String> {
        let asked = self.options_asked.borrow();
        self.settings
            .options
            .keys()
            .filter(|k| !asked.contains(*k))
            .cloned()
            .collect()
    }

    /// The cluster, or a usage stop saying how to name one.
    pub fn cluster(&self) -> Result<Arc<Cluster>, Box<EvalAltResult>> {
        self.cluster.borrow().clone().ok_or_else(|| {
            ScriptStop::usage(
                "no cluster to talk to: pass --cluster FILE, set NEUMANN_CLUSTER, create ./neumann-cluster.toml, or use --sim",
            )
        })
    }

    /// A context with no cluster, journal or signal handling (`check`, `functions`, unit tests).
    pub fn bare(rt: tokio::runtime::Handle) -> Ctx {
        Ctx {
            rt,
            cluster: RefCell::new(None),
            others: RefCell::new(HashMap::new()),
            out: Output::new(),
            settings: Settings::default(),
            interrupt: interrupt::Interrupt::new(),
            journal: journal::Journal::off(),
            touched: RefCell::new(BTreeSet::new()),
            plan: RefCell::new(Vec::new()),
            options_asked: RefCell::new(BTreeSet::new()),
        }
    }

    /// Runs a cluster call to completion from the script thread; Ctrl-C abandons it unless a node is
    /// between stop and start.
    pub fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        let interrupt = self.interrupt.clone();
        self.rt.block_on(async move {
            tokio::select! {
                biased;
                r = f => r,
                _ = interrupt.stopped() => Err(OpError::Interrupted),
            }
        })
    }

    /// Runs a mutating call: journaled with its arguments and result, and its node remembered as touched.
    pub fn mutate<T>(
        &self,
        op: &str,
        node: Option<&str>,
        args: serde_json::Value,
        f: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
    ) -> Result<T, Box<EvalAltResult>> {
        if let Some(n) = node {
            self.touched.borrow_mut().insert(n.to_string());
        }
        let started = std::time::Instant::now();
        let result = f();
        let error = result.as_ref().err().map(|e| report::short(e));
        self.journal
            .record(op, node, args.clone(), error.as_deref(), started.elapsed());
        self.plan.borrow_mut().push(Planned {
            op: op.to_string(),
            node: node.map(str::to_string),
            args,
            error: error.clone(),
        });
        result
    }
}
