//! What earlier runs of a cluster left undone, read back from the journal: nodes a run stopped and did
//! not start, drains it did not lift, a pause it did not resume. A run that ended `done` meant what it
//! left; any other run (killed, interrupted, stopped safely, failed) did not, and the next run that
//! changes the cluster finishes it first (docs/SAFETY.md, "Recovery").
//!
//! The journal is replayed in order, whichever run wrote each record, so a later run's `node::start`
//! clears an earlier run's stop. A call whose `op_begin` has no matching result (the process died inside
//! it) counts as possibly done: the caller checks the cluster before acting on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// One earlier run of this cluster that left something undone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unfinished {
    pub run_id: String,
    /// `user@host`, as the journal's records name them.
    pub user: String,
    pub host: String,
    pub pid: Option<u32>,
    /// The script and its arguments, as typed (`<stock>/rolling_upgrade.rhai 0.11.0`).
    pub command: String,
    /// How it ended: `None` when the journal has no end for it (killed, power lost, or a second signal's
    /// exit at once); else the `run_end` result (`interrupted`, `stopped`, `script error`, `usage`).
    pub ended: Option<String>,
    /// Nodes it stopped (or was stopping when it died) and no run started since, each with the version
    /// change it had begun on the node and not finished: (`node::install` or `node::activate`, version).
    pub stopped: BTreeMap<String, Option<(String, String)>>,
    /// Nodes it drained (or was draining) and no run undrained, stopped or restarted since.
    pub drained: BTreeSet<String>,
    /// It paused the cluster (or was pausing it) and no run resumed it since.
    pub paused: bool,
    /// Nodes it put a new version on (an install or activation that finished): node -> version.
    pub changed: BTreeMap<String, String>,
}

impl Unfinished {
    /// Nothing left to finish.
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty() && self.drained.is_empty() && !self.paused
    }

    /// `alice@ops1 pid 4242`, or without the pid when the journal lacks it.
    pub fn holder(&self) -> String {
        match self.pid {
            Some(pid) => format!("{}@{} pid {pid}", self.user, self.host),
            None => format!("{}@{}", self.user, self.host),
        }
    }

    /// In a few words: how the run ended.
    pub fn how_it_ended(&self) -> &str {
        match self.ended.as_deref() {
            None => "ended without a word (killed, or exited at once on a second signal)",
            Some("interrupted") => "was interrupted",
            Some("stopped") => "stopped safely",
            Some("usage") => "stopped on a usage error",
            Some(_) => "failed",
        }
    }
}

/// Who owns a piece of state, and whether the call that made it is known to have finished.
#[derive(Debug, Clone)]
struct Owner {
    run: String,
}

#[derive(Default)]
struct Ledger {
    runs: BTreeMap<String, Unfinished>,
    /// Runs in the order they started.
    order: Vec<String>,
    finished: BTreeSet<String>,
    stopped: BTreeMap<String, Owner>,
    drained: BTreeMap<String, Owner>,
    paused: Option<Owner>,
    /// node -> (run, op, version): a version change begun and not finished.
    begun: BTreeMap<String, (String, String, String)>,
    /// node -> (run, version): the last version change that finished.
    changed: BTreeMap<String, (String, String)>,
    /// (run, op, node) of calls begun and not yet answered.
    open: Vec<(String, String, Option<String>, Value)>,
}

/// The mutating calls that change what the ledger keeps, by their journal names.
fn nodes_of(op: &str, node: Option<&str>, args: &Value) -> Vec<String> {
    if op.ends_with("_all") {
        return args
            .get("ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
    }
    node.map(|n| vec![n.to_string()]).unwrap_or_default()
}

impl Ledger {
    fn run(&mut self, rec: &Value) -> Option<String> {
        let id = rec.get("run_id").and_then(Value::as_str)?.to_string();
        if !self.runs.contains_key(&id) {
            let text = |k: &str| {
                rec.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            self.order.push(id.clone());
            self.runs.insert(
                id.clone(),
                Unfinished {
                    run_id: id.clone(),
                    user: text("user"),
                    host: text("host"),
                    pid: rec
                        .get("pid")
                        .and_then(Value::as_u64)
                        .and_then(|p| u32::try_from(p).ok()),
                    command: text("script"),
                    ..Unfinished::default()
                },
            );
        }
        Some(id)
    }

    /// A call's effect once it is known (or, for a call the process died inside, assumed) to have happened.
    fn apply(&mut self, run: &str, op: &str, node: Option<&str>, args: &Value, finished: bool) {
        let owner = || Owner { run: run.into() };
        let version = args
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        for n in nodes_of(op, node, args) {
            match op {
                "node::stop" => {
                    self.stopped.insert(n.clone(), owner());
                    self.drained.remove(&n);
                }
                // A restart that finished leaves the node up and undrained; one cut short may have left
                // it down.
                "node::restart" => {
                    self.drained.remove(&n);
                    if finished {
                        self.stopped.remove(&n);
                    } else {
                        self.stopped.insert(n.clone(), owner());
                    }
                }
                "node::start" if finished => {
                    self.stopped.remove(&n);
                    self.begun.remove(&n);
                }
                "node::install" | "node::install_all" | "node::activate" => {
                    let op = if op == "node::activate" {
                        "node::activate"
                    } else {
                        "node::install"
                    };
                    if let Some(v) = &version {
                        if finished {
                            self.begun.remove(&n);
                            self.changed.insert(n.clone(), (run.into(), v.clone()));
                        } else {
                            self.begun
                                .insert(n.clone(), (run.into(), op.into(), v.clone()));
                        }
                    }
                }
                "node::drain" => {
                    self.drained.insert(n.clone(), owner());
                }
                "node::undrain" if finished => {
                    self.drained.remove(&n);
                }
                _ => {}
            }
        }
        match op {
            "cluster::pause" => self.paused = Some(owner()),
            "cluster::resume" if finished => self.paused = None,
            _ => {}
        }
    }

    fn record(&mut self, rec: &Value) {
        let Some(run) = self.run(rec) else { return };
        let op = rec.get("op").and_then(Value::as_str);
        let node = rec.get("node").and_then(Value::as_str);
        let args = rec.get("args").cloned().unwrap_or(Value::Null);
        match (rec.get("event").and_then(Value::as_str), op) {
            (Some("run_start"), _) => {
                let args: Vec<&str> = rec
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(r) = self.runs.get_mut(&run) {
                    for a in args {
                        r.command.push(' ');
                        r.command.push_str(a);
                    }
                }
            }
            (Some("run_end"), _) => {
                let result = rec
                    .get("result")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                if result == "done" {
                    self.finished.insert(run.clone());
                }
                if let Some(r) = self.runs.get_mut(&run) {
                    r.ended = Some(result);
                }
                self.open.retain(|(r, ..)| *r != run);
            }
            (Some("recovered"), _) => {
                for id in rec
                    .get("runs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    self.finished.insert(id.to_string());
                }
            }
            (Some("op_begin"), Some(op)) => {
                let node = rec.get("node").and_then(Value::as_str).map(str::to_string);
                self.open.push((run, op.to_string(), node, args));
            }
            (None, Some(op)) => {
                let at = self
                    .open
                    .iter()
                    .rposition(|(r, o, n, _)| *r == run && o == op && n.as_deref() == node);
                if let Some(i) = at {
                    self.open.remove(i);
                }
                if rec.get("result").and_then(Value::as_str) == Some("ok") {
                    self.apply(&run, op, node, &args, true);
                }
            }
            _ => {}
        }
    }

    /// Calls still open when the journal ends were cut short by the process's death: each may have
    /// happened.
    fn close(mut self, current: &str) -> Vec<Unfinished> {
        for (run, op, node, args) in std::mem::take(&mut self.open) {
            let ended = self.runs.get(&run).is_some_and(|r| r.ended.is_some());
            if !ended {
                self.apply(&run, &op, node.as_deref(), &args, false);
            }
        }
        let live = |run: &str| run != current && !self.finished.contains(run);
        for (node, m) in &self.stopped {
            if live(&m.run) {
                let begun = self
                    .begun
                    .get(node)
                    .filter(|(r, ..)| *r == m.run)
                    .map(|(_, op, v)| (op.clone(), v.clone()));
                if let Some(r) = self.runs.get_mut(&m.run) {
                    r.stopped.insert(node.clone(), begun);
                }
            }
        }
        for (node, m) in &self.drained {
            if live(&m.run) {
                if let Some(r) = self.runs.get_mut(&m.run) {
                    r.drained.insert(node.clone());
                }
            }
        }
        if let Some(m) = &self.paused {
            if live(&m.run) {
                if let Some(r) = self.runs.get_mut(&m.run) {
                    r.paused = true;
                }
            }
        }
        for (node, (run, v)) in &self.changed {
            if live(run) {
                if let Some(r) = self.runs.get_mut(run) {
                    r.changed.insert(node.clone(), v.clone());
                }
            }
        }
        let mut runs = self.runs;
        self.order
            .iter()
            .filter_map(|id| runs.remove(id))
            .filter(|r| !r.is_empty() && live(&r.run_id))
            .collect()
    }
}

/// The runs of `cluster` (its journal name) that left something undone, oldest first, from the records
/// in `lines`; `current` is the run asking, whose own records do not count.
pub fn from_lines<I: IntoIterator<Item = String>>(
    lines: I,
    cluster: &str,
    current: &str,
) -> Vec<Unfinished> {
    let mut ledger = Ledger::default();
    for line in lines {
        // A line torn by a process killed mid-write is skipped, as everywhere the journal is read.
        let Ok(rec) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if rec.get("cluster").and_then(Value::as_str) == Some(cluster) {
            ledger.record(&rec);
        }
    }
    ledger.close(current)
}

/// As `from_lines`, reading the journal at `path` line by line. No journal yet means nothing left.
pub fn read(path: &Path, cluster: &str, current: &str) -> Result<Vec<Unfinished>, String> {
    use crate::files::{self, Line, ReadError};
    let file = match files::open_regular(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(ReadError::NotFound) => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the journal `{}`: {e}", path.display())),
    };
    // Line by line and each line bounded: a journal kept for months is never held whole.
    let lines = files::lines(std::io::BufReader::new(file), files::MAX_RECORD)
        .map_while(Result::ok)
        .filter_map(|l| match l {
            Line::Text(t) => String::from_utf8(t).ok(),
            Line::TooLong => None,
        });
    Ok(from_lines(lines, cluster, current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &str = "/c.toml";

    fn rec(run: &str, v: Value) -> String {
        let mut v = v;
        v["run_id"] = run.into();
        v["cluster"] = C.into();
        v["user"] = "op".into();
        v["host"] = "h".into();
        v["pid"] = 42.into();
        v["script"] = "<stock>/rolling_upgrade.rhai".into();
        v.to_string()
    }

    fn start(run: &str) -> String {
        rec(run, json!({"event": "run_start", "args": ["0.11.0"]}))
    }

    fn end(run: &str, result: &str) -> String {
        rec(run, json!({"event": "run_end", "result": result}))
    }

    fn begin(run: &str, op: &str, node: Option<&str>, args: Value) -> String {
        rec(
            run,
            json!({"event": "op_begin", "op": op, "node": node, "args": args}),
        )
    }

    fn op(run: &str, op: &str, node: Option<&str>, args: Value, ok: bool) -> String {
        rec(
            run,
            json!({"op": op, "node": node, "args": args, "result": if ok { "ok" } else { "error" }}),
        )
    }

    /// Begin and end of one call that worked.
    fn call(run: &str, o: &str, node: &str, args: Value) -> Vec<String> {
        vec![
            begin(run, o, Some(node), args.clone()),
            op(run, o, Some(node), args, true),
        ]
    }

    #[test]
    fn a_run_killed_between_stop_and_start_left_its_node_stopped_and_the_version_it_was_activating()
    {
        let mut lines = vec![start("r1")];
        lines.extend(call("r1", "node::drain", "node2", json!({})));
        lines.extend(call("r1", "node::stop", "node2", json!({})));
        lines.push(begin(
            "r1",
            "node::activate",
            Some("node2"),
            json!({"version": "0.11.0"}),
        ));
        let left = from_lines(lines.clone(), C, "r2");
        assert_eq!(left.len(), 1);
        let r = &left[0];
        assert_eq!(r.run_id, "r1");
        assert_eq!(r.holder(), "op@h pid 42");
        assert_eq!(r.command, "<stock>/rolling_upgrade.rhai 0.11.0");
        assert_eq!(r.ended, None);
        assert_eq!(
            r.stopped.get("node2"),
            Some(&Some(("node::activate".into(), "0.11.0".into())))
        );
        // The stop lifted the drain: a started node takes traffic again.
        assert!(r.drained.is_empty());
        assert!(!r.paused);

        // Once the activation finished, the start has nothing to redo, and the node counts as changed.
        lines.push(op(
            "r1",
            "node::activate",
            Some("node2"),
            json!({"version": "0.11.0"}),
            true,
        ));
        let left = from_lines(lines.clone(), C, "r2");
        assert_eq!(left[0].stopped.get("node2"), Some(&None));
        assert_eq!(
            left[0].changed.get("node2").map(String::as_str),
            Some("0.11.0")
        );

        // A later run that started it leaves nothing to finish.
        lines.push(start("r2"));
        lines.extend(call("r2", "node::start", "node2", json!({})));
        assert_eq!(from_lines(lines, C, "r3"), vec![]);
    }

    #[test]
    fn a_run_that_ended_done_meant_what_it_left() {
        let mut lines = vec![start("r1")];
        lines.extend(call("r1", "node::stop", "node3", json!({})));
        lines.extend(call("r1", "cluster::pause", "x", json!({})));
        assert_eq!(from_lines(lines.clone(), C, "r9").len(), 1);
        lines.push(end("r1", "done"));
        assert_eq!(from_lines(lines, C, "r9"), vec![]);
    }

    #[test]
    fn an_interrupted_rollback_left_its_pause_and_a_drain_cut_short() {
        let mut lines = vec![start("r1")];
        lines.push(begin("r1", "cluster::pause", None, json!({})));
        lines.push(op("r1", "cluster::pause", None, json!({}), true));
        lines.push(begin("r1", "node::drain", Some("node1"), json!({})));
        lines.push(end("r1", "interrupted"));
        let left = from_lines(lines.clone(), C, "r2");
        assert_eq!(left.len(), 1);
        assert!(left[0].paused);
        assert_eq!(left[0].ended.as_deref(), Some("interrupted"));
        assert_eq!(left[0].how_it_ended(), "was interrupted");
        // A call still open at a run's journaled end was answered: the run reported it (an undrain
        // after an interrupt is its own record).
        assert!(left[0].drained.is_empty());
        lines.push(start("r2"));
        lines.push(op("r2", "cluster::resume", None, json!({}), true));
        assert_eq!(from_lines(lines, C, "r3"), vec![]);
    }

    #[test]
    fn calls_that_failed_changed_nothing_and_other_clusters_do_not_count() {
        let mut lines = vec![start("r1")];
        lines.push(begin("r1", "node::stop", Some("node2"), json!({})));
        lines.push(op("r1", "node::stop", Some("node2"), json!({}), false));
        let mut other: Value =
            serde_json::from_str(&op("r1", "node::stop", Some("node3"), json!({}), true)).unwrap();
        other["cluster"] = "/elsewhere.toml".into();
        lines.push(other.to_string());
        lines.push("{\"torn".into());
        assert_eq!(from_lines(lines, C, "r2"), vec![]);
    }

    #[test]
    fn a_batch_install_cut_short_is_begun_on_every_node_of_the_batch() {
        let mut lines = vec![start("r1")];
        for n in ["node2", "node3"] {
            lines.extend(call("r1", "node::stop", n, json!({})));
        }
        lines.push(begin(
            "r1",
            "node::install_all",
            None,
            json!({"ids": ["node2", "node3"], "version": "0.11.0"}),
        ));
        let left = from_lines(lines, C, "r2");
        for n in ["node2", "node3"] {
            assert_eq!(
                left[0].stopped.get(n),
                Some(&Some(("node::install".into(), "0.11.0".into()))),
                "{n}"
            );
        }
    }

    #[test]
    fn a_recovered_run_is_finished_and_the_asking_run_never_counts() {
        let mut lines = vec![start("r1")];
        lines.extend(call("r1", "node::drain", "node1", json!({})));
        assert_eq!(from_lines(lines.clone(), C, "r1"), vec![]);
        assert_eq!(from_lines(lines.clone(), C, "r2")[0].drained.len(), 1);
        lines.push(rec("r2", json!({"event": "recovered", "runs": ["r1"]})));
        assert_eq!(from_lines(lines, C, "r3"), vec![]);
    }
}
