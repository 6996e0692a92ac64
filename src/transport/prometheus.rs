//! A Prometheus HTTP API client for `metrics::query` and for `sample`/`compare` over windows longer than
//! the tool has been running: when the inventory names `prometheus_url`, the history is already there.
//!
//! Only instant queries (`GET /api/v1/query`). Errors name the query, the endpoint and Prometheus's own
//! `errorType: error`, so a typo in a runbook's PromQL reads like the Prometheus UI would report it.

use std::collections::BTreeMap;

use std::time::Duration;

use serde_json::Value;

use super::http::{snippet, Cause};

/// A Prometheus that accepts no connection within this is down or unreachable; waiting longer only delays
/// the runbook's fallback or failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Long enough for a `histogram_quantile` over an hour of buckets on a busy server, short enough that a
/// wedged server cannot stall a canary decision.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A series' labels, `__name__` included when the result keeps it.
pub type Labels = BTreeMap<String, String>;
/// `(unix seconds, value)` samples, oldest first.
pub type Points = Vec<(f64, f64)>;

/// The answer of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub enum PromValue {
    Scalar(f64),
    Vector(Vec<PromSeries>),
    String(String),
    /// Labels and `(unix seconds, value)` points per series: what a range selector such as `up[5m]` returns.
    Matrix(Vec<(Labels, Points)>),
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries {
    pub labels: Labels,
    pub value: f64,
}

impl PromValue {
    /// The one number the query produced: a scalar, or the value of a one-element vector. `None` for an
    /// empty vector (no data: unknown instance, window longer than the retention), several series, strings
    /// and matrices, so a caller cannot mistake "no data" for zero.
    pub fn single(&self) -> Option<f64> {
        match self {
            PromValue::Scalar(v) => Some(*v),
            PromValue::Vector(series) if series.len() == 1 => Some(series[0].value),
            _ => None,
        }
    }

    /// Prometheus's name for the shape: "scalar", "vector", "string" or "matrix".
    pub fn kind(&self) -> &'static str {
        match self {
            PromValue::Scalar(_) => "scalar",
            PromValue::Vector(_) => "vector",
            PromValue::String(_) => "string",
            PromValue::Matrix(_) => "matrix",
        }
    }
}

/// A failed query. `url` is the endpoint without the query string (the query is shown verbatim instead)
/// and without credentials.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromError {
    #[error("prometheus: query `{query}` failed: GET {url}: {cause}")]
    Query {
        query: String,
        url: String,
        cause: Cause,
    },
}

impl PromError {
    pub fn cause(&self) -> &Cause {
        match self {
            PromError::Query { cause, .. } => cause,
        }
    }

    /// True when Prometheus itself could not be reached or did not answer in time, as opposed to
    /// rejecting the query: the case where falling back to scraping the nodes makes sense.
    pub fn unreachable(&self) -> bool {
        self.cause().no_answer()
    }
}

/// A client for one Prometheus server.
#[derive(Debug, Clone)]
pub struct PromClient {
    http: reqwest::Client,
    /// `…/api/v1/query`, with any path prefix the server is mounted under.
    endpoint: reqwest::Url,
    /// The endpoint as errors show it: credentials removed.
    shown: String,
}

impl PromClient {
    /// `base_url` is what one would open in a browser: `http://prometheus:9090`, or
    /// `https://ops.example.com/prometheus` behind a path prefix.
    pub fn new(base_url: &str) -> Result<PromClient, String> {
        let endpoint = crate::inventory::prometheus_query_url(base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // The server is named in the inventory; a proxy from the environment must not reroute it.
            .no_proxy()
            .user_agent(concat!("neumann-script/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("prometheus_url: cannot set up the HTTP client: {e}"))?;
        let shown = redacted(&endpoint);
        Ok(PromClient {
            http,
            endpoint,
            shown,
        })
    }

    /// The query endpoint as errors show it.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    /// The full URL one instant query is sent to.
    pub fn query_url(&self, promql: &str) -> reqwest::Url {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("query", promql);
        url
    }

    /// Runs an instant query evaluated now.
    pub async fn query(&self, promql: &str) -> Result<PromValue, PromError> {
        self.query_at(promql, None).await
    }

    /// Runs an instant query evaluated at `at` (unix seconds, Prometheus's `time` parameter: every range
    /// and gauge in it then ends there), or now.
    pub async fn query_at(&self, promql: &str, at: Option<f64>) -> Result<PromValue, PromError> {
        let fail = |cause: Cause| PromError::Query {
            query: promql.to_string(),
            url: self.shown.clone(),
            cause,
        };
        let mut url = self.query_url(promql);
        if let Some(t) = at {
            url.query_pairs_mut()
                .append_pair("time", &format!("{t:.3}"));
        }
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(transport_cause(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| fail(transport_cause(&e)))?;
        parse_answer(status, &body).map_err(fail)
    }
}

/// `base_url` + `/api/v1/query`, after checking it is an absolute http(s) URL with a host and nothing a
/// query URL cannot carry.
fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    // Both setters fail only for URLs without a host, which `prometheus_query_url` has already refused.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Reads Prometheus's JSON envelope. Its error body (`{"status":"error","errorType":…,"error":…}`) comes
/// with 400, 422 or 503 depending on the failure, so the body decides, not the status.
pub fn parse_answer(status: u16, body: &str) -> Result<PromValue, Cause> {
    let doc: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) if (200..300).contains(&status) => {
            return Err(Cause::BadAnswer(format!(
                "{e} in {}",
                snippet(body, "an empty body")
            )))
        }
        Err(_) => {
            return Err(Cause::Status {
                code: status,
                message: snippet(body, "no body"),
            })
        }
    };
    if doc.get("status").and_then(Value::as_str) == Some("error") {
        let text = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        return Err(Cause::Api {
            error_type: text("errorType"),
            message: text("error"),
        });
    }
    if !(200..300).contains(&status) {
        return Err(Cause::Status {
            code: status,
            message: snippet(body, "no body"),
        });
    }
    if doc.get("status").and_then(Value::as_str) != Some("success") {
        return Err(Cause::BadAnswer(format!(
            "no \"status\": \"success\" in {}",
            snippet(body, "an empty body")
        )));
    }
    let data = doc
        .get("data")
        .ok_or_else(|| Cause::BadAnswer("no \"data\"".into()))?;
    let result = data
        .get("result")
        .ok_or_else(|| Cause::BadAnswer("no \"data.result\"".into()))?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => Ok(PromValue::Scalar(point(result)?.1)),
        Some("string") => {
            let text = result
                .get(1)
                .and_then(Value::as_str)
                .ok_or_else(|| Cause::BadAnswer(format!("string result {result}")))?;
            Ok(PromValue::String(text.to_string()))
        }
        Some("vector") => {
            let mut out = Vec::new();
            for item in array(result, "vector")? {
                let sample = match item.get("value") {
                    Some(v) => point(v)?,
                    None if item.get("histogram").is_some() => {
                        return Err(Cause::BadAnswer(
                            "native histogram samples are not supported; query a classic histogram's _bucket series".into(),
                        ))
                    }
                    None => return Err(Cause::BadAnswer(format!("vector element {item}"))),
                };
                out.push(PromSeries {
                    labels: labels(item)?,
                    value: sample.1,
                });
            }
            Ok(PromValue::Vector(out))
        }
        Some("matrix") => {
            let mut out = Vec::new();
            for item in array(result, "matrix")? {
                let values = match item.get("values") {
                    Some(vs) => array(vs, "matrix values")?
                        .iter()
                        .map(point)
                        .collect::<Result<Vec<_>, _>>()?,
                    // A series holding only native histograms has no "values".
                    None => Vec::new(),
                };
                out.push((labels(item)?, values));
            }
            Ok(PromValue::Matrix(out))
        }
        other => Err(Cause::BadAnswer(format!(
            "result type {}",
            other.unwrap_or("missing")
        ))),
    }
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, Cause> {
    v.as_array()
        .ok_or_else(|| Cause::BadAnswer(format!("{what} result is not an array: {v}")))
}

fn labels(item: &Value) -> Result<BTreeMap<String, String>, Cause> {
    let Some(metric) = item.get("metric") else {
        return Ok(BTreeMap::new());
    };
    let map = metric
        .as_object()
        .ok_or_else(|| Cause::BadAnswer(format!("labels {metric}")))?;
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(Cause::BadAnswer(format!("label {k} = {v}"))),
        })
        .collect()
}

/// `[unix_seconds, "value"]`: Prometheus sends values as strings so that NaN and ±Inf survive JSON.
fn point(v: &Value) -> Result<(f64, f64), Cause> {
    let bad = || Cause::BadAnswer(format!("sample {v}"));
    let pair = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let t = pair[0].as_f64().ok_or_else(bad)?;
    let value = pair[1].as_str().and_then(number).ok_or_else(bad)?;
    Ok((t, value))
}

/// Go's `strconv.FormatFloat` spellings, which Rust's parser only partly shares.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn transport_cause(e: &reqwest::Error) -> Cause {
    let limit = if e.is_connect() {
        CONNECT_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    Cause::of(e, limit)
}

/// A label value as a PromQL double-quoted string literal, quotes included. PromQL unquotes like Go, so
/// backslash, quote and control characters must be escaped or the query changes meaning or fails to parse.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value matched literally inside an RE2 regex (what `=~` takes): every metacharacter escaped.
fn regex_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The PromQL for the canary figures of a node, the same figures `metrics::sample` computes from two
/// scrapes. Every query yields one series, or none when Prometheus has no data for the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureQueries {
    /// aborts / (commits + aborts) over the window. NaN when the window saw no transactions: the
    /// scrape-based figure reports 0 there, so callers map NaN to 0 to agree with it.
    pub error_rate: String,
    /// Seconds (the sample map's `latency_p99_ms` is this × 1000). NaN with no transactions.
    pub latency_p99_seconds: String,
    /// Seconds, latest value (× 1000 for `replication_lag_ms`).
    pub replication_lag_seconds: String,
    /// Latest value.
    pub memory_bytes: String,
    /// Commits per second over the window.
    pub tx_per_sec: String,
}

impl FigureQueries {
    /// `(figure, query)` pairs, in the order of the sample map.
    pub fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("error_rate", &self.error_rate),
            ("latency_p99_seconds", &self.latency_p99_seconds),
            ("replication_lag_seconds", &self.replication_lag_seconds),
            ("memory_bytes", &self.memory_bytes),
            ("tx_per_sec", &self.tx_per_sec),
        ]
    }
}

/// Figures of one node; `instance` is its `instance` label (`host:port` of its admin URL unless the
/// Prometheus config relabels it).
pub fn figure_queries(instance: &str, window_secs: u64) -> FigureQueries {
    group_figure_queries(&[instance], window_secs)
}

/// Figures of a group of nodes (a baseline), pooled the way `metrics::compare` pools scrapes:
/// transactions and latency buckets summed over the group, lag, memory and throughput averaged per node.
pub fn group_figure_queries(instances: &[&str], window_secs: u64) -> FigureQueries {
    // PromQL rejects a zero range; a one-second window still means "almost no history".
    group_figure_queries_in(instances, &format!("{}s", window_secs.max(1)))
}

/// As `group_figure_queries`, over a window given in milliseconds: a simulated cluster's windows, seen
/// on the wall clock Prometheus keeps, are seconds long and not whole.
pub fn group_figure_queries_ms(instances: &[&str], window_ms: u64) -> FigureQueries {
    group_figure_queries_in(instances, &format!("{}ms", window_ms.max(1)))
}

fn group_figure_queries_in(instances: &[&str], w: &str) -> FigureQueries {
    let sel = match instances {
        [one] => format!("instance={}", quote(one)),
        many => {
            let alternatives: Vec<String> = many.iter().map(|i| regex_literal(i)).collect();
            format!("instance=~{}", quote(&alternatives.join("|")))
        }
    };
    let commits = format!("sum(increase(tensor_chain_tx_commits_total{{{sel}}}[{w}]))");
    let aborts = format!("sum(increase(tensor_chain_tx_aborts_total{{{sel}}}[{w}]))");
    FigureQueries {
        error_rate: format!("{aborts} / ({commits} + {aborts})"),
        latency_p99_seconds: format!(
            "histogram_quantile(0.99, sum by (le) (increase(tensor_chain_tx_latency_seconds_bucket{{{sel}}}[{w}])))"
        ),
        replication_lag_seconds: format!("avg(tensor_chain_replication_lag_seconds{{{sel}}})"),
        memory_bytes: format!("avg(tensor_chain_memory_bytes{{{sel}}})"),
        tx_per_sec: format!("avg(rate(tensor_chain_tx_commits_total{{{sel}}}[{w}]))"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_value(body: &str) -> PromValue {
        parse_answer(200, body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[test]
    fn reads_a_vector_with_labels() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"127.0.0.1:9100","job":"neumann"},"value":[1700000000.123,"1"]},
            {"metric":{"__name__":"up","instance":"127.0.0.1:9101","job":"neumann"},"value":[1700000000.123,"0"]}]}}"#;
        let PromValue::Vector(series) = vector_value(body) else {
            panic!("not a vector")
        };
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels["instance"], "127.0.0.1:9100");
        assert_eq!(series[0].labels["job"], "neumann");
        assert_eq!(series[0].value, 1.0);
        assert_eq!(series[1].value, 0.0);
        assert_eq!(vector_value(body).single(), None, "two series are not one");
    }

    #[test]
    fn single_takes_a_scalar_or_a_lone_series_and_nothing_else() {
        let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2.5"]}]}}"#;
        assert_eq!(vector_value(one).single(), Some(2.5));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(vector_value(empty), PromValue::Vector(vec![]));
        assert_eq!(vector_value(empty).single(), None);
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#;
        assert_eq!(vector_value(scalar), PromValue::Scalar(42.0));
        assert_eq!(vector_value(scalar).single(), Some(42.0));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hello \"there\""]}}"#;
        assert_eq!(
            vector_value(string),
            PromValue::String("hello \"there\"".into())
        );
        assert_eq!(vector_value(string).single(), None);
    }

    #[test]
    fn reads_nan_and_infinities() {
        for (text, check) in [
            ("NaN", f64::is_nan as fn(f64) -> bool),
            ("+Inf", |v: f64| v == f64::INFINITY),
            ("-Inf", |v: f64| v == f64::NEG_INFINITY),
            ("1e-3", |v: f64| v == 0.001),
            ("-0.5", |v: f64| v == -0.5),
        ] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{text}"]}}}}"#
            );
            let v = vector_value(&body).single();
            assert!(v.is_some_and(check), "{text} read as {v:?}");
        }
        let junk = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"lots"]}}"#;
        assert!(matches!(parse_answer(200, junk), Err(Cause::BadAnswer(_))));
    }

    #[test]
    fn reads_a_matrix() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"a"},"values":[[1700000000,"1"],[1700000001.5,"3"]]},
            {"metric":{"instance":"b"},"values":[]}]}}"#;
        let PromValue::Matrix(series) = vector_value(body) else {
            panic!("not a matrix")
        };
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0["instance"], "a");
        assert_eq!(
            series[0].1,
            vec![(1_700_000_000.0, 1.0), (1_700_000_001.5, 3.0)]
        );
        assert!(series[1].1.is_empty());
        assert_eq!(vector_value(body).single(), None);
    }

    #[test]
    fn prometheus_errors_keep_their_type_and_text() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:4: parse error: unexpected <op:*>"}"#;
        let cause = parse_answer(400, body).unwrap_err();
        assert_eq!(
            cause.to_string(),
            "bad_data: invalid parameter \"query\": 1:4: parse error: unexpected <op:*>"
        );
        let timeout = r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
        assert_eq!(
            parse_answer(503, timeout).unwrap_err().to_string(),
            "timeout: query timed out in expression evaluation"
        );
    }

    #[test]
    fn other_failures_say_what_came_back() {
        assert_eq!(
            parse_answer(502, "<html>Bad Gateway</html>")
                .unwrap_err()
                .to_string(),
            "HTTP 502: <html>Bad Gateway</html>"
        );
        assert_eq!(
            parse_answer(404, "").unwrap_err().to_string(),
            "HTTP 404: no body"
        );
        assert!(parse_answer(200, "not json")
            .unwrap_err()
            .to_string()
            .starts_with("unexpected answer: "));
        let odd = r#"{"status":"success","data":{"resultType":"streams","result":[]}}"#;
        assert_eq!(
            parse_answer(200, odd).unwrap_err().to_string(),
            "unexpected answer: result type streams"
        );
        let native = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#;
        assert!(parse_answer(200, native)
            .unwrap_err()
            .to_string()
            .contains("native histogram"));
    }

    #[test]
    fn errors_name_query_endpoint_and_cause() {
        let e = PromError::Query {
            query: "up".into(),
            url: "http://127.0.0.1:9090/api/v1/query".into(),
            cause: Cause::Refused,
        };
        assert_eq!(
            e.to_string(),
            "prometheus: query `up` failed: GET http://127.0.0.1:9090/api/v1/query: connection refused"
        );
        assert!(e.unreachable());
        let t = PromError::Query {
            query: "up".into(),
            url: "http://p/api/v1/query".into(),
            cause: Cause::Timeout(REQUEST_TIMEOUT),
        };
        assert_eq!(
            t.to_string(),
            "prometheus: query `up` failed: GET http://p/api/v1/query: no answer within 10 s"
        );
    }

    #[test]
    fn base_urls_are_checked_and_keep_their_prefix() {
        for (base, endpoint) in [
            (
                "http://127.0.0.1:9090",
                "http://127.0.0.1:9090/api/v1/query",
            ),
            (
                "http://127.0.0.1:9090/",
                "http://127.0.0.1:9090/api/v1/query",
            ),
            (
                "https://ops.example.com/prometheus/",
                "https://ops.example.com/prometheus/api/v1/query",
            ),
            ("  http://[::1]:9090 ", "http://[::1]:9090/api/v1/query"),
            ("http://user:secret@p:9090", "http://p:9090/api/v1/query"),
        ] {
            let client = PromClient::new(base).unwrap_or_else(|e| panic!("{base}: {e}"));
            assert_eq!(client.endpoint(), endpoint, "{base}");
        }
        for (base, why) in [
            ("127.0.0.1:9090", "http"),
            ("ftp://p:9090", "must start with http:// or https://"),
            ("http://", ""),
            ("http://p:9090/?x=1", "query or fragment"),
            ("", ""),
        ] {
            let err = PromClient::new(base).expect_err(base);
            assert!(err.starts_with("prometheus_url `"), "{err}");
            assert!(err.contains(why), "{base}: {err}");
        }
    }

    #[test]
    fn queries_are_percent_encoded_in_the_url() {
        let client = PromClient::new("http://p:9090/prom").expect("valid");
        let url = client.query_url(r#"sum(rate(x{instance="a b&c"}[5m])) + 1 / 2 # not a comment"#);
        assert_eq!(url.path(), "/prom/api/v1/query");
        let query = url.query().unwrap_or_default();
        assert!(!query.contains(' ') && !query.contains('"') && !query.contains('#'));
        assert!(
            query.contains("%26"),
            "the & inside the value is encoded: {query}"
        );
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            decoded,
            vec![(
                "query".to_string(),
                r#"sum(rate(x{instance="a b&c"}[5m])) + 1 / 2 # not a comment"#.to_string()
            )]
        );
    }

    #[test]
    fn label_values_are_quoted_like_go_strings() {
        assert_eq!(quote("127.0.0.1:9100"), r#""127.0.0.1:9100""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("line\nbreak\ttab"), r#""line\nbreak\ttab""#);
        assert_eq!(quote("\u{7}"), r#""\x07""#);
        assert_eq!(quote("ünïcode"), "\"ünïcode\"");
    }

    #[test]
    fn figure_queries_select_one_instance() {
        let q = figure_queries("10.0.0.2:9090", 300);
        assert_eq!(
            q.error_rate,
            "sum(increase(tensor_chain_tx_aborts_total{instance=\"10.0.0.2:9090\"}[300s])) / \
             (sum(increase(tensor_chain_tx_commits_total{instance=\"10.0.0.2:9090\"}[300s])) + \
             sum(increase(tensor_chain_tx_aborts_total{instance=\"10.0.0.2:9090\"}[300s])))"
        );
        assert_eq!(
            q.latency_p99_seconds,
            "histogram_quantile(0.99, sum by (le) (increase(tensor_chain_tx_latency_seconds_bucket{instance=\"10.0.0.2:9090\"}[300s])))"
        );
        assert_eq!(
            q.replication_lag_seconds,
            "avg(tensor_chain_replication_lag_seconds{instance=\"10.0.0.2:9090\"})"
        );
        assert_eq!(
            q.memory_bytes,
            "avg(tensor_chain_memory_bytes{instance=\"10.0.0.2:9090\"})"
        );
        assert_eq!(
            q.tx_per_sec,
            "avg(rate(tensor_chain_tx_commits_total{instance=\"10.0.0.2:9090\"}[300s]))"
        );
        assert_eq!(q.pairs()[0], ("error_rate", q.error_rate.as_str()));
        assert!(figure_queries("x", 0).tx_per_sec.contains("[1s]"));
    }

    #[test]
    fn figure_queries_escape_hostile_instances() {
        let q = figure_queries(r#"evil"}) or vector(1) #"#, 60);
        assert!(
            q.memory_bytes.starts_with(
                r#"avg(tensor_chain_memory_bytes{instance="evil\"}) or vector(1) #"})"#
            ),
            "{}",
            q.memory_bytes
        );
    }

    #[test]
    fn group_figure_queries_match_any_member_literally() {
        let q = group_figure_queries(&["10.0.0.1:9090", "10.0.0.3:9090"], 120);
        assert_eq!(
            q.memory_bytes,
            r#"avg(tensor_chain_memory_bytes{instance=~"10\\.0\\.0\\.1:9090|10\\.0\\.0\\.3:9090"})"#
        );
    }
}
