//! Prometheus text exposition format (0.0.4) parser for `metrics::scrape`,
//! plus the small slice of PromQL that upgrade runbooks use to judge a node:
//! summing series, `histogram_quantile` and counter deltas.
//!
//! Std only and free of crate paths so it can be vendored verbatim.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One series value from a scrape. Timestamps are dropped: runbooks compare
/// scrapes by when they took them, not by what the exporter claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based, so it matches what an editor shows for the scraped body.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

const METRIC_TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

impl Scrape {
    pub fn parse(text: &str) -> Result<Scrape, ParseError> {
        let mut scrape = Scrape::default();
        for (index, raw) in text.lines().enumerate() {
            let error = |message: String| ParseError {
                line: index + 1,
                message,
            };
            // `lines()` leaves a lone '\r' on a final unterminated line.
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let line = line.trim_matches(is_blank);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                scrape.parse_comment(comment).map_err(error)?;
            } else {
                scrape.samples.push(parse_sample(line).map_err(error)?);
            }
        }
        Ok(scrape)
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Distinct sample names, sorted.
    pub fn names(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self.samples.iter().map(|s| s.name.as_str()).collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// Sum over every series called `name`, like PromQL `sum(name)`.
    pub fn value(&self, name: &str) -> Option<f64> {
        sum(self.samples.iter().filter(|s| s.name == name))
    }

    /// Sum over the series called `name` whose labels include every pair in
    /// `labels`; other labels on the series are ignored.
    pub fn value_with(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        sum(self
            .samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))))
    }

    /// `histogram_quantile(q, sum by (le) (<histogram>_bucket))`. `None` only
    /// when the scrape has no bucket series at all, so callers can tell "not
    /// exported" apart from "exported but no observations yet" (NaN).
    pub fn quantile(&self, histogram: &str, q: f64) -> Option<f64> {
        let bucket_name = format!("{histogram}_bucket");
        let mut found = false;
        let mut buckets = Vec::new();
        for sample in self.samples.iter().filter(|s| s.name == bucket_name) {
            found = true;
            // PromQL silently skips series whose `le` is missing or not a
            // float; equal bounds are summed by `histogram_quantile` itself,
            // which is what `sum by (le)` followed by coalescing amounts to.
            if let Some(le) = sample.labels.get("le").and_then(|v| v.parse::<f64>().ok()) {
                buckets.push((le, sample.value));
            }
        }
        found.then(|| histogram_quantile(q, &buckets))
    }

    /// The type declared by `# TYPE` for exactly this name; histogram and
    /// summary children such as `x_bucket` are not resolved to their family.
    pub fn metric_type(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    fn parse_comment(&mut self, body: &str) -> Result<(), String> {
        let mut words = body.split(is_blank).filter(|w| !w.is_empty());
        // HELP text is not needed and anything else is a free-form comment.
        if words.next() != Some("TYPE") {
            return Ok(());
        }
        let name = words.next().ok_or("TYPE line without a metric name")?;
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in TYPE line"));
        }
        let kind = words
            .next()
            .ok_or_else(|| format!("TYPE line for {name} without a type"))?
            .to_ascii_lowercase();
        if !METRIC_TYPES.contains(&kind.as_str()) {
            return Err(format!("unknown metric type {kind:?} for {name}"));
        }
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?} after TYPE {name} {kind}"));
        }
        // A second declaration means two families were concatenated; the
        // first one would silently win otherwise.
        if self.types.insert(name.to_owned(), kind).is_some() {
            return Err(format!("second TYPE line for {name}"));
        }
        Ok(())
    }
}

fn sum<'a>(samples: impl Iterator<Item = &'a Sample>) -> Option<f64> {
    samples.fold(None, |acc, s| Some(acc.map_or(s.value, |a| a + s.value)))
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn skip_blanks(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a non-blank, non-comment line with surrounding blanks removed.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    if !is_metric_name(name) {
        return Err(match name {
            "" => format!("expected a metric name, found {line:?}"),
            _ => format!("invalid metric name {name:?}"),
        });
    }
    if let Some(c) = rest.chars().next().filter(|&c| !is_blank(c) && c != '{') {
        return Err(format!("invalid character {c:?} in metric name {name}"));
    }

    let mut rest = skip_blanks(rest);
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = skip_blanks(after);
    }

    let (value, rest) = rest.split_once(is_blank).unwrap_or((rest, ""));
    if value.is_empty() {
        return Err(format!("missing value for {name}"));
    }
    // Rust's float grammar accepts the format's `+Inf`, `-Inf` and `NaN`.
    let value: f64 = value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for {name}"))?;

    let rest = skip_blanks(rest);
    if !rest.is_empty() {
        let (timestamp, extra) = rest.split_once(is_blank).unwrap_or((rest, ""));
        if timestamp.parse::<i64>().is_err() {
            return Err(format!("invalid timestamp {timestamp:?} for {name}"));
        }
        let extra = skip_blanks(extra);
        if !extra.is_empty() {
            return Err(format!("unexpected {extra:?} after timestamp of {name}"));
        }
    }

    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses the text after `{` up to and including the matching `}`, returning
/// the labels and whatever follows the brace.
fn parse_labels(mut rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        // Checked after every comma too, which is what makes `{a="b",}` legal.
        rest = skip_blanks(rest);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (label, after) = rest.split_at(end);
        if rest.is_empty() {
            return Err("unterminated label set, expected '}'".into());
        }
        if !is_label_name(label) {
            return Err(match label {
                "" => format!("expected a label name, found {rest:?}"),
                _ => format!("invalid label name {label:?}"),
            });
        }
        rest = skip_blanks(after)
            .strip_prefix('=')
            .ok_or_else(|| format!("expected '=' after label name {label}"))?;
        rest = skip_blanks(rest)
            .strip_prefix('"')
            .ok_or_else(|| format!("expected '\"' to open the value of label {label}"))?;
        let (value, after) = parse_label_value(rest)?;
        // Keeping either value would hide a broken exporter.
        if labels.insert(label.to_owned(), value).is_some() {
            return Err(format!("duplicate label {label}"));
        }
        rest = skip_blanks(after);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if rest.is_empty() {
            return Err("unterminated label set, expected '}'".into());
        } else if !rest.starts_with('}') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {label}, found {rest:?}"
            ));
        }
    }
}

/// Parses the text after an opening quote up to and including the closing
/// one. Commas, braces and `=` are plain characters in here.
fn parse_label_value(s: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                // Anything else is rejected, as by Prometheus, rather than
                // guessed at.
                Some((_, other)) => {
                    return Err(format!(
                        "invalid escape sequence '\\{other}' in label value"
                    ))
                }
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err("unterminated label value".into())
}

/// PromQL's `histogram_quantile` over classic buckets given as
/// `(upper bound, cumulative count)` in any order. A line-by-line port of
/// Prometheus's `bucketQuantile` (promql/quantile.go), special cases
/// included, so runbook thresholds agree with dashboards:
///
/// * `q` NaN gives NaN, `q < 0` gives -Inf, `q > 1` gives +Inf;
/// * no buckets, a highest bound other than +Inf, fewer than two distinct
///   bounds, or zero observations give NaN;
/// * a rank in the +Inf bucket gives the second-highest bound, a rank in a
///   lowest bucket bounded at or below 0 gives that bound, anything else is
///   interpolated linearly (from 0 in the lowest bucket).
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut buckets = buckets.to_vec();
    // Go's comparator treats NaN as equal to everything, which Rust's sort is
    // allowed to panic on; a total order sends NaN bounds to the ends instead.
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|&(le, _)| le != f64::INFINITY) {
        return f64::NAN;
    }

    // Equal bounds come from several series (`le="1"` and `le="1.0"`).
    buckets.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    correct_precision_errors(&mut buckets, 1e-12);
    ensure_monotonic(&mut buckets);

    let n = buckets.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = search(n - 1, |i| buckets[i].1 >= rank);

    if b == n - 1 {
        return buckets[n - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Go's `sort.Search`, kept verbatim so that NaN counts (which break the
/// monotonic assumption) land in the same bucket as in Prometheus.
fn search(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = i + (j - i) / 2;
        if pred(h) {
            j = h;
        } else {
            i = h + 1;
        }
    }
    i
}

/// Summing buckets across series (or after `rate`) can leave a bucket a few
/// ulps off its predecessor; snap such near-equal counts together so rounding
/// noise cannot move the quantile into another bucket.
fn correct_precision_errors(buckets: &mut [(f64, f64)], tolerance: f64) {
    let mut prev = buckets[0].1;
    for bucket in &mut buckets[1..] {
        let curr = bucket.1;
        let delta = (curr - prev).abs();
        if delta == 0.0 {
            continue;
        }
        if delta / curr <= tolerance {
            bucket.1 = prev;
        } else {
            prev = curr;
        }
    }
}

/// Cumulative counts can still dip when series come from inconsistent
/// targets; the envelope keeps the bucket search meaningful.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut max = buckets[0].1;
    for bucket in &mut buckets[1..] {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
}

/// Increase of a counter between two scrapes. A drop means the process
/// restarted and the counter began again at 0, so everything it now shows is
/// new. Divide by the seconds between the scrapes for a per-second rate.
pub fn counter_increase(earlier: f64, later: f64) -> f64 {
    if later < earlier {
        later
    } else {
        later - earlier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn only(text: &str) -> Sample {
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(scrape.samples().len(), 1, "{text:?}");
        scrape.samples()[0].clone()
    }

    fn err(text: &str) -> ParseError {
        Scrape::parse(text).unwrap_err()
    }

    #[test]
    fn parses_help_type_and_samples() {
        let text = "# HELP neumann_requests_total Requests served.\n\
                    # TYPE neumann_requests_total counter\n\
                    neumann_requests_total{method=\"get\"} 10\n\
                    neumann_requests_total{method=\"put\"} 2.5e1\n\
                    # just a comment\n\
                    neumann_up 1\n";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(scrape.samples().len(), 3);
        assert_eq!(
            scrape.samples()[0],
            Sample {
                name: "neumann_requests_total".into(),
                labels: labels(&[("method", "get")]),
                value: 10.0,
            }
        );
        assert_eq!(scrape.samples()[1].value, 25.0);
        assert!(scrape.samples()[2].labels.is_empty());
        assert_eq!(
            scrape.metric_type("neumann_requests_total"),
            Some("counter")
        );
        assert_eq!(scrape.metric_type("neumann_up"), None);
    }

    #[test]
    fn type_keyword_is_case_insensitive_and_histogram_children_unresolved() {
        let scrape = Scrape::parse("#TYPE lat HISTOGRAM\nlat_bucket{le=\"+Inf\"} 1").unwrap();
        assert_eq!(scrape.metric_type("lat"), Some("histogram"));
        assert_eq!(scrape.metric_type("lat_bucket"), None);
    }

    #[test]
    fn empty_input_and_comments_only() {
        assert!(Scrape::parse("").unwrap().samples().is_empty());
        let scrape = Scrape::parse("\n# HELP x y\n   \n#\n").unwrap();
        assert!(scrape.samples().is_empty());
        assert!(scrape.names().is_empty());
    }

    #[test]
    fn label_values_may_hold_commas_braces_and_equals() {
        let s = only(r#"m{path="/a,b}c=d",x="{}"} 1"#);
        assert_eq!(s.labels, labels(&[("path", "/a,b}c=d"), ("x", "{}")]));
    }

    #[test]
    fn label_value_escapes() {
        let s = only(r#"m{a="say \"hi\"",b="C:\\dir\\",c="two\nlines"} 1"#);
        assert_eq!(s.labels["a"], "say \"hi\"");
        assert_eq!(s.labels["b"], "C:\\dir\\");
        assert_eq!(s.labels["c"], "two\nlines");
    }

    #[test]
    fn label_value_utf8_and_empty() {
        let s = only("m{node=\"nœud-π\",empty=\"\"} 1");
        assert_eq!(s.labels, labels(&[("empty", ""), ("node", "nœud-π")]));
    }

    #[test]
    fn trailing_comma_empty_braces_and_blanks_inside_braces() {
        assert_eq!(only(r#"m{a="1",} 1"#).labels, labels(&[("a", "1")]));
        assert!(only("m{} 1").labels.is_empty());
        let s = only("m { a = \"1\" ,\tb=\"2\" , } 3");
        assert_eq!(s.labels, labels(&[("a", "1"), ("b", "2")]));
        assert_eq!(s.value, 3.0);
        // No blank is needed between the closing brace and the value.
        assert_eq!(only(r#"m{a="1"}7"#).value, 7.0);
    }

    #[test]
    fn colons_and_underscores_in_names() {
        let s = only("job:neumann_rpc:rate5m{_l=\"x\"} 0.5");
        assert_eq!(s.name, "job:neumann_rpc:rate5m");
        assert_eq!(only(":leading_colon 1").name, ":leading_colon");
        assert_eq!(only("_x9 1").name, "_x9");
    }

    #[test]
    fn timestamps_are_accepted_and_ignored() {
        assert_eq!(only("m 4 1712345678901").value, 4.0);
        assert_eq!(only("m{a=\"b\"} 4 -5").value, 4.0);
        assert_eq!(only("m 4\t1712345678901  ").value, 4.0);
    }

    #[test]
    fn special_float_values() {
        assert_eq!(only("m +Inf").value, f64::INFINITY);
        assert_eq!(only("m -Inf").value, f64::NEG_INFINITY);
        assert!(only("m NaN").value.is_nan());
        assert_eq!(only("m -1.5e-3").value, -0.0015);
        assert_eq!(only("m +3").value, 3.0);
        let s = only("m{le=\"+Inf\"} -0 123");
        assert_eq!((s.labels["le"].as_str(), s.value), ("+Inf", 0.0));
    }

    #[test]
    fn crlf_blank_lines_and_indentation() {
        let text = "# TYPE a gauge\r\n\r\n  a 1\r\n\tb{x=\"y\"} 2\r\n\r\nc 3\r";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(scrape.names(), ["a", "b", "c"]);
        assert_eq!(scrape.value("c"), Some(3.0));
        assert_eq!(scrape.metric_type("a"), Some("gauge"));
        assert_eq!(scrape.samples()[1].labels["x"], "y");
    }

    #[test]
    fn error_display_and_error_trait() {
        let e = err("a 1\nb 2\nc{x=\"open} 3\n");
        assert_eq!(
            e,
            ParseError {
                line: 3,
                message: "unterminated label value".into()
            }
        );
        assert_eq!(e.to_string(), "line 3: unterminated label value");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert_eq!(boxed.to_string(), "line 3: unterminated label value");
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases: &[(&str, usize, &str)] = &[
            ("ok 1\n9lives 1", 2, "invalid metric name \"9lives\""),
            ("{a=\"b\"} 1", 1, "expected a metric name"),
            ("a-b 1", 1, "invalid character '-' in metric name a"),
            ("\n\nm", 3, "missing value for m"),
            ("m{a=\"b\"}", 1, "missing value for m"),
            ("m one", 1, "invalid value \"one\" for m"),
            ("m 1 12.5", 1, "invalid timestamp \"12.5\" for m"),
            ("m 1 2 3", 1, "unexpected \"3\" after timestamp of m"),
            ("m{a=\"b\"", 1, "unterminated label set"),
            ("m{a=\"b\",", 1, "unterminated label set"),
            ("m{a=\"b\" c=\"d\"} 1", 1, "expected ',' or '}'"),
            ("m{a} 1", 1, "expected '=' after label name a"),
            ("m{a=b} 1", 1, "expected '\"' to open the value of label a"),
            ("m{,} 1", 1, "expected a label name"),
            ("m{1a=\"b\"} 1", 1, "invalid label name \"1a\""),
            ("m{a:b=\"c\"} 1", 1, "expected '=' after label name a"),
            ("m{a=\"1\",a=\"2\"} 1", 1, "duplicate label a"),
            ("m{a=\"\\t\"} 1", 1, "invalid escape sequence '\\t'"),
            ("m{a=\"x\\", 1, "unterminated label value"),
            ("# TYPE", 1, "TYPE line without a metric name"),
            ("# TYPE m", 1, "TYPE line for m without a type"),
            ("# TYPE m countr", 1, "unknown metric type \"countr\" for m"),
            (
                "# TYPE 0m gauge",
                1,
                "invalid metric name \"0m\" in TYPE line",
            ),
            ("# TYPE m gauge extra", 1, "unexpected \"extra\""),
            (
                "# TYPE m gauge\nm 1\n# TYPE m counter",
                3,
                "second TYPE line for m",
            ),
        ];
        for &(text, line, message) in cases {
            let e = err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.starts_with(message), "{text:?}: {e}");
        }
    }

    #[test]
    fn line_numbers_count_crlf_and_blank_lines() {
        assert_eq!(err("a 1\r\n\r\n# c\r\nb x\r\n").line, 4);
    }

    #[test]
    fn names_are_distinct_and_sorted() {
        let scrape = Scrape::parse("z 1\na{x=\"1\"} 1\nm 1\na{x=\"2\"} 1").unwrap();
        assert_eq!(scrape.names(), ["a", "m", "z"]);
    }

    #[test]
    fn value_sums_every_series() {
        let text = "up{node=\"a\"} 1\nup{node=\"b\"} 0\nup{node=\"c\"} 1\nreqs 2.5\n";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(scrape.value("up"), Some(2.0));
        assert_eq!(scrape.value("reqs"), Some(2.5));
        assert_eq!(scrape.value("missing"), None);
        assert_eq!(Scrape::parse("z 0").unwrap().value("z"), Some(0.0));
    }

    #[test]
    fn value_with_matches_label_subsets() {
        let text = "rpc{node=\"a\",code=\"ok\"} 5\n\
                    rpc{node=\"a\",code=\"err\"} 1\n\
                    rpc{node=\"b\",code=\"ok\"} 7\n\
                    rpc{node=\"b\"} 100\n";
        let scrape = Scrape::parse(text).unwrap();
        assert_eq!(
            scrape.value_with("rpc", &labels(&[("node", "a")])),
            Some(6.0)
        );
        assert_eq!(
            scrape.value_with("rpc", &labels(&[("code", "ok")])),
            Some(12.0)
        );
        assert_eq!(
            scrape.value_with("rpc", &labels(&[("node", "b"), ("code", "ok")])),
            Some(7.0)
        );
        assert_eq!(scrape.value_with("rpc", &BTreeMap::new()), Some(113.0));
        assert_eq!(scrape.value_with("rpc", &labels(&[("node", "c")])), None);
        assert_eq!(scrape.value_with("rpc", &labels(&[("zone", "")])), None);
        assert_eq!(scrape.value_with("nope", &BTreeMap::new()), None);
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn quantile_interpolates_within_buckets() {
        let b = [(0.1, 10.0), (0.5, 20.0), (1.0, 40.0), (INF, 40.0)];
        // rank 20 hits the 0.5 bucket exactly: 0.1 + 0.4 * (10 / 10).
        assert_eq!(histogram_quantile(0.5, &b), 0.5);
        // rank 30: 0.5 + 0.5 * ((30 - 20) / (40 - 20)).
        assert_eq!(histogram_quantile(0.75, &b), 0.75);
        // rank 4 in the lowest bucket interpolates from 0: 0.1 * 4 / 10.
        assert!((histogram_quantile(0.1, &b) - 0.04).abs() < 1e-15);
        // rank 15: 0.1 + 0.4 * (5 / 10).
        assert!((histogram_quantile(0.375, &b) - 0.3).abs() < 1e-15);
        assert_eq!(histogram_quantile(0.0, &b), 0.0);
        assert_eq!(histogram_quantile(1.0, &b), 1.0);
    }

    #[test]
    fn quantile_in_inf_bucket_is_second_highest_bound() {
        let b = [(0.1, 10.0), (0.5, 20.0), (INF, 40.0)];
        // rank 36 is past every finite bucket.
        assert_eq!(histogram_quantile(0.9, &b), 0.5);
        assert_eq!(histogram_quantile(1.0, &b), 0.5);
    }

    #[test]
    fn quantile_special_q() {
        let b = [(1.0, 1.0), (INF, 1.0)];
        assert_eq!(histogram_quantile(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(histogram_quantile(1.1, &b), f64::INFINITY);
        assert!(histogram_quantile(f64::NAN, &b).is_nan());
        // q is checked before the buckets, as in Prometheus.
        assert_eq!(histogram_quantile(2.0, &[]), f64::INFINITY);
    }

    #[test]
    fn quantile_nan_cases() {
        // No observations.
        assert!(histogram_quantile(0.5, &[(0.1, 0.0), (1.0, 0.0), (INF, 0.0)]).is_nan());
        // Highest bucket is not +Inf.
        assert!(histogram_quantile(0.5, &[(0.1, 1.0), (1.0, 2.0)]).is_nan());
        // Fewer than two buckets, also after merging duplicates.
        assert!(histogram_quantile(0.5, &[(INF, 5.0)]).is_nan());
        assert!(histogram_quantile(0.5, &[(INF, 2.0), (INF, 3.0)]).is_nan());
        assert!(histogram_quantile(0.5, &[]).is_nan());
        // Rank 0 in an empty lowest bucket is 0/0, kept as in PromQL.
        assert!(histogram_quantile(0.0, &[(1.0, 0.0), (2.0, 4.0), (INF, 4.0)]).is_nan());
    }

    #[test]
    fn quantile_sorts_and_merges_duplicate_bounds() {
        let b = [(INF, 40.0), (1.0, 40.0), (0.1, 10.0), (0.5, 20.0)];
        assert_eq!(histogram_quantile(0.75, &b), 0.75);
        // Two series at 0.5 sum to 20: rank 15 gives 0.5 * 15 / 20.
        let b = [(0.5, 10.0), (1.0, 30.0), (0.5, 10.0), (INF, 30.0)];
        assert_eq!(histogram_quantile(0.5, &b), 0.375);
    }

    #[test]
    fn quantile_forces_monotonic_counts() {
        // The 0.5 bucket dips to 5 and is lifted to 10.
        let b = [(0.1, 10.0), (0.5, 5.0), (1.0, 20.0), (INF, 20.0)];
        // rank 10 is reached by the first bucket: 0.1 * 10 / 10.
        assert_eq!(histogram_quantile(0.5, &b), 0.1);
        // rank 15: 0.5 + 0.5 * (5 / 10).
        assert_eq!(histogram_quantile(0.75, &b), 0.75);
    }

    #[test]
    fn quantile_ignores_float_noise_between_buckets() {
        // 0.1 + 0.2 is one ulp above 0.3; without correction rank 0.3000...04
        // would skip the first bucket and yield 2.
        let noisy = 0.1 + 0.2;
        let b = [(1.0, 0.3), (2.0, noisy), (INF, noisy)];
        assert_eq!(histogram_quantile(1.0, &b), 1.0);
    }

    #[test]
    fn quantile_with_non_positive_bounds() {
        let b = [(-1.0, 5.0), (1.0, 10.0), (INF, 10.0)];
        // rank 2 in a lowest bucket bounded at -1 returns the bound.
        assert_eq!(histogram_quantile(0.2, &b), -1.0);
        // rank 6: -1 + 2 * (1 / 5).
        assert!((histogram_quantile(0.6, &b) + 0.6).abs() < 1e-15);
        assert_eq!(histogram_quantile(0.1, &[(0.0, 3.0), (INF, 3.0)]), 0.0);
    }

    #[test]
    fn scrape_quantile_sums_buckets_by_le() {
        let text = "# TYPE lat histogram\n\
                    lat_bucket{node=\"a\",le=\"0.1\"} 4\n\
                    lat_bucket{node=\"a\",le=\"0.5\"} 8\n\
                    lat_bucket{node=\"a\",le=\"1\"} 16\n\
                    lat_bucket{node=\"a\",le=\"+Inf\"} 16\n\
                    lat_bucket{node=\"b\",le=\"0.1\"} 6\n\
                    lat_bucket{node=\"b\",le=\"0.5\"} 12\n\
                    lat_bucket{node=\"b\",le=\"1.0\"} 24\n\
                    lat_bucket{node=\"b\",le=\"+Inf\"} 24\n\
                    lat_bucket{node=\"b\"} 1000\n\
                    lat_bucket{node=\"b\",le=\"bogus\"} 1000\n\
                    lat_sum 12\n\
                    lat_count 40\n";
        let scrape = Scrape::parse(text).unwrap();
        // Summed: 0.1:10, 0.5:20, 1:40, +Inf:40 ("1" and "1.0" merge).
        assert_eq!(scrape.quantile("lat", 0.5), Some(0.5));
        assert_eq!(scrape.quantile("lat", 0.75), Some(0.75));
        assert_eq!(scrape.quantile("missing", 0.5), None);
        assert_eq!(scrape.quantile("lat_sum", 0.5), None);
    }

    #[test]
    fn scrape_quantile_is_nan_for_unusable_buckets() {
        let empty = Scrape::parse("h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0").unwrap();
        assert!(empty.quantile("h", 0.5).unwrap().is_nan());
        let no_inf = Scrape::parse("h_bucket{le=\"1\"} 3\nh_bucket{le=\"2\"} 5").unwrap();
        assert!(no_inf.quantile("h", 0.5).unwrap().is_nan());
        let no_le = Scrape::parse("h_bucket 3").unwrap();
        assert!(no_le.quantile("h", 0.5).unwrap().is_nan());
    }

    #[test]
    fn counter_increase_handles_resets() {
        assert_eq!(counter_increase(100.0, 130.0), 30.0);
        assert_eq!(counter_increase(5.0, 5.0), 0.0);
        // Restarted process: 130 before, 12 now, so 12 happened since.
        assert_eq!(counter_increase(130.0, 12.0), 12.0);
        assert_eq!(counter_increase(130.0, 0.0), 0.0);
        // Per-second rate over a 15 s scrape interval.
        assert_eq!(counter_increase(100.0, 130.0) / 15.0, 2.0);
    }
}
