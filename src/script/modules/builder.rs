//! How a script function is registered: the `Builder` that hands each function the run's context and
//! records its `FnDoc`, and the wrapper that gives a namespaced call's errors the call site.

use std::rc::Rc;

use rhai::{
    Dynamic, Engine, FnNamespace, FuncRegistration, Module, NativeCallContext, RhaiFunc,
    RhaiNativeFunc, Shared, Variant,
};

use crate::model::RhaiResult;
use crate::script::ctx::Ctx;

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
enum Destination<'a> {
    /// A static module (`cluster::`), registered once built.
    Module(&'static str, Box<Module>),
    /// The global namespace, straight into the engine.
    Global(&'a mut Engine),
}

/// Collects the functions of one module (or the global namespace) with their docs, and hands each the run's
/// context: `b.add(name, params, returns, doc, |c| move |args| ...)`, where `c` is the builder's `Rc<Ctx>`,
/// cloned for that function alone.
pub struct Builder<'a> {
    destination: Destination<'a>,
    ctx: Rc<Ctx>,
    docs: &'a mut Vec<FnDoc>,
}

impl<'a> Builder<'a> {
    /// The functions of the static module `name`.
    pub fn module(name: &'static str, ctx: &Rc<Ctx>, docs: &'a mut Vec<FnDoc>) -> Builder<'a> {
        Builder {
            destination: Destination::Module(name, Box::default()),
            ctx: ctx.clone(),
            docs,
        }
    }

    /// The global functions, registered into `engine` as they are added.
    pub fn global(engine: &'a mut Engine, ctx: &Rc<Ctx>, docs: &'a mut Vec<FnDoc>) -> Builder<'a> {
        Builder {
            destination: Destination::Global(engine),
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
        let module = match &mut self.destination {
            Destination::Module(module_name, module) => {
                // Cluster calls must run every time: never pure, always volatile (never constant-folded).
                let wrapped = with_call_position(func.into_rhai_function(false, true));
                registration(name, params, returns, doc)
                    .with_namespace(FnNamespace::Internal)
                    .set_into_module_raw(module, FUNC::param_types(), wrapped);
                *module_name
            }
            Destination::Global(engine) => {
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
        match self.destination {
            Destination::Module(_, module) => *module,
            Destination::Global(_) => Module::new(),
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
