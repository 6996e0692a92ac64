//! Every typed value scripts see, listed once. Each type registers itself through
//! `#[derive(CustomType)]` (read-only properties, `print`, `to_map()`) and is shown as JSON by serde;
//! the REPL reads the properties back from the engine. Nothing else names the types or their fields.

use std::any::{type_name, TypeId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use rhai::{CustomType, Dynamic, Engine};
use serde::Serialize;
use serde_json::Value;

use super::stop::ScriptStop;
use crate::model::{ClusterHealth, Member, Metrics, RaftNode, RaftStatus, Version};

/// One entry of the list: what the rest of the program needs of a type, as functions so that one table
/// can hold types of different Rust types.
struct ScriptType {
    id: fn() -> TypeId,
    rust_name: fn() -> &'static str,
    register: fn(&mut Engine),
    json: fn(&Dynamic) -> Option<Value>,
    text: fn(&Dynamic) -> Option<String>,
}

const TYPES: [ScriptType; 7] = [
    typed::<Member>(),
    typed::<ClusterHealth>(),
    typed::<RaftStatus>(),
    typed::<RaftNode>(),
    typed::<Metrics>(),
    typed::<Version>(),
    typed::<ScriptStop>(),
];

const fn typed<T: CustomType + Serialize + Display>() -> ScriptType {
    ScriptType {
        id: TypeId::of::<T>,
        rust_name: type_name::<T>,
        register: register_one::<T>,
        json: json_of::<T>,
        text: text_of::<T>,
    }
}

fn register_one<T: CustomType>(engine: &mut Engine) {
    engine.build_type::<T>();
}

fn json_of<T: CustomType + Serialize>(d: &Dynamic) -> Option<Value> {
    // Strings, numbers, options and vectors of them: serde cannot fail on these.
    d.read_lock::<T>()
        .map(|v| serde_json::to_value(&*v).expect("a typed value converts to JSON"))
}

fn text_of<T: CustomType + Display>(d: &Dynamic) -> Option<String> {
    d.read_lock::<T>().map(|v| v.to_string())
}

/// Registers every typed value into `engine`.
pub fn register(engine: &mut Engine) {
    for t in &TYPES {
        (t.register)(engine);
    }
    metrics_methods(engine);
}

/// `Metrics` methods that can throw, with their types spelled out for the editor definitions; `q` takes
/// an int or a float.
fn metrics_methods(engine: &mut Engine) {
    use rhai::{FuncRegistration, ImmutableString, Map};
    FuncRegistration::new("value")
        .with_params_info(["metrics: Metrics", "name: String", "float"])
        .register_into_engine(engine, |m: &mut Metrics, name: ImmutableString| {
            m.value(&name, None)
        });
    FuncRegistration::new("value")
        .with_params_info(["metrics: Metrics", "name: String", "labels: Map", "float"])
        .register_into_engine(
            engine,
            |m: &mut Metrics, name: ImmutableString, labels: Map| m.value(&name, Some(&labels)),
        );
    FuncRegistration::new("quantile")
        .with_params_info(["metrics: Metrics", "histogram: String", "q: float", "float"])
        .register_into_engine(
            engine,
            |m: &mut Metrics, name: ImmutableString, q: Dynamic| {
                let q = super::args::number(&q, "q")?;
                m.quantile(&name, q)
            },
        );
}

/// The JSON of a typed value, if `d` holds one.
pub fn to_json(d: &Dynamic) -> Option<Value> {
    TYPES.iter().find_map(|t| (t.json)(d))
}

/// What `print` shows for a typed value, if `d` holds one.
pub fn to_text(d: &Dynamic) -> Option<String> {
    TYPES.iter().find_map(|t| (t.text)(d))
}

/// What completes after `value.` for each typed value, keyed by the name `type_of` gives it: its
/// properties, then its methods (`names()`, `value(`). Read back from what the derives registered,
/// so completion cannot drift from the types.
pub fn completions(engine: &Engine) -> BTreeMap<String, Vec<String>> {
    let functions = engine.collect_fn_metadata(
        None,
        |f| {
            let m = f.metadata;
            let first = m.param_types.first()?;
            f.namespace
                .is_empty()
                .then(|| (*first, m.name.to_string(), m.num_params))
        },
        false,
    );
    TYPES
        .iter()
        .map(|t| {
            let mut properties = BTreeSet::new();
            // Method name -> whether some overload takes arguments.
            let mut methods = BTreeMap::<String, bool>::new();
            for (_, name, params) in functions.iter().filter(|(id, ..)| *id == (t.id)()) {
                if let Some(property) = name.strip_prefix("get$") {
                    properties.insert(property.to_string());
                } else if is_method(name) {
                    *methods.entry(name.clone()).or_default() |= *params > 1;
                }
            }
            let methods = methods.into_iter().map(|(name, takes_args)| {
                if takes_args {
                    format!("{name}(")
                } else {
                    format!("{name}()")
                }
            });
            let name = engine.map_type_name((t.rust_name)()).to_string();
            (name, properties.into_iter().chain(methods).collect())
        })
        .collect()
}

/// A method a person calls: not an operator, a setter or indexer (`set$x`, `index$get$`), nor the
/// `to_string`/`to_debug` that `print` and `debug` call.
fn is_method(name: &str) -> bool {
    name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !matches!(name, "to_string" | "to_debug")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::stop::StopKind;

    fn engine() -> Engine {
        let mut engine = Engine::new_raw();
        register(&mut engine);
        engine
    }

    #[test]
    fn completions_come_from_the_registered_properties_and_methods() {
        let c = completions(&engine());
        assert_eq!(
            c["Metrics"],
            ["node", "names()", "quantile(", "to_map()", "value("]
        );
        assert_eq!(c["Version"], ["major", "minor", "patch", "pre"]);
        assert_eq!(c["Stop"], ["kind", "message", "rule"]);
        assert!(c["Member"].contains(&"replication_lag_ms".to_string()));
        assert!(c["ClusterHealth"].contains(&"rollback_limits".to_string()));
        assert_eq!(c.len(), TYPES.len());
    }

    #[test]
    fn json_and_text_follow_serde_and_display() {
        let v = Dynamic::from(Version(semver::Version::new(0, 11, 0)));
        assert_eq!(to_json(&v), Some(Value::String("0.11.0".into())));
        assert_eq!(to_text(&v).as_deref(), Some("0.11.0"));
        let stop = Dynamic::from(ScriptStop {
            kind: StopKind::Guard,
            message: "quorum at risk".into(),
            rule: Some("quorum"),
            at: None,
        });
        assert_eq!(to_json(&stop), Some(Value::String("quorum at risk".into())));
        assert_eq!(to_json(&Dynamic::from(3_i64)), None);
    }
}
