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

/// The calls a client has on the wire, by node and operation: what a call that is slow to answer is
/// waiting for, for the operator's live line.
#[derive(Clone, Default)]
pub struct InFlight(std::sync::Arc<std::sync::Mutex<Vec<(u64, String, String)>>>);

/// One call on the wire; it leaves the set when dropped, however the call ended.
pub struct OnTheWire {
    set: InFlight,
    key: u64,
}

impl InFlight {
    /// Notes a call of `op` to `node` until the returned value is dropped.
    pub fn start(&self, node: &str, op: &str) -> OnTheWire {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push((
            key,
            node.to_string(),
            op.to_string(),
        ));
        OnTheWire {
            set: self.clone(),
            key,
        }
    }

    /// "health from node1, node2; install on node3", or `None` when nothing is on the wire.
    pub fn describe(&self) -> Option<String> {
        let calls = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut by_op: Vec<(String, Vec<String>)> = Vec::new();
        for (_, node, op) in calls {
            match by_op.iter_mut().find(|(o, _)| *o == op) {
                Some((_, nodes)) if nodes.contains(&node) => {}
                Some((_, nodes)) => nodes.push(node),
                None => by_op.push((op, vec![node])),
            }
        }
        (!by_op.is_empty()).then(|| {
            by_op
                .into_iter()
                .map(|(op, mut nodes)| {
                    nodes.sort();
                    format!("{op} on {}", nodes.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

impl Drop for OnTheWire {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(k, _, _)| *k != self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_on_the_wire_are_grouped_by_operation() {
        let set = InFlight::default();
        assert_eq!(set.describe(), None);
        let a = set.start("node2", "health");
        let _b = set.start("node1", "health");
        let _c = set.start("node3", "install");
        assert_eq!(
            set.describe().as_deref(),
            Some("health on node1, node2; install on node3")
        );
        drop(a);
        assert_eq!(
            set.describe().as_deref(),
            Some("health on node1; install on node3")
        );
    }
}
