//! Metrics: node scrapes and the canary figures built from them, and Prometheus queries.

use std::time::Duration;

use super::{Cluster, OpError, OpResult};
use crate::model::figures::{figures, Figures};
use crate::model::metrics_text::Scrape;
use crate::output::human_duration;
use crate::transport::prometheus::{
    group_figure_queries, group_figure_queries_ms, PromClient, PromValue,
};

/// A metrics window in progress: its nodes scraped at its start, and when.
pub struct Window {
    ids: Vec<String>,
    before: Vec<Scrape>,
    started: f64,
}

/// A window closed: each node's scrapes at its start and its end, and the seconds between.
pub struct Closed {
    pairs: Vec<(Scrape, Scrape)>,
    secs: f64,
}

impl Closed {
    /// The figures of every node of the window pooled (transactions and latency buckets summed, gauges
    /// and throughput averaged per node).
    pub fn pooled(&self) -> Figures {
        self.of(0..self.pairs.len())
    }

    /// The canary's figures (the window's first node) and its baseline's (the rest, pooled), when
    /// there is one.
    pub fn compared(&self) -> (Figures, Option<Figures>) {
        let n = self.pairs.len();
        (self.of(0..n.min(1)), (n > 1).then(|| self.of(1..n)))
    }

    fn of(&self, range: std::ops::Range<usize>) -> Figures {
        let pairs: Vec<(&Scrape, &Scrape)> =
            self.pairs[range].iter().map(|(a, b)| (a, b)).collect();
        figures(&pairs, self.secs)
    }
}

impl Cluster {
    pub async fn scrape(&self, id: &str) -> OpResult<Scrape> {
        self.node(id)?;
        let text = self.admin.metrics_text(id).await?;
        Scrape::parse(&text).map_err(|e| {
            OpError::Failed(format!(
                "{id}: scrape failed: /metrics is not Prometheus text: {e}"
            ))
        })
    }

    /// Scrapes several nodes at once (at most `FAN_OUT` in flight), in the order given.
    pub async fn scrape_many(&self, ids: &[String]) -> OpResult<Vec<Scrape>> {
        use futures_util::StreamExt;
        let results: Vec<OpResult<Scrape>> = futures_util::stream::iter(ids.iter())
            .map(|id| self.scrape(id))
            .buffered(crate::transport::admin::FAN_OUT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Opens a metrics window over `ids`: every node scraped at once, and the time on the cluster's
    /// clock. The caller waits out the window (on the cluster's clock, as a safe point) and closes it.
    pub async fn open_window(&self, ids: &[String]) -> OpResult<Window> {
        for id in ids {
            self.node(id)?;
        }
        let before = self.scrape_many(ids).await?;
        let started = self.unix_now().await?;
        Ok(Window {
            ids: ids.to_vec(),
            before,
            started,
        })
    }

    /// Opens a window over a canary and its baseline (`compare`): the canary first.
    pub async fn open_comparison(&self, canary: &str, baseline: &[String]) -> OpResult<Window> {
        for id in std::iter::once(canary).chain(baseline.iter().map(String::as_str)) {
            self.node(id)?;
        }
        if baseline.iter().any(|b| b == canary) {
            return Err(OpError::Usage(format!(
                "metrics: the canary `{canary}` cannot be part of its own baseline"
            )));
        }
        let mut ids = vec![canary.to_string()];
        ids.extend(baseline.iter().cloned());
        self.open_window(&ids).await
    }

    /// Closes a window: every node scraped again. Its figures are rates over the time that passed on
    /// the cluster's clock (a simulated cluster's counters move in simulated seconds).
    pub async fn close_window(&self, w: Window) -> OpResult<Closed> {
        let after = self.scrape_many(&w.ids).await?;
        let secs = (self.unix_now().await? - w.started).max(0.001);
        Ok(Closed {
            pairs: w.before.into_iter().zip(after).collect(),
            secs,
        })
    }

    fn prometheus(&self) -> OpResult<&PromClient> {
        self.prometheus.as_ref().ok_or_else(|| {
            OpError::Usage(format!(
                "metrics: the inventory `{}` names no Prometheus: add `prometheus_url = \"http://HOST:9090\"` under [cluster]",
                self.inventory.source.display()
            ))
        })
    }

    /// An instant PromQL query against the inventory's Prometheus.
    pub async fn query(&self, promql: &str) -> OpResult<PromValue> {
        self.prometheus()?
            .query(promql)
            .await
            .map_err(OpError::from)
    }

    /// The canary figures of a group of nodes over the last `window`, from Prometheus: no waiting, and
    /// windows longer than this run. The five queries go out at once.
    pub async fn figures_past(&self, ids: &[String], window: Duration) -> OpResult<Figures> {
        self.figures_recorded(ids, window, None).await
    }

    /// Whether the inventory names a Prometheus.
    pub fn has_prometheus(&self) -> bool {
        self.prometheus.is_some()
    }

    /// The canary figures of a group of nodes over the `window` that ends at `until` (unix seconds on the
    /// wall clock Prometheus keeps; `None`: now), from Prometheus. Windows are kept to the millisecond.
    pub async fn figures_recorded(
        &self,
        ids: &[String],
        window: Duration,
        until: Option<f64>,
    ) -> OpResult<Figures> {
        let prom = self.prometheus()?;
        let mut instances = Vec::with_capacity(ids.len());
        for id in ids {
            instances.push(self.node(id)?.prometheus_instance.as_str());
        }
        let q = match until {
            None => group_figure_queries(&instances, window.as_secs().max(1)),
            Some(_) => group_figure_queries_ms(&instances, window.as_millis() as u64),
        };
        let when = match until {
            None => format!("in the last {}", human_duration(window)),
            Some(t) => format!(
                "in the {} before {}",
                human_duration(window),
                crate::journal::rfc3339(t)
            ),
        };
        let ask = |query: String| {
            let when = when.clone();
            async move {
                match prom.query_at(&query, until).await {
                    Ok(v) => v.single().ok_or_else(|| {
                        OpError::Failed(format!(
                            "metrics: Prometheus has no data for {} {when} (query `{query}`)",
                            ids.join(", "),
                        ))
                    }),
                    Err(e) => Err(OpError::from(e)),
                }
            }
        };
        let (error_rate, p99, lag, memory, tps) = tokio::join!(
            ask(q.error_rate.clone()),
            ask(q.latency_p99_seconds.clone()),
            ask(q.replication_lag_seconds.clone()),
            ask(q.memory_bytes.clone()),
            ask(q.tx_per_sec.clone())
        );
        let error_rate = error_rate?;
        Ok(Figures {
            // No transactions in the window is no errors, as in the scrape-based figures.
            error_rate: if error_rate.is_nan() { 0.0 } else { error_rate },
            latency_p99_ms: p99? * 1000.0,
            replication_lag_ms: lag? * 1000.0,
            memory_bytes: memory?,
            tx_per_sec: tps?,
        })
    }
}
