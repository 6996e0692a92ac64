//! `metrics::` — Prometheus scrapes of a node's `/metrics`.

use std::rc::Rc;
use std::sync::Arc;

use std::time::Duration;

use rhai::{Array, Dynamic, FnPtr, ImmutableString, Map, Module, NativeCallContext};

use super::builder::{Builder, FnDoc};
use crate::model::figures::{figures, ratio, Figures};
use crate::model::Metrics;
use crate::model::RhaiResult;
use crate::output::human_duration;
use crate::script::args::secs;
use crate::script::ctx::{throw, Ctx};
use crate::script::stop::fail;
use crate::transport::prometheus::PromValue;

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const SCRAPE: &str =
        "One scrape of the node's /metrics: `m.value(name)` (the sum when several \
        series share it; throws when there is none), `m.value(name, labels)`, `m.names()`, \
        `m.quantile(histogram, q)` (PromQL histogram_quantile).";
    pub const SAMPLE: &str =
        "The canary figures of one node over `window` seconds (two scrapes, counter \
        resets handled): #{error_rate (aborts / (commits + aborts)), latency_p99_ms, \
        replication_lag_ms, memory_bytes, tx_per_sec}. Given an array of ids, the figures of the \
        group pooled as `compare` pools a baseline. A pause asked during the window holds it; \
        resumed, it waits what was left, and its figures are rates over all the time that passed.";
    pub const COMPARE: &str = "The canary's figures against a baseline (one id or an array of ids, \
        aggregated) over the same `window` seconds, every node scraped at once: a map per figure of \
        #{canary, baseline, ratio}; ratio is () when the baseline is 0 and the canary is not.";
    pub const WATCH: &str =
        "Calls `callback(sample)` every `interval` seconds for `duration` seconds \
        with the node's figures over that interval (as `sample` returns them); the callback \
        returning false stops early. Returns how many samples were taken. A pause asked meanwhile \
        holds the watch; the sample in progress then spans the pause, and the time paused counts \
        toward `duration`.";
    pub const QUERY: &str = "An instant PromQL query against the inventory's `prometheus_url`: a float \
        (scalar), a string, or an array of #{labels, value} (vector) or #{labels, values} (matrix). \
        Throws when the inventory names no Prometheus or the query fails.";
    pub const SAMPLE_PAST: &str =
        "As `sample`, but over the last `window` seconds as the inventory's \
        Prometheus recorded them: no waiting, and windows longer than this run.";
    pub const COMPARE_PAST: &str =
        "As `compare`, but over the last `window` seconds as the inventory's \
        Prometheus recorded them (no waiting).";
    pub const COMPARE_PAST_SINCE: &str = "The node against its own history: its figures over the last \
        `window` seconds (`canary`) against its figures over the `window` seconds that ended at `since` \
        (`baseline`), both as the inventory's Prometheus recorded them: a map per figure of \
        #{canary, baseline, ratio}, as `compare`. `since` is unix seconds on the wall clock Prometheus \
        keeps (`wall_now()`, taken before the change being judged), `window` wall-clock seconds. \
        Throws when the inventory names no Prometheus or it holds no data for either window.";
    pub const HAS_PROMETHEUS: &str =
        "True when the inventory names a Prometheus (`prometheus_url`), so `query`, `sample_past` and \
        `compare_past` can be used.";
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("metrics", ctx, docs);
    b.add("scrape", &["id: String"], "Metrics", doc::SCRAPE, |c| {
        move |id: ImmutableString| -> RhaiResult<Metrics> {
            let scrape = c.block_on(c.cluster()?.scrape(&id)).map_err(throw)?;
            Ok(Metrics {
                node: id.to_string(),
                scrape: Arc::new(scrape),
            })
        }
    });
    b.add(
        "sample",
        &["id: String|Array", "window: float"],
        "Map",
        doc::SAMPLE,
        |c| {
            move |id: Dynamic, window: Dynamic| -> RhaiResult<Map> {
                let w = secs(&window, "window")?;
                let ids = ids_of(&id, "metrics::sample", "the group")?;
                let cl = c.cluster()?;
                let label = format!("a {} sample of {}", human_duration(w), ids.join(", "));
                let window = c.block_on(cl.open_window(&ids)).map_err(throw)?;
                c.steered_sleep(&cl, w, &label, Some(&label))?;
                let closed = c.block_on(cl.close_window(window)).map_err(throw)?;
                Ok(figures_map(&closed.pooled()))
            }
        },
    );
    b.add(
        "compare",
        &["canary: String", "baseline: String|Array", "window: float"],
        "Map",
        doc::COMPARE,
        |c| {
            move |canary: ImmutableString, baseline: Dynamic, window: Dynamic| -> RhaiResult<Map> {
                let w = secs(&window, "window")?;
                let ids = ids_of(&baseline, "metrics::compare", "the baseline")?;
                let cl = c.cluster()?;
                let label = format!(
                    "{} of {canary} against {}",
                    human_duration(w),
                    ids.join(", ")
                );
                let window = c
                    .block_on(cl.open_comparison(&canary, &ids))
                    .map_err(throw)?;
                c.steered_sleep(&cl, w, &label, Some(&label))?;
                let closed = c.block_on(cl.close_window(window)).map_err(throw)?;
                let (cf, bf) = closed.compared();
                let bf = bf.ok_or_else(|| fail("metrics::compare: the baseline names no node"))?;
                Ok(comparison(&cf, &bf))
            }
        },
    );
    b.add(
        "watch",
        &[
            "id: String",
            "duration: float",
            "interval: float",
            "callback: Fn",
        ],
        "int",
        doc::WATCH,
        |c| {
            move |nc: NativeCallContext,
                  id: ImmutableString,
                  duration: Dynamic,
                  interval: Dynamic,
                  callback: FnPtr|
                  -> RhaiResult<i64> {
                let d = secs(&duration, "duration")?;
                let every = secs(&interval, "interval")?;
                if every.is_zero() {
                    return Err(fail("metrics::watch: the interval must be above 0 seconds"));
                }
                let cl = c.cluster()?;
                c.out.info(&format!(
                    "watching {id} every {} for {}",
                    human_duration(every),
                    human_duration(d)
                ));
                // On the cluster's clock, so a simulated watch is compressed by --sim-speed. Samples fall on a
                // fixed schedule (start + k * interval, the last one at the end), so the time the scrapes and the
                // callback take does not push later samples back or drop the last one.
                let start = c.block_on(cl.unix_now()).map_err(throw)?;
                let end = start + d.as_secs_f64();
                let every = every.as_secs_f64();
                let mut before = c.block_on(cl.scrape(&id)).map_err(throw)?;
                let mut last = start;
                let mut count: i64 = 0;
                // The schedule's next point: one on from the last, or, after a pause that outlasted
                // several, the first still ahead (the sample that spans the pause covers the rest).
                let mut next: i64 = 1;
                let what = format!("the watch of {id}");
                while last < end {
                    let tick = (start + next as f64 * every).min(end);
                    let now = c.block_on(cl.unix_now()).map_err(throw)?;
                    let mut paused = 0.0;
                    if tick > now {
                        paused =
                            c.steered_sleep(&cl, Duration::from_secs_f64(tick - now), &what, None)?;
                    }
                    let after = c.block_on(cl.scrape(&id)).map_err(throw)?;
                    let at = c.block_on(cl.unix_now()).map_err(throw)?;
                    let f = figures(&[(&before, &after)], (at - last).max(0.001));
                    count += 1;
                    last = tick.max(at.min(end));
                    next = if paused > 0.0 {
                        (((at - start) / every).floor() as i64 + 1).max(next + 1)
                    } else {
                        next + 1
                    };
                    let go_on = callback.call_within_context::<Dynamic>(&nc, (figures_map(&f),))?;
                    if go_on.as_bool() == Ok(false) {
                        break;
                    }
                    before = after;
                }
                Ok(count)
            }
        },
    );
    b.add("query", &["promql: String"], "?", doc::QUERY, |c| {
        move |promql: ImmutableString| -> RhaiResult<Dynamic> {
            let cl = c.cluster()?;
            c.block_on(cl.query(&promql))
                .map(prom_to_dynamic)
                .map_err(throw)
        }
    });
    b.add(
        "sample_past",
        &["id: String", "window: float"],
        "Map",
        doc::SAMPLE_PAST,
        |c| {
            move |id: ImmutableString, window: Dynamic| -> RhaiResult<Map> {
                let w = secs(&window, "window")?;
                let cl = c.cluster()?;
                c.block_on(cl.figures_past(&[id.to_string()], w))
                    .map(|f| figures_map(&f))
                    .map_err(throw)
            }
        },
    );
    b.add(
        "compare_past",
        &["canary: String", "baseline: String|Array", "window: float"],
        "Map",
        doc::COMPARE_PAST,
        |c| {
            move |canary: ImmutableString, baseline: Dynamic, window: Dynamic| -> RhaiResult<Map> {
                let w = secs(&window, "window")?;
                let ids = ids_of(&baseline, "metrics::compare", "the baseline")?;
                let cl = c.cluster()?;
                let cf = c
                    .block_on(cl.figures_past(&[canary.to_string()], w))
                    .map_err(throw)?;
                let bf = c.block_on(cl.figures_past(&ids, w)).map_err(throw)?;
                Ok(comparison(&cf, &bf))
            }
        },
    );
    b.add(
        "compare_past",
        &["id: String", "since: float", "window: float"],
        "Map",
        doc::COMPARE_PAST_SINCE,
        |c| {
            move |id: ImmutableString, since: f64, window: Dynamic| {
                compare_own(&c, &id, since, &window)
            }
        },
    );
    b.add(
        "compare_past",
        &["id: String", "since: int", "window: float"],
        "Map",
        doc::COMPARE_PAST_SINCE,
        |c| {
            move |id: ImmutableString, since: i64, window: Dynamic| {
                compare_own(&c, &id, since as f64, &window)
            }
        },
    );
    // One entry in `functions` for both number types of `since`.
    b.forget_last_doc();
    b.add("has_prometheus", &[], "bool", doc::HAS_PROMETHEUS, |c| {
        move || -> RhaiResult<bool> { Ok(c.cluster()?.has_prometheus()) }
    });
    b.build()
}

/// `metrics::compare_past(id, since, window)`: the node's last `window` against the `window` before `since`.
fn compare_own(c: &Ctx, id: &str, since: f64, window: &Dynamic) -> RhaiResult<Map> {
    let w = secs(window, "window")?;
    if w.is_zero() {
        return Err(fail(
            "metrics::compare_past: the window must be above 0 seconds",
        ));
    }
    let now = crate::output::unix_now();
    if !since.is_finite() || since > now {
        return Err(fail(format!(
            "metrics::compare_past: `since` ({since}) is not a past unix time on the wall clock (now {now:.0}); take it with wall_now()"
        )));
    }
    let cl = c.cluster()?;
    let ids = [id.to_string()];
    let (cf, bf) = c
        .block_on(async {
            let (a, b) = tokio::join!(
                cl.figures_recorded(&ids, w, Some(now)),
                cl.figures_recorded(&ids, w, Some(since))
            );
            Ok((a?, b?))
        })
        .map_err(throw)?;
    Ok(comparison(&cf, &bf))
}

/// Per figure #{canary, baseline, ratio}.
fn comparison(cf: &Figures, bf: &Figures) -> Map {
    Figures::NAMES
        .iter()
        .map(|name| {
            let (cv, bv) = (cf.get(name), bf.get(name));
            let mut m = Map::new();
            m.insert("canary".into(), Dynamic::from(cv));
            m.insert("baseline".into(), Dynamic::from(bv));
            m.insert(
                "ratio".into(),
                ratio(cv, bv).map_or(Dynamic::UNIT, Dynamic::from),
            );
            ((*name).into(), Dynamic::from_map(m))
        })
        .collect()
}

/// A Prometheus answer as script values: a float, a string, or an array of #{labels, value} (vectors)
/// or #{labels, values: [[t, v], ...]} (matrices).
fn prom_to_dynamic(v: PromValue) -> Dynamic {
    let labels = |l: std::collections::BTreeMap<String, String>| -> Dynamic {
        Dynamic::from_map(
            l.into_iter()
                .map(|(k, v)| (k.into(), Dynamic::from(v)))
                .collect(),
        )
    };
    match v {
        PromValue::Scalar(f) => Dynamic::from(f),
        PromValue::String(s) => Dynamic::from(s),
        PromValue::Vector(series) => series
            .into_iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("labels".into(), labels(s.labels));
                m.insert("value".into(), Dynamic::from(s.value));
                Dynamic::from_map(m)
            })
            .collect::<Array>()
            .into(),
        PromValue::Matrix(series) => series
            .into_iter()
            .map(|(l, points)| {
                let mut m = Map::new();
                m.insert("labels".into(), labels(l));
                let values: Array = points
                    .into_iter()
                    .map(|(t, v)| Dynamic::from(vec![Dynamic::from(t), Dynamic::from(v)]))
                    .collect();
                m.insert("values".into(), values.into());
                Dynamic::from_map(m)
            })
            .collect::<Array>()
            .into(),
    }
}

/// Figures as the map scripts see.
pub fn figures_map(f: &Figures) -> Map {
    Figures::NAMES
        .iter()
        .map(|n| ((*n).into(), Dynamic::from(f.get(n))))
        .collect()
}

/// One id or an array of ids, for `call`'s argument `what`.
fn ids_of(v: &Dynamic, call: &str, what: &str) -> RhaiResult<Vec<String>> {
    if v.is_string() {
        return Ok(vec![v.to_string()]);
    }
    if let Some(a) = v.read_lock::<Array>() {
        let ids: Vec<String> = a.iter().map(|x| x.to_string()).collect();
        if ids.is_empty() {
            return Err(fail(format!("{call}: {what} names no node")));
        }
        return Ok(ids);
    }
    Err(fail(format!(
        "{call}: {what} must be a node id or an array of ids, not {}",
        v.type_name()
    )))
}
