//! What the two HTTP clients (a node's admin API, a Prometheus server) share: why a call failed, read
//! once from reqwest's error chain, and bounded snippets of answers for messages.

use std::time::Duration;

use crate::output::human_duration;

/// Why an HTTP call failed, without who was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The address refused the connection: nothing listens there.
    Refused,
    /// Nothing answered for another reason (no route, DNS), or the connection broke mid-call.
    Unreachable(String),
    /// No answer within the timeout.
    Timeout(Duration),
    /// The server answered with an error status.
    Status { code: u16, message: String },
    /// Prometheus rejected or could not run a query: its `errorType` and `error`.
    Api { error_type: String, message: String },
    /// The server answered 2xx with a body this tool cannot read.
    BadAnswer(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Refused => write!(f, "connection refused"),
            Cause::Unreachable(why) => write!(f, "{why}"),
            Cause::Timeout(d) => write!(f, "no answer within {}", human_duration(*d)),
            Cause::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            Cause::Api {
                error_type,
                message,
            } => write!(f, "{error_type}: {message}"),
            Cause::BadAnswer(why) => write!(f, "unexpected answer: {why}"),
        }
    }
}

impl Cause {
    /// Nothing answered: refused, unreachable or timed out.
    pub fn no_answer(&self) -> bool {
        matches!(
            self,
            Cause::Refused | Cause::Unreachable(_) | Cause::Timeout(_)
        )
    }

    /// From a reqwest error: the most specific error in its chain ("connection refused", not "error
    /// sending request"); `timeout` is the limit that ran out, if one did.
    pub fn of(e: &reqwest::Error, timeout: Duration) -> Cause {
        if e.is_timeout() {
            return Cause::Timeout(timeout);
        }
        let io = crate::error::chain(e).find_map(|s| s.downcast_ref::<std::io::Error>());
        match io.map(std::io::Error::kind) {
            Some(std::io::ErrorKind::TimedOut) => Cause::Timeout(timeout),
            Some(std::io::ErrorKind::ConnectionRefused) => Cause::Refused,
            _ => Cause::Unreachable(crate::error::root_cause(e)),
        }
    }
}

/// At most 200 characters of an answer's body for a message; `empty` when there is nothing to show.
pub fn snippet(text: &str, empty: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return empty.to_string();
    }
    let mut s: String = t.chars().take(200).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s
}
