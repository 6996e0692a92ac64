//! The script engine: one Rhai engine with explicit limits, the script API registered as static
//! modules, `import` resolved from disk or the embedded stdlib, and errors turned into the program's
//! messages and exit codes.
//!
//! Rhai's native functions are synchronous, so the script runs on the calling thread and blocks on the
//! tokio runtime's handle for each cluster call; that thread is never a tokio worker.

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Scope};

use super::ctx::Ctx;
use super::diagnostics::{self, strip_shebang, Sources};
use super::modules::{self, builder::FnDoc};
use super::options::{self, ScriptOptions};
use super::resolver;
use super::show;
use crate::error::Error;
use crate::output::{errln, outln};

/// One engine with the script API, ready to run scripts, snippets or checks.
pub struct ScriptEngine {
    script_dir: Rc<RefCell<Option<std::path::PathBuf>>>,
    engine: Engine,
    ctx: Rc<Ctx>,
    sources: Rc<Sources>,
    docs: Vec<FnDoc>,
}

impl ScriptEngine {
    pub fn new(ctx: Ctx) -> ScriptEngine {
        *ctx.on_lease.borrow_mut() = Some(Rc::new(super::recovery::finish_earlier_runs));
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
        // With --format json, stdout carries one JSON document: a script's own prints go to stderr so a
        // pipe into `jq` still parses. In a rehearsal what the script prints is what it did to the twin
        // ("rolling upgrade complete"): stdout is the rehearsal's report, and the script's words go to
        // stderr marked as the twin's, never read as the live cluster's news.
        if ctx.settings.rehearsal {
            engine.on_print(|s| errln!("rehearsal, on the twin: {s}"));
        } else if ctx.settings.format == crate::output::Format::Json {
            engine.on_print(|s| errln!("{s}"));
        } else {
            engine.on_print(|s| outln!("{s}"));
        }
        engine.on_debug(|s, src, pos| {
            errln!(
                "debug {}:{}: {s}",
                src.unwrap_or("<script>"),
                pos.line().unwrap_or(0)
            )
        });
        let script_dir = Rc::new(RefCell::new(None));
        engine.set_module_resolver(resolver::Resolver::new(
            sources.clone(),
            script_dir.clone(),
            ctx.modules.clone(),
        ));
        // Ctrl-C terminates the script at its next operation unless a node is between stop and start.
        let interrupt = ctx.interrupt.clone();
        engine.on_progress(move |_| {
            interrupt
                .should_stop()
                .then(|| Dynamic::from("interrupted"))
        });
        let docs = modules::register(&mut engine, &ctx);
        // Arrays and maps in messages (`${h.problems}`, `${versions}`) read as lists, not Rhai literals.
        engine
            .register_fn("to_string", |a: &mut rhai::Array| {
                show::plain(&Dynamic::from(a.clone()))
            })
            .register_fn("to_string", |m: &mut rhai::Map| {
                show::plain(&Dynamic::from(m.clone()))
            });
        ScriptEngine {
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

    /// The Rhai engine underneath, for what reads its registrations (definitions, type names).
    pub fn rhai(&self) -> &Engine {
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

    /// Keeps the text for error messages and, for a file, its directory for imports.
    fn take_source(&self, name: &str, text: &str) {
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
    }

    fn compile(&self, name: &str, text: &str) -> Result<rhai::AST, Error> {
        self.take_source(name, text);
        let mut ast = self
            .engine
            .compile_with_scope(&self.scope(), strip_shebang(text))
            .map_err(|e| Error::Script(diagnostics::parse_error(&e, name, &self.sources)))?;
        ast.set_source(name);
        Ok(ast)
    }

    /// Compiles a script without running it: its syntax, so a typo is reported before a cluster or
    /// simulator is set up for it.
    pub fn parse(&self, name: &str, text: &str) -> Result<(), Error> {
        self.compile(name, text).map(|_| ())
    }

    /// Compiles a script without running it and reports every problem found, each with file:line: the
    /// unknown variables and modules (each at its first use), the unknown functions and wrong numbers of
    /// arguments, and the first syntax error, after which Rhai reads no further (`diagnostics::parse_on`).
    /// An unknown module is registered on this engine, empty, so the parse can go on: check one file
    /// per engine.
    pub fn check(&mut self, name: &str, text: &str) -> Result<(), Error> {
        self.take_source(name, text);
        let scope = self.scope();
        let (ast, mut problems) =
            diagnostics::parse_on(&mut self.engine, scope, &strip_shebang(text));
        if let Some(ast) = &ast {
            problems.extend(diagnostics::call_problems(&self.engine, ast));
        }
        diagnostics::report(problems, name, &self.sources).map_err(Error::Script)
    }

    /// The options a script takes, read from its text and the modules it imports without running
    /// anything (`options::scan`); a syntax error is reported as `parse` reports it.
    pub fn options(&self, name: &str, text: &str) -> Result<ScriptOptions, Error> {
        let ast = self.compile(name, text)?;
        let dir = self.script_dir.borrow().clone();
        options::scan(&self.engine, name, &ast, dir.as_deref(), &self.sources)
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
        // Only a drain this entry makes is undone when Ctrl-C cancels it; earlier entries' drains were meant.
        self.ctx.drained.borrow_mut().clear();
        self.sources.add(name, text);
        let mut ast = self
            .engine
            .compile_with_scope(scope, text)
            .map_err(|e| Error::Script(diagnostics::parse_error(&e, name, &self.sources)))?;
        ast.set_source(name);
        *lib += ast;
        let result = self.engine.eval_ast_with_scope::<Dynamic>(scope, lib);
        lib.clear_statements();
        let result = result
            .map_err(|e| self.with_signal(diagnostics::runtime_error(&e, name, &self.sources)));
        if matches!(result, Err(Error::Interrupted { .. })) {
            self.ctx.undrain_after_stop("was interrupted");
        }
        result
    }

    /// An interruption carries the signal that caused it, for the exit code.
    fn with_signal(&self, e: Error) -> Error {
        match (e, self.ctx.interrupt.signal()) {
            (Error::Interrupted { .. }, Some(sig)) => Error::Interrupted {
                signal: sig.number(),
            },
            (e, _) => e,
        }
    }

    /// Runs a script; `name` is its path (or `<stock>/NAME` for an embedded one).
    pub fn run(&self, name: &str, text: &str) -> Result<Dynamic, Error> {
        let ast = self.compile(name, text)?;
        // A script run again after one was killed or stopped finishes what that one left before its first
        // line reads the cluster (docs/SAFETY.md, "Recovery"); a snippet waits for its first change.
        if self.ctx.settings.rerun.is_some() && super::recovery::anything_left(&self.ctx) {
            self.ctx.hold_lease().map_err(|e| {
                self.with_signal(diagnostics::runtime_error(&e, name, &self.sources))
            })?;
        }
        let mut scope = self.scope();
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
            .map_err(|e| self.with_signal(diagnostics::runtime_error(&e, name, &self.sources)))
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

    #[test]
    fn a_module_edited_on_disk_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("team.rhai");
        let script = dir.path().join("main.rhai");
        std::fs::write(&module, "fn threshold() { 1 }").unwrap();
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let engine = ScriptEngine::new(Ctx::bare(tokio.handle().clone()));
        let name = script.display().to_string();
        let text = r#"import "team" as t; t::threshold()"#;
        let first = engine.run(&name, text).unwrap();
        assert_eq!(first.as_int().unwrap(), 1);
        std::fs::write(&module, "fn threshold() { 2 }").unwrap();
        let second = engine.run(&name, text).unwrap();
        assert_eq!(
            second.as_int().unwrap(),
            2,
            "the edited module must be used"
        );
    }

    #[test]
    fn messages_show_arrays_and_maps_as_lists() {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let engine = ScriptEngine::new(Ctx::bare(tokio.handle().clone()));
        let text =
            r#"let v = #{node1: "0.10.4", node2: ["a", "b"]}; `${[]} | ${["x", "y"]} | ${v}`"#;
        let out = engine.run("<t>", text).unwrap().into_string().unwrap();
        assert_eq!(out, "none | x, y | node1=0.10.4, node2=[a, b]");
    }
}
