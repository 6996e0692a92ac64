//! `journal::` — a script's own events in the run's journal, and the newest of them read back, so a
//! procedure that outlives one run (the canary's 24 h watch) can carry on where an earlier run stopped.

use std::rc::Rc;

use rhai::{Array, Dynamic, ImmutableString, Map, Module};

use super::builder::{Builder, FnDoc};
use super::calls::json_to_dynamic;
use crate::model::RhaiResult;
use crate::script::ctx::Ctx;
use crate::script::show::to_json;
use crate::script::stop::{fail, ScriptStop};

/// Kinds the runtime itself journals: a script may read them back but not forge them. A forged
/// `op_begin` or `recovered` would change what the next run finishes for this one, and a forged
/// `declined` what `audit` says of it.
const RESERVED: [&str; 7] = [
    "run_start",
    "op_begin",
    "recovered",
    "step_start",
    "step_end",
    "run_end",
    "declined",
];

mod doc {
    pub const ENABLED: &str = "True when this run writes a journal (always against an inventory; with \
        --sim only with --journal FILE). Without one, `event` records nothing and `last_event` finds \
        nothing, so a procedure cannot be resumed by a later run.";
    pub const EVENT: &str = "Journals `{\"event\": kind, ...fields}` with the run's id, cluster and time, \
        and tells the run's listeners (webhooks, the report). `kind` is a word of letters, digits and \
        `_`; the runtime's own kinds (run_start, op_begin, recovered, step_start, step_end, run_end, \
        declined) are refused.";
    pub const LAST_EVENT: &str = "The newest journaled event of `kind` (a string, or an array of kinds) \
        from any run against this cluster (the same inventory file) whose fields equal every entry of \
        `filter`: a map with `event`, `run_id`, `time`, `ts` and the event's fields; () when there is \
        none or no journal is open.";
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("journal", ctx, docs);
    b.add("enabled", &[], "bool", doc::ENABLED, |c| {
        move || -> RhaiResult<bool> { Ok(c.journal.path().is_some()) }
    });
    b.add(
        "event",
        &["kind: String", "fields: Map"],
        "",
        doc::EVENT,
        |c| move |kind: ImmutableString, fields: Map| -> RhaiResult<()> {
            check_kind(&kind)?;
            if RESERVED.contains(&kind.as_str()) {
                return Err(ScriptStop::usage(format!(
                    "journal::event: `{kind}` is journaled by the runtime itself; name the event something else"
                )));
            }
            if fields.contains_key("event") {
                return Err(ScriptStop::usage(
                    "journal::event: `event` is the record's kind; name the field something else",
                ));
            }
            c.event(&kind, to_json(&Dynamic::from_map(fields)));
            Ok(())
        },
    );
    b.add(
        "last_event",
        &["kind: String|Array", "filter: Map"],
        "?",
        doc::LAST_EVENT,
        |c| {
            move |kind: Dynamic, filter: Map| -> RhaiResult<Dynamic> {
                let kinds: Vec<String> = if kind.is_string() {
                    vec![kind.to_string()]
                } else if let Some(a) = kind.read_lock::<Array>() {
                    a.iter().map(|k| k.to_string()).collect()
                } else {
                    return Err(ScriptStop::usage(format!(
                    "journal::last_event: the kind must be a string or an array of strings, not {}",
                    kind.type_name()
                )));
                };
                let filter = match to_json(&Dynamic::from_map(filter)) {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                match c.journal.last_event(&kinds, &filter) {
                    Ok(Some(v)) => json_to_dynamic(&v),
                    Ok(None) => Ok(Dynamic::UNIT),
                    Err(e) => Err(fail(format!("journal::last_event: {e}"))),
                }
            }
        },
    );
    b.build()
}

fn check_kind(kind: &str) -> RhaiResult<()> {
    if kind.is_empty()
        || !kind
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return Err(ScriptStop::usage(format!(
            "journal::event: the kind must be a word of letters, digits and `_`, not `{kind}`"
        )));
    }
    Ok(())
}
