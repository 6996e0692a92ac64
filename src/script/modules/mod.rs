//! The script API: static modules `cluster::`, `node::`, `raft::`, `metrics::`, `backup::`,
//! `journal::`, `version::`, the global functions, and the typed values they return.
//!
//! Each function is registered with its parameters and a doc line; the same list is kept in `FnDoc`s
//! so `neumann-script functions`, the docs and Rhai's metadata cannot drift apart. Functions here are thin:
//! convert arguments, call the cluster layer (`crate::cluster`), convert the result, and say what is being done.

pub mod backup;
pub mod cluster;
pub mod globals;
pub mod journal;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod version;

use std::rc::Rc;

use rhai::{
    Dynamic, Engine, FnNamespace, FuncRegistration, Module, NativeCallContext, RhaiFunc,
    RhaiNativeFunc, Shared, Variant,
};

use crate::cluster::{Force, OpError, OpResult, Progress, Rule};
use crate::model::RhaiResult;
pub use crate::script::args::{number, secs};
use crate::script::ctx::{throw, Ctx};

/// One script function as `neumann-script functions` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FnDoc {
    /// "" for global functions.
    pub module: &'static str,
    pub name: &'static str,
    pub params: &'static [&'static str],
    pub returns: &'static str,
    pub doc: &'static str,
}

impl FnDoc {
    /// `cluster::health() -> ClusterHealth`
    pub fn signature(&self) -> String {
        let prefix = if self.module.is_empty() {
            String::new()
        } else {
            format!("{}::", self.module)
        };
        let ret = if self.returns.is_empty() {
            String::new()
        } else {
            format!(" -> {}", self.returns)
        };
        format!("{prefix}{}({}){ret}", self.name, self.params.join(", "))
    }
}

fn registration(
    name: &'static str,
    params: &'static [&'static str],
    returns: &'static str,
    doc: &'static str,
) -> FuncRegistration {
    // Rhai reads the item after the parameters as the return type; a function returning nothing says `()`,
    // or the editor definitions would read `-> ;`.
    let mut info: Vec<&str> = params.to_vec();
    info.push(if returns.is_empty() { "()" } else { returns });
    let comments: Vec<String> = doc.lines().map(|l| format!("/// {l}")).collect();
    FuncRegistration::new(name)
        .with_params_info(info)
        .with_comments([comments.join("\n")])
}

/// Where a `Builder` puts its functions.
enum Target<'a> {
    /// A static module (`cluster::`), registered once built.
    Module(&'static str, Box<Module>),
    /// The global namespace, straight into the engine.
    Global(&'a mut Engine),
}

/// Collects the functions of one module (or the global namespace) with their docs, and hands each the run's
/// context: `b.add(name, params, returns, doc, |c| move |args| ...)`, where `c` is the builder's `Rc<Ctx>`,
/// cloned for that function alone.
pub struct Builder<'a> {
    target: Target<'a>,
    ctx: Rc<Ctx>,
    docs: &'a mut Vec<FnDoc>,
}

impl<'a> Builder<'a> {
    /// The functions of the static module `name`.
    pub fn module(name: &'static str, ctx: &Rc<Ctx>, docs: &'a mut Vec<FnDoc>) -> Builder<'a> {
        Builder {
            target: Target::Module(name, Box::default()),
            ctx: ctx.clone(),
            docs,
        }
    }

    /// The global functions, registered into `engine` as they are added.
    pub fn global(engine: &'a mut Engine, ctx: &Rc<Ctx>, docs: &'a mut Vec<FnDoc>) -> Builder<'a> {
        Builder {
            target: Target::Global(engine),
            ctx: ctx.clone(),
            docs,
        }
    }

    /// Adds `name(params) -> returns` with its doc; `make` is given the run's context and returns the
    /// function.
    pub fn add<A: 'static, const N: usize, const X: bool, R: Variant + Clone, const F: bool, FUNC>(
        &mut self,
        name: &'static str,
        params: &'static [&'static str],
        returns: &'static str,
        doc: &'static str,
        make: impl FnOnce(Rc<Ctx>) -> FUNC,
    ) -> &mut Self
    where
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        let func = make(self.ctx.clone());
        let module = match &mut self.target {
            Target::Module(module_name, module) => {
                // Cluster calls must run every time: never pure, always volatile (never constant-folded).
                let wrapped = with_call_position(func.into_rhai_function(false, true));
                registration(name, params, returns, doc)
                    .with_namespace(FnNamespace::Internal)
                    .set_into_module_raw(module, FUNC::param_types(), wrapped);
                *module_name
            }
            Target::Global(engine) => {
                registration(name, params, returns, doc)
                    .with_volatility(true)
                    .with_purity(false)
                    .register_into_engine(engine, func);
                ""
            }
        };
        self.docs.push(FnDoc {
            module,
            name,
            params,
            returns,
            doc,
        });
        self
    }

    /// Adds a function that needs no context.
    pub fn add_fn<
        A: 'static,
        const N: usize,
        const X: bool,
        R: Variant + Clone,
        const F: bool,
        FUNC,
    >(
        &mut self,
        name: &'static str,
        params: &'static [&'static str],
        returns: &'static str,
        doc: &'static str,
        func: FUNC,
    ) -> &mut Self
    where
        FUNC: RhaiNativeFunc<A, N, X, R, F> + 'static,
    {
        self.add(name, params, returns, doc, |_| func)
    }

    /// Drops the doc of the function added last: for an overload of one already listed.
    pub fn forget_last_doc(&mut self) {
        self.docs.pop();
    }

    /// The module; the global namespace has nothing to hand over (its functions are in the engine).
    pub fn build(self) -> Module {
        match self.target {
            Target::Module(_, module) => *module,
            Target::Global(_) => Module::new(),
        }
    }
}

type NativeFn = dyn for<'a, 'b, 'c> Fn(
    Option<NativeCallContext<'a>>,
    &'b mut [&'c mut Dynamic],
) -> RhaiResult<Dynamic>;

/// Rhai leaves errors from namespaced native calls (`node::drain(...)`) without a position, so the
/// message could not name the script line; this pins them to the call site.
fn with_call_position(f: RhaiFunc) -> RhaiFunc {
    let wrap = |func: Shared<NativeFn>| -> Shared<NativeFn> {
        Shared::new(
            move |ctx: Option<NativeCallContext<'_>>, args: &mut [&mut Dynamic]| {
                let pos = ctx.as_ref().map(NativeCallContext::call_position);
                func(ctx, args).map_err(|mut e| {
                    if let (true, Some(p)) = (e.position().is_none(), pos) {
                        e.set_position(p);
                    }
                    e
                })
            },
        )
    };
    match f {
        RhaiFunc::Pure {
            func,
            is_pure,
            is_volatile,
            ..
        } => RhaiFunc::Pure {
            func: wrap(func),
            has_context: true,
            is_pure,
            is_volatile,
        },
        RhaiFunc::Method {
            func,
            is_pure,
            is_volatile,
            ..
        } => RhaiFunc::Method {
            func: wrap(func),
            has_context: true,
            is_pure,
            is_volatile,
        },
        other => other,
    }
}

/// Registers the whole script API into `engine`; returns the docs of every function.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) -> Vec<FnDoc> {
    let mut docs = Vec::new();
    crate::script::types::register(engine);
    globals::register(engine, ctx, &mut docs);
    let modules = [
        ("cluster", cluster::module(ctx, &mut docs)),
        ("node", node::module(ctx, &mut docs)),
        ("raft", raft::module(ctx, &mut docs)),
        ("metrics", metrics::module(ctx, &mut docs)),
        ("backup", backup::module(ctx, &mut docs)),
        ("journal", journal::module(ctx, &mut docs)),
        ("version", version::module(ctx, &mut docs)),
    ];
    for (name, module) in modules {
        engine.register_static_module(name, module.into());
    }
    docs
}

/// Seconds from a script value (int or float), checked.
/// Runs a wait with a progress line: what is awaited, elapsed time, and the figure being watched.
pub fn waiting<T>(
    ctx: &Ctx,
    label: &str,
    run: impl FnOnce(Progress<'_>) -> OpResult<T>,
) -> RhaiResult<T> {
    let mut wait = ctx.out.wait(label);
    ctx.announced.set(ctx.announced.get() + 1);
    let result = {
        let mut report = |figure: &str| wait.update(figure);
        run(&mut report)
    };
    ctx.announced.set(ctx.announced.get() - 1);
    match &result {
        Ok(_) => wait.finish(&format!("{label}: done")),
        Err(OpError::Interrupted) => wait.finish(&format!("{label}: interrupted")),
        Err(_) => wait.finish(&format!("{label}: failed")),
    }
    result.map_err(throw)
}

/// Tells the listeners how a wait ended (`wait` in docs/SCRIPTING.md): the report reads a node back from
/// it on a real cluster.
pub fn waited<T>(
    ctx: &Ctx,
    what: &str,
    node: Option<&str>,
    started: std::time::Instant,
    result: RhaiResult<T>,
) -> RhaiResult<T> {
    ctx.notify(
        "wait",
        &serde_json::json!({
            "what": what,
            "node": node,
            "ok": result.is_ok(),
            "duration_ms": started.elapsed().as_millis() as u64,
        }),
    );
    result
}

/// `#{force: ...}` from the options map a guarded call takes last: `true` (every interlock), `false`, a
/// rule's name (`"leader"`) or an array of them (`["quorum", "leader"]`). Any other key, or a rule the
/// tool does not have, is a usage error, so a misspelt override never passes silently as no override.
pub fn force_option(options: &rhai::Map, call: &str) -> RhaiResult<Force> {
    let usage = |m: String| crate::script::stop::ScriptStop::usage(format!("{call}: {m}"));
    let rules = Rule::ALL.map(|r| format!("\"{}\"", r.name())).join(", ");
    let rule = |d: &Dynamic| -> RhaiResult<Rule> {
        let name = d
            .clone()
            .into_immutable_string()
            .map_err(|t| usage(format!("option `force` names rules as strings, not {t}")))?;
        Rule::named(&name).ok_or_else(|| {
            usage(format!(
                "option `force` names no rule `{name}` (the rules are: {rules}; `true` forces them all)"
            ))
        })
    };
    let mut force = Force::No;
    for (key, value) in options {
        if key.as_str() != "force" {
            return Err(usage(format!(
                "unknown option `{key}` (the options are: force)"
            )));
        }
        force = if let Ok(b) = value.as_bool() {
            if b {
                Force::All
            } else {
                Force::No
            }
        } else if value.is_array() {
            let names = value.clone().into_array().unwrap_or_default();
            Force::Only(names.iter().map(rule).collect::<RhaiResult<_>>()?)
        } else if value.is_string() {
            Force::Only(vec![rule(value)?])
        } else {
            return Err(usage(format!(
                "option `force` must be true, false, a rule's name or an array of them, not {}",
                value.type_name()
            )));
        };
    }
    Ok(force)
}

/// A JSON answer as a Rhai map.
pub fn json_to_dynamic(v: &serde_json::Value) -> RhaiResult<Dynamic> {
    rhai::serde::to_dynamic(v)
}
