//! The script runtime: one Rhai engine with explicit limits, the script API registered as static
//! modules, `import` resolved from disk or the embedded stdlib, and errors turned into the program's
//! messages and exit codes.
//!
//! Rhai's native functions are synchronous, so the script runs on the calling thread and blocks on the
//! tokio runtime's handle for each cluster call; that thread is never a tokio worker.

pub mod embedded;
pub mod interrupt;
pub mod journal;
pub mod output;
pub mod report;
mod resolver;
pub mod value;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};

use crate::api::{self, FnDoc};
use crate::error::Error;
use crate::ops::{Cluster, OpError};
use output::Output;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Source texts by source name, for showing the offending line of an error.
#[derive(Default)]
pub struct Sources(RefCell<HashMap<String, String>>);

impl Sources {
    pub fn add(&self, name: &str, text: &str) {
        self.0
            .borrow_mut()
            .insert(name.to_string(), text.to_string());
    }

    pub fn line(&self, name: &str, line: usize) -> Option<String> {
        self.0
            .borrow()
            .get(name)
            .and_then(|t| t.lines().nth(line.checked_sub(1)?).map(str::to_string))
    }
}

/// A deliberate stop thrown by a script: a guard refusing to go on (exit 3) or bad input (exit 2).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStop {
    pub kind: StopKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Guard,
    Usage,
}

impl ScriptStop {
    pub fn guard(message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Guard,
            message: message.into(),
        }
        .into()
    }

    pub fn usage(message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Usage,
            message: message.into(),
        }
        .into()
    }
}

impl From<ScriptStop> for Box<EvalAltResult> {
    fn from(s: ScriptStop) -> Self {
        EvalAltResult::ErrorRuntime(Dynamic::from(s), Position::NONE).into()
    }
}

/// Turns an operation's failure into a catchable script error; unknown names become usage stops.
pub fn throw(e: OpError) -> Box<EvalAltResult> {
    match e {
        OpError::Usage(m) => ScriptStop::usage(m),
        OpError::Failed(m) => fail(m),
        // Not catchable by `try`: Ctrl-C ends the run, it is not an error a script may swallow.
        OpError::Interrupted => {
            EvalAltResult::ErrorTerminated("interrupted".into(), Position::NONE).into()
        }
    }
}

/// A plain runtime error carrying a message.
pub fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into().into(), Position::NONE).into()
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

/// Rhai rejects a `#!` line; blank it so line numbers stay true.
pub fn strip_shebang(text: &str) -> String {
    if text.starts_with("#!") {
        match text.find('\n') {
            Some(i) => text[i..].to_string(),
            None => String::new(),
        }
    } else {
        text.to_string()
    }
}

/// One engine with the script API, ready to run scripts, snippets or checks.
pub struct Runtime {
    script_dir: Rc<RefCell<Option<std::path::PathBuf>>>,
    engine: Engine,
    ctx: Rc<Ctx>,
    sources: Rc<Sources>,
    docs: Vec<FnDoc>,
}

impl Runtime {
    pub fn new(ctx: Ctx) -> Runtime {
        let ctx = Rc::new(ctx);
        let sources = Rc::new(Sources::default());
        let mut engine = Engine::new();
        // Explicit limits: debug builds default to a call depth too small for real runbooks, and a
        // runaway script should hit a clear limit rather than exhaust memory.
        engine
            .set_max_call_levels(128)
            .set_max_expr_depths(256, 128)
            .set_max_string_size(16 << 20)
            .set_max_array_size(1 << 20)
            .set_max_map_size(1 << 20)
            .set_max_modules(256)
            .set_strict_variables(true)
            .set_fail_on_invalid_map_property(true);
        engine.on_print(|s| println!("{s}"));
        engine.on_debug(|s, src, pos| {
            eprintln!(
                "debug {}:{}: {s}",
                src.unwrap_or("<script>"),
                pos.line().unwrap_or(0)
            )
        });
        let script_dir = Rc::new(RefCell::new(None));
        engine.set_module_resolver(resolver::Resolver::new(sources.clone(), script_dir.clone()));
        // Ctrl-C terminates the script at its next operation unless a node is between stop and start.
        let interrupt = ctx.interrupt.clone();
        engine.on_progress(move |_| {
            interrupt
                .should_stop()
                .then(|| Dynamic::from("interrupted"))
        });
        let docs = api::register(&mut engine, &ctx);
        Runtime {
            script_dir,
            engine,
            ctx,
            sources,
            docs,
        }
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every script function with its signature and doc, for `functions` and the REPL.
    pub fn docs(&self) -> &[FnDoc] {
        &self.docs
    }

    fn scope(&self) -> Scope<'static> {
        let mut scope = Scope::new();
        let args: rhai::Array = self
            .ctx
            .settings
            .args
            .iter()
            .map(|a| Dynamic::from(a.clone()))
            .collect();
        scope.push_constant("args", args);
        scope
    }

    fn compile(&self, name: &str, text: &str) -> Result<rhai::AST, Error> {
        self.sources.add(name, text);
        if !name.starts_with('<') {
            let dir = std::path::Path::new(name)
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            *self.script_dir.borrow_mut() = Some(if dir.as_os_str().is_empty() {
                ".".into()
            } else {
                dir
            });
        }
        let mut ast = self
            .engine
            .compile_with_scope(&self.scope(), strip_shebang(text))
            .map_err(|e| Error::Script(report::parse_error(&e, name, &self.sources)))?;
        ast.set_source(name);
        Ok(ast)
    }

    /// Compiles a script without running it: syntax, unknown variables and unknown functions.
    pub fn check(&self, name: &str, text: &str) -> Result<(), Error> {
        let ast = self.compile(name, text)?;
        report::check_calls(&self.engine, &ast, name, &self.sources).map_err(Error::Script)
    }

    /// A fresh scope with `args`, for a REPL session.
    pub fn new_scope(&self) -> Scope<'static> {
        self.scope()
    }

    /// Evaluates one REPL entry in a persistent scope; functions it defines join `lib` for later entries.
    pub fn eval_entry(
        &self,
        scope: &mut Scope<'static>,
        lib: &mut rhai::AST,
        text: &str,
    ) -> Result<Dynamic, Error> {
        let name = "<repl>";
        self.sources.add(name, text);
        let mut ast = self
            .engine
            .compile_with_scope(scope, text)
            .map_err(|e| Error::Script(report::parse_error(&e, name, &self.sources)))?;
        ast.set_source(name);
        *lib += ast;
        let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, lib);
        lib.clear_statements();
        result.map_err(|e| report::runtime_error(&e, name, &self.sources))
    }

    /// Runs a script; `name` is its path (or `<stock>/NAME` for an embedded one).
    pub fn run(&self, name: &str, text: &str) -> Result<Dynamic, Error> {
        let ast = self.compile(name, text)?;
        let mut scope = self.scope();
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| report::runtime_error(&e, name, &self.sources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_are_blanked_not_removed() {
        assert_eq!(
            strip_shebang("#!/usr/bin/env neumann-script\nlet x = 1;"),
            "\nlet x = 1;"
        );
        assert_eq!(strip_shebang("let x = 1;"), "let x = 1;");
    }
}
