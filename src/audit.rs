//! `neumann-script audit`: the journal read back as runs (docs/AUDIT.md).
//!
//! The journal is one JSON line per record, appended by every run that journals: mutating calls (`op`)
//! and the run's course (`event`), each carrying the run's context (`run_id`, who, the script, the
//! cluster). Here the lines are grouped into runs by `run_id`; lines from versions that had no run ids are
//! grouped by the process that wrote them (host, pid, script and cluster). A line that is not a JSON
//! object is skipped, and one warning says where.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Error;
use crate::journal;
use crate::journal::Step;
use crate::output::{errln, human_duration, outln, Format};

/// What `neumann-script audit` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOptions {
    /// `--journal FILE`; the default journal otherwise.
    pub journal: Option<PathBuf>,
    pub format: Format,
    /// `--all`: list read-only sessions too.
    pub all: bool,
    /// `show RUN|last`; `None` lists the runs.
    pub show: Option<String>,
    /// `--forced`: list only runs that forced a call past an interlock.
    pub forced: bool,
    /// `--script NAME`: list only runs of that script (a stock script's name, or a path as typed).
    pub script: Option<String>,
    /// `--cluster FILE`: list only runs against that inventory (compared by absolute path).
    pub cluster: Option<PathBuf>,
}

impl AuditOptions {
    /// Whether `run` passes the list's filters (`--forced`, `--script`, `--cluster`).
    fn keeps(&self, run: &Run) -> bool {
        let script = self.script.as_deref().is_none_or(|want| {
            let want = want.strip_prefix("<stock>/").unwrap_or(want);
            run.script_name() == want
                || Path::new(run.script_name()).file_name() == Some(std::ffi::OsStr::new(want))
        });
        let cluster = self
            .cluster
            .as_deref()
            .is_none_or(|c| journal::cluster_name(c) == run.cluster);
        (!self.forced || run.forced > 0) && script && cluster
    }

    fn filtered(&self) -> bool {
        self.forced || self.script.is_some() || self.cluster.is_some()
    }
}

/// The result a run from before run ids is listed with: those versions recorded no end.
pub const BEFORE_RUN_IDS: &str = "(before run ids)";

/// The context fields every record carries; left out when a record is shown inside its run.
const CONTEXT: &[&str] = &[
    "run_id",
    "user",
    "host",
    "pid",
    "script",
    "script_sha256",
    "cluster",
    "ts",
];

/// One run, as the journal tells it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    /// Written by a version without run ids: grouped by process, no events.
    pub legacy: bool,
    /// Unix seconds of its first record.
    pub started: f64,
    pub user: String,
    pub host: String,
    pub pid: u64,
    pub cluster: String,
    pub script: String,
    pub args: Vec<String>,
    /// `done`, `stopped`, `script error`, `usage`, `interrupted` (from `run_end`); `unfinished` when no
    /// end was recorded (still running, or killed); `BEFORE_RUN_IDS` for old records.
    pub result: String,
    pub exit_code: Option<i64>,
    pub message: Option<String>,
    pub duration_ms: u64,
    /// How many mutating calls it made (the `interrupted` marker is not one).
    pub changes: usize,
    /// How many of them went past an interlock that would have refused them (`#{force: ...}`).
    pub forced: usize,
    /// A rehearsal on a twin: it changed nothing, and its journal holds only its start and end.
    pub rehearsal: bool,
    /// A rehearsal whose plan the operator declined to run live: how (`no`, or the signal).
    pub declined: Option<String>,
    /// The run this one continues (its `run_start`): the same script, arguments and cluster, which
    /// had not ended done.
    pub continues: Option<String>,
    /// The rehearsal this live run was confirmed after.
    pub after_rehearsal: Option<String>,
    /// Runs whose leftovers this run finished (`recovered`).
    pub recovered: Vec<String>,
    /// Runs that name this one: they continue it, finished what it left, or were confirmed after it
    /// (for a rehearsal). Filled once the whole journal is read.
    pub continued_by: Vec<String>,
    /// From its `run_start`: the `--set` options, the command line, the tool's version and commit.
    pub options: Value,
    pub command_line: Vec<String>,
    pub tool_version: Option<String>,
    pub commit: Option<String>,
    /// Its records in journal order, when they were kept (`read`'s `keep`).
    pub records: Vec<Value>,
    /// Unix seconds of its last record.
    last: f64,
}

impl Run {
    /// The mutating calls among its kept records.
    pub fn change_records(&self) -> impl Iterator<Item = &Value> {
        self.records.iter().filter(|r| is_change(r))
    }

    /// A snippet (`-e`), the REPL or another command that is not a script: `<-e>`, `<repl>`, ...
    pub fn is_session(&self) -> bool {
        self.script.starts_with('<') && !self.script.starts_with("<stock>/")
    }

    /// Listed without `--all`: a script run, or a session that changed something.
    pub fn listed(&self) -> bool {
        !self.is_session() || self.changes > 0
    }

    /// The script as an operator names it: a stock script by its file name.
    pub fn script_name(&self) -> &str {
        self.script.strip_prefix("<stock>/").unwrap_or(&self.script)
    }

    fn who(&self) -> String {
        if self.host.is_empty() {
            self.user.clone()
        } else {
            format!("{}@{}", self.user, self.host)
        }
    }

    /// The result as the list shows it: a rehearsal and a declined plan are told from runs that changed
    /// something, and a run that forced an interlock is flagged.
    pub fn result_text(&self) -> String {
        let mut r = match (self.rehearsal, &self.declined) {
            (true, Some(_)) => "rehearsal, declined".to_string(),
            (true, None) => format!("rehearsal: {}", self.result),
            (false, _) => self.result.clone(),
        };
        if self.forced > 0 {
            r.push_str(", FORCED");
        }
        r
    }

    fn summary_json(&self) -> Value {
        json!({
            "run_id": self.id,
            "started": journal::rfc3339(self.started),
            "user": self.user,
            "host": self.host,
            "pid": self.pid,
            "cluster": self.cluster,
            "script": self.script_name(),
            "args": self.args,
            "result": self.result,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration_ms": self.duration_ms,
            "changes": self.changes,
            "forced": self.forced,
            "rehearsal": self.rehearsal,
            "declined": self.declined,
            "continues": self.continues,
            "after_rehearsal": self.after_rehearsal,
            "recovered": self.recovered,
            "continued_by": self.continued_by,
            "options": self.options,
            "command_line": self.command_line,
            "tool_version": self.tool_version,
            "commit": self.commit,
            "before_run_ids": self.legacy,
        })
    }
}

/// Lines that were not journal records: how many, and the first one's number.
#[derive(Debug, Default, PartialEq)]
pub struct Skipped {
    pub count: usize,
    pub first_line: usize,
}

fn is_change(rec: &Value) -> bool {
    // An `op_begin` event names its call too; the call's result is the change.
    rec["event"].is_null() && rec["op"].as_str().is_some_and(|op| op != "interrupted")
}

/// Reads the journal at `path` into runs, oldest first, keeping the records of the runs whose id `keep`
/// accepts (a list needs none: a long-kept journal then costs a summary per run). A missing file is no runs.
pub fn read(path: &Path, keep: impl Fn(&str) -> bool) -> Result<(Vec<Run>, Skipped), Error> {
    let cannot = |e: &dyn std::fmt::Display| {
        Error::Usage(format!("cannot read the journal `{}`: {e}", path.display()))
    };
    // A regular file only, and opened without blocking: a FIFO would wait for a writer, a device
    // would never end.
    let file = match crate::files::open_regular(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(crate::files::ReadError::NotFound) => return Ok((Vec::new(), Skipped::default())),
        Err(e) => return Err(cannot(&e)),
    };
    // Read as it is grouped, a bounded line at a time: a long-kept journal is never held whole, and a
    // line over the bound (no record is near it) is skipped like any line that is not a record.
    let mut failure = None;
    let lines = crate::files::lines(std::io::BufReader::new(file), crate::files::MAX_RECORD)
        .enumerate()
        .map_while(|(i, line)| match line {
            Ok(crate::files::Line::Text(l)) => {
                Some((i + 1, String::from_utf8_lossy(&l).into_owned()))
            }
            Ok(crate::files::Line::TooLong) => Some((i + 1, TOO_LONG.to_string())),
            Err(e) => {
                failure = Some(e);
                None
            }
        });
    let grouped = group(lines, keep);
    match failure {
        Some(e) => Err(cannot(&e)),
        None => Ok(grouped),
    }
}

/// Stands for a line over the bound: not JSON, so `group` counts it as skipped.
const TOO_LONG: &str = "(a line too long to be a record)";

/// Groups numbered journal lines into runs, oldest first, keeping the records of runs `keep` accepts.
pub fn group(
    lines: impl IntoIterator<Item = (usize, String)>,
    keep: impl Fn(&str) -> bool,
) -> (Vec<Run>, Skipped) {
    let mut skipped = Skipped::default();
    let mut runs: Vec<Run> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let rec = match serde_json::from_str::<Value>(&line) {
            Ok(v @ Value::Object(_)) if v.get("op").is_some() || v.get("event").is_some() => v,
            _ => {
                if skipped.count == 0 {
                    skipped.first_line = n;
                }
                skipped.count += 1;
                continue;
            }
        };
        let s = |k: &str| rec[k].as_str().unwrap_or_default().to_string();
        let pid = rec["pid"].as_u64().unwrap_or(0);
        let (key, legacy) = match rec["run_id"].as_str() {
            Some(id) if !id.is_empty() => (id.to_string(), false),
            _ => (
                format!("\0{}\0{pid}\0{}\0{}", s("host"), s("script"), s("cluster")),
                true,
            ),
        };
        let at = *index.entry(key).or_insert_with(|| {
            let ts = rec["ts"].as_f64().unwrap_or(0.0);
            let id = if legacy {
                // Stable and sortable like a run id, and marked as made up here.
                let stamp: String = journal::rfc3339(ts)
                    .chars()
                    .filter(|c| !matches!(c, '-' | ':'))
                    .collect();
                format!("old-{stamp}-{pid}")
            } else {
                s("run_id")
            };
            runs.push(Run {
                id,
                legacy,
                started: ts,
                user: s("user"),
                host: s("host"),
                pid,
                cluster: s("cluster"),
                script: s("script"),
                args: Vec::new(),
                result: if legacy {
                    BEFORE_RUN_IDS.into()
                } else {
                    "unfinished".into()
                },
                exit_code: None,
                message: None,
                duration_ms: 0,
                changes: 0,
                forced: 0,
                rehearsal: false,
                declined: None,
                continues: None,
                after_rehearsal: None,
                recovered: Vec::new(),
                continued_by: Vec::new(),
                options: Value::Null,
                command_line: Vec::new(),
                tool_version: None,
                commit: None,
                records: Vec::new(),
                last: ts,
            });
            runs.len() - 1
        });
        let run = &mut runs[at];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let words = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        match rec["event"].as_str() {
            Some("run_start") => {
                run.args = words(&rec["args"]);
                run.rehearsal = rec["rehearsal"] == json!(true);
                run.continues = text(&rec["continues"]);
                run.after_rehearsal = text(&rec["after_rehearsal"]);
                run.options = rec["options"].clone();
                run.command_line = words(&rec["command_line"]);
                run.tool_version = text(&rec["tool_version"]);
                run.commit = text(&rec["commit"]);
            }
            Some("declined") => {
                run.declined = Some(text(&rec["answer"]).unwrap_or_else(|| "no".into()));
            }
            Some("recovered") => {
                for id in words(&rec["runs"]) {
                    if !run.recovered.contains(&id) {
                        run.recovered.push(id);
                    }
                }
            }
            Some("run_end") => {
                run.result = rec["result"].as_str().unwrap_or("unknown").to_string();
                run.exit_code = rec["exit_code"].as_i64();
                run.message = rec["message"].as_str().map(str::to_string);
                run.duration_ms = rec["duration_ms"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
        if rec["op"] == "interrupted" && run.result == "unfinished" {
            // Killed at once by a second signal: no `run_end` follows.
            run.result = "interrupted".into();
            run.exit_code = rec["args"]["exit_code"].as_i64();
        }
        if let Some(ts) = rec["ts"].as_f64() {
            run.last = run.last.max(ts);
        }
        if is_change(&rec) {
            run.changes += 1;
            if rec.get("override").is_some_and(|o| !o.is_null()) {
                run.forced += 1;
            }
        }
        if keep(&run.id) {
            run.records.push(rec);
        }
    }
    for run in &mut runs {
        if run.duration_ms == 0 {
            run.duration_ms = ((run.last - run.started).max(0.0) * 1000.0) as u64;
        }
    }
    // The links the other way: each run learns which later runs name it.
    let mut named: HashMap<String, Vec<String>> = HashMap::new();
    for run in &runs {
        let names = run
            .continues
            .iter()
            .chain(&run.after_rehearsal)
            .chain(&run.recovered);
        for earlier in names {
            let by = named.entry(earlier.clone()).or_default();
            if !by.contains(&run.id) {
                by.push(run.id.clone());
            }
        }
    }
    for run in &mut runs {
        run.continued_by = named.remove(&run.id).unwrap_or_default();
    }
    (runs, skipped)
}

/// Newest first; runs that started in the same instant keep the journal's order, newest first too.
fn newest_first(runs: &mut [Run]) {
    runs.reverse();
    runs.sort_by(|a, b| b.started.total_cmp(&a.started));
}

/// Finds `want` (a run id, a unique prefix of one, or `last`: the newest listed run).
pub fn find<'a>(runs: &'a [Run], want: &str, path: &Path) -> Result<&'a Run, Error> {
    let how = "`neumann-script audit` lists the run ids (`--all` shows read-only sessions too)";
    if runs.is_empty() {
        return Err(Error::Usage(format!(
            "no run `{want}`: the journal `{}` records no runs",
            path.display()
        )));
    }
    if want == "last" {
        let mut sorted: Vec<&Run> = runs.iter().filter(|r| r.listed()).collect();
        sorted.reverse();
        sorted.sort_by(|a, b| b.started.total_cmp(&a.started));
        return sorted.first().copied().ok_or_else(|| {
            Error::Usage(format!(
                "no run to show: the journal `{}` holds only read-only sessions; {how}",
                path.display()
            ))
        });
    }
    if let Some(r) = runs.iter().find(|r| r.id == want) {
        return Ok(r);
    }
    let matches: Vec<&Run> = runs.iter().filter(|r| r.id.starts_with(want)).collect();
    match matches.as_slice() {
        [one] if !want.is_empty() => Ok(one),
        [] | [_] => Err(Error::Usage(format!(
            "no run `{want}` in the journal `{}`: {how}",
            path.display()
        ))),
        many => Err(Error::Usage(format!(
            "`{want}` names {} runs ({}): give more of the id",
            many.len(),
            many.iter()
                .take(5)
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `neumann-script audit [list]` and `audit show RUN|last`.
pub fn command(opts: &AuditOptions) -> Result<(), Error> {
    let path = match &opts.journal {
        Some(p) => p.clone(),
        None => journal::default_path().ok_or_else(|| {
            Error::Usage(
                "no journal to read: neither $XDG_STATE_HOME nor $HOME is set; pass --journal FILE"
                    .into(),
            )
        })?,
    };
    let (mut runs, skipped) = read(&path, |_| false)?;
    if skipped.count > 0 {
        errln!(
            "warning: journal `{}`: line {} is not a journal record and was skipped{}",
            path.display(),
            skipped.first_line,
            match skipped.count {
                1 => String::new(),
                n => format!(" ({} such lines in all)", n),
            }
        );
    }
    match &opts.show {
        Some(want) => {
            let id = find(&runs, want, &path)?.id.clone();
            // Again, keeping this run's records only; the file may have grown since: find it by id.
            let (runs, _) = read(&path, |r| r == id)?;
            let run = find(&runs, &id, &path)?;
            match opts.format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&show_json(run)).unwrap_or_default()
                ),
                Format::Text => {
                    for line in show_text(run) {
                        outln!("{line}");
                    }
                }
            }
        }
        None => {
            newest_first(&mut runs);
            let listed: Vec<&Run> = runs
                .iter()
                .filter(|r| (opts.all || r.listed()) && opts.keeps(r))
                .collect();
            let hidden = runs
                .iter()
                .filter(|r| !(opts.all || r.listed()) && opts.keeps(r))
                .count();
            match opts.format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&Value::Array(
                        listed.iter().map(|r| r.summary_json()).collect()
                    ))
                    .unwrap_or_default()
                ),
                Format::Text => {
                    for line in list_text(&listed) {
                        outln!("{line}");
                    }
                }
            }
            if listed.is_empty() && opts.filtered() && !runs.is_empty() {
                errln!(
                    "no run in the journal `{}` matches {}",
                    path.display(),
                    filters_text(opts)
                );
            } else if listed.is_empty() {
                errln!(
                    "no runs recorded in the journal `{}`{}",
                    path.display(),
                    if path.exists() {
                        ""
                    } else {
                        " (it does not exist yet)"
                    }
                );
            }
            if hidden > 0 && opts.format == Format::Text {
                errln!(
                    "({hidden} read-only session{} not shown; --all lists them)",
                    if hidden == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(())
}

/// The filters given, in words: `--forced --script two.rhai`.
fn filters_text(opts: &AuditOptions) -> String {
    let mut words = Vec::new();
    if opts.forced {
        words.push("--forced".to_string());
    }
    if let Some(s) = &opts.script {
        words.push(format!("--script {s}"));
    }
    if let Some(c) = &opts.cluster {
        words.push(format!("--cluster {}", c.display()));
    }
    words.join(" ")
}

fn ms(v: u64) -> String {
    human_duration(Duration::from_millis(v))
}

/// The table of runs.
pub fn list_text(runs: &[&Run]) -> Vec<String> {
    if runs.is_empty() {
        return Vec::new();
    }
    let mut rows = vec![[
        "RUN".to_string(),
        "STARTED".into(),
        "WHO".into(),
        "CLUSTER".into(),
        "SCRIPT".into(),
        "RESULT".into(),
        "DURATION".into(),
    ]];
    for r in runs {
        let mut script = r.script_name().to_string();
        for a in &r.args {
            script.push(' ');
            script.push_str(a);
        }
        rows.push([
            r.id.clone(),
            journal::rfc3339(r.started),
            r.who(),
            r.cluster.clone(),
            script,
            r.result_text(),
            ms(r.duration_ms),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// The run's steps in the order they started, each with its nesting depth; `start` and `end` are positions
/// among the run's records.
pub fn steps(run: &Run) -> Vec<Step> {
    journal::steps(
        run.records
            .iter()
            .map(|r| (r["event"].as_str().unwrap_or_default(), r)),
    )
}

/// How long a step took, as its `step_end` says.
fn step_ms(run: &Run, s: &Step) -> Option<u64> {
    s.end.and_then(|e| run.records[e]["duration_ms"].as_u64())
}

/// A record with the run's context taken out.
fn bare(rec: &Value) -> Value {
    let mut r = rec.clone();
    if let Value::Object(m) = &mut r {
        for k in CONTEXT {
            m.remove(*k);
        }
    }
    r
}

fn show_json(run: &Run) -> Value {
    let mut v = run.summary_json();
    v["script_sha256"] = run
        .records
        .first()
        .map_or(Value::Null, |r| r["script_sha256"].clone());
    v["steps"] = Value::Array(
        steps(run)
            .into_iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "depth": s.depth,
                    "time": run.records[s.start]["time"].as_str().unwrap_or_default(),
                    "result": s.result,
                    "error": s.error,
                    "duration_ms": step_ms(run, &s),
                })
            })
            .collect(),
    );
    v["changes"] = Value::Array(run.change_records().map(bare).collect());
    v["events"] = Value::Array(
        run.records
            .iter()
            .enumerate()
            .filter(|(at, r)| {
                r["op"] == "interrupted"
                    || r["event"].as_str().is_some_and(|e| {
                        let routine =
                            matches!(e, "run_start" | "run_end" | "step_start" | "step_end");
                        let answered_begin = e == "op_begin" && answered(run, *at);
                        !routine && !answered_begin
                    })
            })
            .map(|(_, r)| bare(r))
            .collect(),
    );
    v
}

/// Whether the `op_begin` at `at` has its result later in the run: then the result says it all. One
/// without is a call the process ended inside (killed), which is worth showing.
fn answered(run: &Run, at: usize) -> bool {
    let begun = &run.records[at];
    run.records[at + 1..]
        .iter()
        .any(|r| r["event"].is_null() && r["op"] == begun["op"] && r["node"] == begun["node"])
}

/// `op node k=v ...` for a mutating call.
fn describe_change(rec: &Value) -> String {
    let mut line = rec["op"].as_str().unwrap_or("?").to_string();
    let node = rec["node"].as_str();
    if let Some(n) = node {
        line.push(' ');
        line.push_str(n);
    }
    if let Value::Object(args) = &rec["args"] {
        for (k, v) in args {
            if k == "id" && v.as_str() == node {
                continue;
            }
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            line.push_str(&format!(" {k}={v}"));
        }
    }
    let took = ms(rec["duration_ms"].as_u64().unwrap_or(0));
    match rec["error"].as_str() {
        Some(e) => line.push_str(&format!(": error after {took}: {e}")),
        None => line.push_str(&format!(": ok ({took})")),
    }
    if let Some(o) = rec.get("override").filter(|o| !o.is_null()) {
        line.push_str(&format!(
            "  FORCED past `{}`",
            o["rule"].as_str().unwrap_or("?")
        ));
    }
    line
}

/// Another event of the run's course, in words: its kind and its fields.
fn describe_event(rec: &Value) -> String {
    let kind = rec["event"]
        .as_str()
        .or_else(|| rec["op"].as_str())
        .unwrap_or("?");
    let mut fields = bare(rec);
    if let Value::Object(m) = &mut fields {
        for k in [
            "event",
            "time",
            "op",
            "result",
            "duration_ms",
            "node",
            "error",
        ] {
            if k != "error" || m.get(k).is_some_and(Value::is_null) {
                m.remove(k);
            }
        }
    }
    // The `interrupted` marker keeps its facts in `args`, as a mutating call would.
    let fields = match fields.get("args") {
        Some(args @ Value::Object(_)) => args.clone(),
        _ => fields,
    };
    // Plain fields only: maps and lists (a canary check's figures) are in `--format json`.
    let mut line = kind.to_string();
    if let Value::Object(m) = &fields {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{f:.1}"),
                    _ => n.to_string(),
                },
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            line.push_str(&format!(" {k}={v}"));
        }
    }
    line
}

/// Words joined as a shell would read them back, each quoted when it needs to be.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One run: what, who, when, how it ended, and its timeline of steps, changes and other events.
pub fn show_text(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let mut script = run.script_name().to_string();
    for a in &run.args {
        script.push(' ');
        script.push_str(a);
    }
    out.push(format!(
        "{} {}",
        if run.rehearsal { "rehearsal" } else { "run" },
        run.id
    ));
    out.push(format!("  script   {script}"));
    if let Value::Object(o) = &run.options {
        if !o.is_empty() {
            let sets: Vec<String> = o
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    )
                })
                .collect();
            out.push(format!("  options  {}", sets.join(" ")));
        }
    }
    out.push(format!("  cluster  {}", run.cluster));
    out.push(format!("  who      {} (pid {})", run.who(), run.pid));
    if !run.command_line.is_empty() {
        out.push(format!("  command  {}", shell_words(&run.command_line)));
    }
    if let Some(v) = &run.tool_version {
        out.push(format!(
            "  tool     neumann-script {v} (commit {})",
            run.commit.as_deref().unwrap_or("unknown")
        ));
    }
    out.push(format!("  started  {}", journal::rfc3339(run.started)));
    let mut result = format!("  result   {}", run.result);
    if let Some(c) = run.exit_code {
        result.push_str(&format!(" (exit {c})"));
    }
    result.push_str(&format!(" after {}", ms(run.duration_ms)));
    out.push(result);
    if let Some(m) = &run.message {
        out.push(format!("  message  {m}"));
    }
    if run.rehearsal {
        let plan = run
            .records
            .iter()
            .rev()
            .find(|r| r["event"] == "run_end")
            .map(|r| r["rehearsal"].clone())
            .unwrap_or(Value::Null);
        let mut what = "on a simulated twin: it changed nothing on the cluster".to_string();
        if let Some(n) = plan["planned_changes"].as_u64() {
            what.push_str(&format!(
                "; its plan: {n} change{}",
                if n == 1 { "" } else { "s" }
            ));
        }
        if let Some(d) = plan["predicted_ms"].as_u64() {
            what.push_str(&format!(", predicted {}", ms(d)));
        }
        out.push(format!("  rehearsal {what}"));
    }
    if let Some(how) = &run.declined {
        out.push(format!(
            "  declined the operator did not run its plan live (answered {how})"
        ));
    }
    if let Some(r) = &run.after_rehearsal {
        out.push(format!(
            "  after    rehearsal {r}, whose plan the operator confirmed"
        ));
    }
    if let Some(c) = &run.continues {
        out.push(format!(
            "  continues run {c} (the same script, arguments and cluster, which had not ended done)"
        ));
    }
    for r in &run.recovered {
        out.push(format!("  finished what run {r} left (recovered)"));
    }
    if !run.continued_by.is_empty() {
        let how = if run.rehearsal {
            "run live after it"
        } else {
            "continued by"
        };
        out.push(format!("  {how} {}", run.continued_by.join(", ")));
    }
    if run.forced > 0 {
        out.push(format!(
            "  FORCED   {} call{} went past an interlock that would have refused {} (marked below)",
            run.forced,
            if run.forced == 1 { "" } else { "s" },
            if run.forced == 1 { "it" } else { "them" }
        ));
    }
    if run.legacy {
        out.push(
            "  (written by a version without run ids: grouped by process; no steps were recorded)"
                .into(),
        );
    }
    let steps = steps(run);
    let changes = run.changes;
    out.push(String::new());
    out.push(format!(
        "{} step{}, {changes} change{} (mutating calls); times in UTC:",
        steps.len(),
        if steps.len() == 1 { "" } else { "s" },
        if changes == 1 { "" } else { "s" },
    ));
    let clock = |rec: &Value| {
        rec["time"]
            .as_str()
            .and_then(|t| t.get(11..19))
            .unwrap_or("        ")
            .to_string()
    };
    let mut depth = 0usize;
    let mut next_step = steps.iter().peekable();
    for (at, rec) in run.records.iter().enumerate() {
        let pad = |d: usize| "  ".repeat(d);
        match rec["event"].as_str() {
            Some("step_start") => {
                if let Some(s) = next_step.next_if(|s| s.start == at) {
                    let how = match (&s.result[..], step_ms(run, s)) {
                        ("ok", Some(d)) => format!("ok in {}", ms(d)),
                        (r, Some(d)) => format!("{r} after {}", ms(d)),
                        (r, None) => format!("{r} (no end recorded)"),
                    };
                    let error = s
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    out.push(format!(
                        "  {} {}step `{}`: {how}{error}",
                        clock(rec),
                        pad(s.depth),
                        s.name
                    ));
                    depth = s.depth + 1;
                }
            }
            Some("step_end") => {
                let name = rec["name"].as_str().unwrap_or_default();
                if let Some(s) = steps.iter().rev().find(|s| s.start < at && s.name == name) {
                    depth = s.depth;
                }
            }
            Some("run_start" | "run_end") => {}
            Some("op_begin") if answered(run, at) => {}
            Some("op_begin") => out.push(format!(
                "  {} {}{}{}: began; no result recorded (the process ended inside the call)",
                clock(rec),
                pad(depth),
                rec["op"].as_str().unwrap_or("?"),
                rec["node"]
                    .as_str()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default()
            )),
            Some(_) => out.push(format!(
                "  {} {}{}",
                clock(rec),
                pad(depth),
                describe_event(rec)
            )),
            None if rec["op"] == "interrupted" => out.push(format!(
                "  {} {}{}",
                clock(rec),
                pad(depth),
                describe_event(rec)
            )),
            None => out.push(format!(
                "  {} {}{}",
                clock(rec),
                pad(depth),
                describe_change(rec)
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests;
