//! Functions every script has without a module: arguments and options, logging, steps, confirmation,
//! and the three ways to end a run early (`fail`, `safe_stop`, `usage`).

use std::rc::Rc;

use rhai::{Dynamic, Engine, FnPtr, ImmutableString, NativeCallContext};

use super::builder::{Builder, FnDoc};
use crate::model::RhaiResult;
use crate::script::args::secs;
use crate::script::ctx::Ctx;
use crate::script::stop::{fail, ScriptStop};

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const OPTION: &str =
        "The value of `--set NAME=VALUE`, converted to the type of `default` (int, float, bool or \
        string); `default` when not set.\nThrows a usage error (exit 2) when the value does not \
        fit the type.";
    pub const NOW: &str =
        "Unix time in seconds, as a float; on a simulated cluster it runs at the simulator's \
        speed from the real time of the first reading.";
    pub const WALL_NOW: &str =
        "Unix time in seconds on this machine's wall clock, whatever the cluster's clock: the time \
        Prometheus stamps its samples with (`metrics::compare_past(id, since, window)` takes its \
        `since` so). It equals `now()` except on a simulated cluster, whose clock runs at its speed.";
    pub const MODULE_FILE: &str =
        "Where this run read the module `name` (as in `import \"name\"`) from: a file's path, such as \
        a `criteria.rhai` copied beside the script, or `<stdlib>/NAME.rhai` for the embedded one; `()` \
        if nothing imported it yet. The stock rolling upgrade shows the embedded no-op hooks as no step.";
    pub const INFO: &str =
        "Logs a line to stderr with the time of day (stdout stays the script's own).";
    pub const WARN: &str = "Logs a warning line to stderr.";
    pub const STEP: &str =
        "Runs `body` as a named step: announced, timed, and reported as done or failed; returns \
        what `body` returns and rethrows what it throws.\nIts start and its end are safe points, like \
        `checkpoint()`; the run's lease carries its steps, so `status --watch` shows them from any terminal.";
    pub const CHECKPOINT: &str =
        "A safe point: a `neumann-script pause` or `abort` asked for this run is taken here (a pause \
        waits for `resume`; an abort stops the run safely, exit 3). Put off while a node is between its \
        stop and its start. Does nothing when nothing was asked.";
    pub const GATE: &str =
        "Pauses the run here until an operator resumes it: `neumann-script --cluster FILE resume` from \
        any terminal, or y and Enter at the run's own terminal; `abort` ends it safely (exit 3). `--yes` \
        does not pass a gate. Takes the run lease first: a paused run holds it.\nIn a rehearsal it \
        waits for nobody and shows in the plan; on the embedded simulator (`--sim`) without a terminal \
        it passes with a note. A safe point too.";
    pub const CONFIRM: &str =
        "Asks a yes/no question on the terminal. `--yes` answers yes, and so does the embedded \
        simulator (`--sim`).\nWith no terminal and no `--yes` it throws a usage error (exit 2), \
        having changed nothing.";
    pub const ON_CLUSTER: &str =
        "Runs `body` with every API call aimed at another cluster: \"green\" (the inventory's \
        [blue_green] green) or an inventory path; returns what `body` returns.";
    pub const HOLD_LEASE: &str =
        "Takes the cluster's run lease now, as a run's first change would: from here on no other \
        run can change the cluster until this one ends. For a runbook about to plan changes, so \
        that two runs cannot both plan from the same state.\nStops safely (exit 3), having changed \
        nothing, when another run holds the lease; names that run.";
    pub const FAIL: &str = "Throws an error with `msg`: the script fails (exit 1 when uncaught).";
    pub const SAFE_STOP: &str =
        "Stops the run safely (exit 3 when uncaught): a guard refused to go on. `msg` should say \
        why, what state the cluster is in, and how to continue.";
    pub const RECOVERY_COMMAND: &str =
        "The command line an operator pastes to run `code` against this run's cluster: \
        `neumann-script --cluster PATH -e 'CODE'`, with the inventory this run used, so a recovery \
        hint never acts on whatever `$NEUMANN_CLUSTER` names.";
    pub const USAGE: &str =
        "Stops the run because its input was wrong (exit 2 when uncaught); `msg` should say what \
        was expected.";
}

/// A stop marked with where the script called for it, when the call's source and line are known.
fn placed(e: Box<rhai::EvalAltResult>, context: &NativeCallContext) -> Box<rhai::EvalAltResult> {
    let (Some(source), Some(line)) = (context.call_source(), context.call_position().line()) else {
        return e;
    };
    match *e {
        rhai::EvalAltResult::ErrorRuntime(v, pos) if v.is::<ScriptStop>() => {
            let mut stop = v.cast::<ScriptStop>();
            stop.at = Some(format!("{source}:{line}"));
            rhai::EvalAltResult::ErrorRuntime(Dynamic::from(stop), pos).into()
        }
        other => other.into(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `--set name=value` converted to the type of the default, so `option("monitor_secs", 300)` is an int.
pub fn option_value(raw: Option<&String>, name: &str, default: Dynamic) -> RhaiResult<Dynamic> {
    let Some(raw) = raw else { return Ok(default) };
    let bad = |what: &str| ScriptStop::usage(format!("--set {name}={raw}: expected {what}"));
    if default.is_int() {
        raw.trim()
            .parse::<i64>()
            .map(Dynamic::from)
            .map_err(|_| bad("a whole number"))
    } else if default.is_float() {
        raw.trim()
            .parse::<f64>()
            .map(Dynamic::from)
            .map_err(|_| bad("a number"))
    } else if default.is_bool() {
        parse_bool(raw.trim())
            .map(Dynamic::from)
            .ok_or_else(|| bad("true or false"))
    } else {
        Ok(Dynamic::from(raw.clone()))
    }
}

pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) {
    let mut b = Builder::global(engine, ctx, docs);
    b.add(
        "option",
        &["name: String", "default: ?"],
        "?",
        doc::OPTION,
        |c| {
            move |name: ImmutableString, default: Dynamic| {
                c.options_asked.borrow_mut().insert(name.to_string());
                option_value(c.settings.options.get(name.as_str()), &name, default)
            }
        },
    );
    // Rhai's own `sleep(INT)`/`sleep(FLOAT)` block the thread where Ctrl-C cannot reach them; exact
    // parameter types make these win over the standard package's.
    let doc = "Pauses the script for `secs` seconds (int or float) on the cluster's clock (the simulator's \
               under --sim); Ctrl-C cuts it short, and a `pause` or `abort` asked meanwhile is taken at once.";
    b.add("sleep", &["secs: int"], "", doc, |c| {
        move |s: i64| sleep(&c, &Dynamic::from(s))
    });
    b.forget_last_doc(); // one entry in `functions` for both overloads
    b.add("sleep", &["secs: float"], "", doc, |c| {
        move |s: f64| sleep(&c, &Dynamic::from(s))
    });
    b.add("now", &[], "float", doc::NOW, |c| {
        move || -> RhaiResult<f64> {
            match c.cluster.borrow().clone() {
                Some(cl) => c
                    .block_on(async move { cl.unix_now().await })
                    .map_err(crate::script::ctx::throw),
                None => Ok(std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0)),
            }
        }
    });
    b.add_fn(
        "wall_now",
        &[],
        "float",
        doc::WALL_NOW,
        || -> RhaiResult<f64> { Ok(crate::output::unix_now()) },
    );
    b.add(
        "module_file",
        &["name: String"],
        "?",
        doc::MODULE_FILE,
        |c| {
            move |name: ImmutableString| -> Dynamic {
                let name = name.trim_end_matches(".rhai");
                c.modules
                    .borrow()
                    .get(name)
                    .map_or(Dynamic::UNIT, |f| Dynamic::from(f.clone()))
            }
        },
    );
    b.add(
        "recovery_command",
        &["code: String"],
        "String",
        doc::RECOVERY_COMMAND,
        |c| move |code: ImmutableString| -> String { c.command_for(&code) },
    );
    b.add("info", &["msg: ?"], "", doc::INFO, |c| {
        move |m: Dynamic| c.out.info(&crate::script::show::plain(&m))
    });
    b.add("warn", &["msg: ?"], "", doc::WARN, |c| {
        move |m: Dynamic| c.out.warn(&crate::script::show::plain(&m))
    });
    b.add("step", &["name: String", "body: Fn"], "?", doc::STEP, |c| {
        move |context: NativeCallContext,
              name: ImmutableString,
              body: FnPtr|
              -> RhaiResult<Dynamic> {
            c.safe_point(&format!("before step \"{name}\""))?;
            let started = c.out.step_begin(&name);
            c.step_begun(&name);
            c.event("step_start", serde_json::json!({ "name": name.as_str() }));
            let result = body.call_within_context::<Dynamic>(&context, ());
            let why = result
                .as_ref()
                .err()
                .map(|e| crate::script::diagnostics::short(e));
            c.step_ended(why.is_none());
            c.event(
                "step_end",
                serde_json::json!({
                    "name": name.as_str(),
                    "result": if why.is_some() { "failed" } else { "ok" },
                    "error": why,
                    "duration_ms": started.elapsed().as_millis() as u64,
                }),
            );
            c.out.step_end(&name, started, why.as_deref());
            let value = result?;
            c.safe_point(&format!("after step \"{name}\""))?;
            Ok(value)
        }
    });
    b.add("checkpoint", &[], "", doc::CHECKPOINT, |c| {
        move || -> RhaiResult<()> { c.safe_point("checkpoint") }
    });
    b.add("gate", &["reason: String"], "", doc::GATE, |c| {
        move |reason: Dynamic| -> RhaiResult<()> {
            c.gate_here(&crate::script::show::plain(&reason))
        }
    });
    b.add(
        "confirm",
        &["question: String"],
        "bool",
        doc::CONFIRM,
        |c| move |question: ImmutableString| -> RhaiResult<bool> { c.confirm(&question) },
    );
    b.add(
        "on_cluster",
        &["name: String", "body: Fn"],
        "?",
        doc::ON_CLUSTER,
        |c| {
            move |context: NativeCallContext,
                  name: ImmutableString,
                  body: FnPtr|
                  -> RhaiResult<Dynamic> {
                let other = open_cluster(&c, &name)?;
                let previous = c.cluster.replace(Some(other));
                let result = body.call_within_context::<Dynamic>(&context, ());
                *c.cluster.borrow_mut() = previous;
                result
            }
        },
    );
    b.add("hold_lease", &[], "", doc::HOLD_LEASE, |c| {
        move || -> RhaiResult<()> { c.hold_lease() }
    });
    b.add_fn(
        "fail",
        &["msg: String"],
        "",
        doc::FAIL,
        |m: Dynamic| -> RhaiResult<()> { Err(fail(m.to_string())) },
    );
    b.add_fn(
        "safe_stop",
        &["msg: String"],
        "",
        doc::SAFE_STOP,
        |context: NativeCallContext, m: Dynamic| -> RhaiResult<()> {
            Err(placed(ScriptStop::guard(m.to_string()), &context))
        },
    );
    b.add_fn(
        "usage",
        &["msg: String"],
        "",
        doc::USAGE,
        |context: NativeCallContext, m: Dynamic| -> RhaiResult<()> {
            Err(placed(ScriptStop::usage(m.to_string()), &context))
        },
    );
}

/// `sleep(secs)`, on the cluster's clock: a simulated cluster's time runs at --sim-speed. A safe point
/// all through: a pause or abort asked meanwhile is taken at once (`Ctx::steered_sleep`).
fn sleep(c: &Ctx, secs_value: &Dynamic) -> RhaiResult<()> {
    let d = secs(secs_value, "sleep")?;
    match c.cluster.borrow().clone() {
        Some(cl) => c
            .steered_sleep(
                &cl,
                d,
                &format!("a sleep of {}", crate::output::human_duration(d)),
                None,
            )
            .map(|_| ()),
        None => c
            .block_on(async move {
                tokio::time::sleep(d).await;
                Ok(())
            })
            .map_err(crate::script::ctx::throw),
    }
}

/// The cluster `on_cluster(name)` means, opened once per run.
fn open_cluster(c: &Ctx, name: &str) -> RhaiResult<std::sync::Arc<crate::cluster::Cluster>> {
    if c.settings.rehearsal {
        return Err(ScriptStop::usage(format!(
            "on_cluster(\"{name}\") is not available in a rehearsal: \
             it would reach a live cluster outside the twin"
        )));
    }
    let path = if name == "green" {
        let current = c.cluster()?;
        match &current.inventory.blue_green {
            Some(bg) => bg.green.clone(),
            None => {
                return Err(ScriptStop::usage(format!(
                    "on_cluster(\"green\"): the inventory `{}` has no [blue_green] section \
                     naming the green cluster",
                    current.inventory.source.display()
                )))
            }
        }
    } else {
        std::path::PathBuf::from(name)
    };
    if let Some(open) = c.others.borrow().get(&path) {
        return Ok(open.clone());
    }
    let inv =
        crate::inventory::Inventory::load(&path).map_err(|e| ScriptStop::usage(e.to_string()))?;
    let cluster = std::sync::Arc::new(crate::cluster::Cluster::new(inv).map_err(fail)?);
    c.others.borrow_mut().insert(path, cluster.clone());
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_the_type_of_their_default() {
        let v = |raw: &str, d: Dynamic| option_value(Some(&raw.to_string()), "x", d);
        assert_eq!(v("42", Dynamic::from(1_i64)).unwrap().as_int().unwrap(), 42);
        assert_eq!(
            v("2.5", Dynamic::from(1.0_f64))
                .unwrap()
                .as_float()
                .unwrap(),
            2.5
        );
        assert!(v("yes", Dynamic::from(false)).unwrap().as_bool().unwrap());
        assert_eq!(
            v("abc", Dynamic::from("d".to_string()))
                .unwrap()
                .to_string(),
            "abc"
        );
        let e = crate::script::diagnostics::short(&v("ten", Dynamic::from(1_i64)).unwrap_err());
        assert_eq!(e, "--set x=ten: expected a whole number");
        assert_eq!(
            option_value(None, "x", Dynamic::from(7_i64))
                .unwrap()
                .as_int()
                .unwrap(),
            7
        );
    }
}
