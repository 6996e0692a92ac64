//! What the module functions share while they run: the live line of a wait (`waiting`) and the event
//! that says how it ended (`waited`), the `force` option of a guarded call, and JSON answers as maps.

use rhai::Dynamic;

use crate::cluster::{Force, OpError, OpResult, Progress, Rule};
use crate::model::RhaiResult;
use crate::script::ctx::{throw, Ctx};

/// Runs a wait with a progress line: what is awaited, elapsed time, and the figure being watched.
pub fn waiting<T>(
    ctx: &Ctx,
    label: &str,
    run: impl FnOnce(Progress<'_>) -> OpResult<T>,
) -> RhaiResult<T> {
    let mut wait = ctx.out.wait(label);
    ctx.announced.set(ctx.announced.get() + 1);
    let result = {
        let mut progress = |figure: &str| wait.update(figure);
        run(&mut progress)
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
