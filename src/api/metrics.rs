//! `metrics::` — Prometheus scrapes of a node's `/metrics`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, Module};

use super::{Builder, FnDoc, RhaiResult};
use crate::admin::prom::Scrape;
use crate::runtime::{fail, throw, Ctx};

/// One scrape of one node: `m.value(name)`, `m.value(name, labels)`, `m.names()`, `m.quantile(h, q)`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub node: String,
    pub scrape: Arc<Scrape>,
}

impl Metrics {
    fn value(&self, name: &str, labels: Option<&Map>) -> RhaiResult<f64> {
        let found = match labels {
            None => self.scrape.value(name),
            Some(l) => {
                let want: BTreeMap<String, String> = l
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                self.scrape.value_with(name, &want)
            }
        };
        found.ok_or_else(|| {
            let which = labels
                .map(|l| format!(" with labels {l:?}"))
                .unwrap_or_default();
            fail(format!(
                "{}: metrics: no series `{name}`{which} in this scrape",
                self.node
            ))
        })
    }

    /// Node id and every series name with its summed value.
    pub fn to_map(&self) -> Map {
        let mut series = Map::new();
        for name in self.scrape.names() {
            if let Some(v) = self.scrape.value(&name) {
                series.insert(name.into(), Dynamic::from(v));
            }
        }
        let mut m = Map::new();
        m.insert("node".into(), Dynamic::from(self.node.clone()));
        m.insert("series".into(), Dynamic::from_map(series));
        m
    }
}

pub fn register_type(engine: &mut Engine) {
    engine
        .register_type_with_name::<Metrics>("Metrics")
        .register_get("node", |m: &mut Metrics| m.node.clone())
        .register_fn("value", |m: &mut Metrics, name: ImmutableString| {
            m.value(&name, None)
        })
        .register_fn(
            "value",
            |m: &mut Metrics, name: ImmutableString, labels: Map| m.value(&name, Some(&labels)),
        )
        .register_fn("names", |m: &mut Metrics| -> Array {
            m.scrape.names().into_iter().map(Dynamic::from).collect()
        })
        .register_fn(
            "quantile",
            |m: &mut Metrics, name: ImmutableString, q: f64| -> RhaiResult<f64> {
                m.scrape.quantile(&name, q).ok_or_else(|| {
                    fail(format!(
                        "{}: metrics: no histogram `{name}` (no `{name}_bucket` series)",
                        m.node
                    ))
                })
            },
        )
        .register_fn("to_map", |m: &mut Metrics| m.to_map())
        .register_fn("to_string", |m: &mut Metrics| {
            format!(
                "metrics of {} ({} series)",
                m.node,
                m.scrape.samples().len()
            )
        })
        .register_fn("to_debug", |m: &mut Metrics| {
            format!(
                "metrics of {} ({} series)",
                m.node,
                m.scrape.samples().len()
            )
        });
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::new("metrics", docs);
    let c = ctx.clone();
    b.add(
        "scrape",
        &["id: String"],
        "Metrics",
        "One scrape of the node's /metrics: `m.value(name)` (the sum when several series share it; throws when there is none), `m.value(name, labels)`, `m.names()`, `m.quantile(histogram, q)` (PromQL histogram_quantile).",
        move |id: ImmutableString| -> RhaiResult<Metrics> {
            let scrape = c.block_on(c.cluster()?.scrape(&id)).map_err(throw)?;
            Ok(Metrics { node: id.to_string(), scrape: Arc::new(scrape) })
        },
    );
    b.build()
}
