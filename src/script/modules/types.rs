//! Registers the typed values: read-only properties, `to_string`/`to_debug` for `print`, `to_map()`.

use rhai::{Engine, Map};

use crate::model::{ClusterHealth, Member, RaftNode, RaftStatus, Record};
use crate::script::stop::{ScriptStop, StopKind};

fn record<T: Record + std::fmt::Debug>(engine: &mut Engine, display: fn(&T) -> String) {
    engine.register_type_with_name::<T>(T::TYPE_NAME);
    for field in T::fields() {
        engine.register_get(*field, move |v: &mut T| v.field(field));
    }
    engine.register_fn("to_map", |v: &mut T| -> Map { v.to_map() });
    engine.register_fn("to_string", move |v: &mut T| display(v));
    engine.register_fn("to_debug", move |v: &mut T| display(v));
}

pub fn register(engine: &mut Engine) {
    record::<Member>(engine, |m| m.to_string());
    record::<ClusterHealth>(engine, |h| h.to_string());
    record::<RaftStatus>(engine, |r| r.to_string());
    record::<RaftNode>(engine, |n| {
        format!("{} {} match {}", n.id, n.role, n.match_index)
    });

    engine
        .register_type_with_name::<ScriptStop>("Stop")
        .register_get("message", |s: &mut ScriptStop| s.message.clone())
        .register_get("kind", |s: &mut ScriptStop| match s.kind {
            StopKind::Guard => "guard".to_string(),
            StopKind::Usage => "usage".to_string(),
        })
        // The interlock that refused ("quorum", "version skew", "transfer target"), or ().
        .register_get("rule", |s: &mut ScriptStop| {
            s.rule.map_or(rhai::Dynamic::UNIT, |r| r.into())
        })
        .register_fn("to_string", |s: &mut ScriptStop| s.message.clone())
        .register_fn("to_debug", |s: &mut ScriptStop| s.message.clone());
}
