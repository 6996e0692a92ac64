//! The audit journal: one JSON line per mutating call (who, when, which script and its SHA-256, the
//! cluster, the operation, node and arguments, the result and how long it took), appended to a file the
//! operator can keep. Default: `$XDG_STATE_HOME/neumann-script/journal.jsonl`, else
//! `~/.local/state/neumann-script/journal.jsonl`; `--journal FILE` chooses another. The journal says what
//! was done to which cluster, so it is created readable by the user alone (0600, directories 0700).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub mod leftovers;

/// Where the journal goes by default, if the environment names a home.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("neumann-script").join("journal.jsonl"))
}

/// This build's version, as `Cargo.toml` has it.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit this binary was built from: `abc1234`, `abc1234-dirty` when its sources differed from it,
/// or `unknown` (build.rs).
pub const COMMIT: &str = env!("NEUMANN_SCRIPT_COMMIT");

/// The Rhai version this binary embeds, as `Cargo.lock` pins it (build.rs).
pub const RHAI_VERSION: &str = env!("NEUMANN_SCRIPT_RHAI");

/// What `--version` prints after the program's name: `0.1.0 (commit abc1234, rhai 1.27.0)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NEUMANN_SCRIPT_COMMIT"),
    ", rhai ",
    env!("NEUMANN_SCRIPT_RHAI"),
    ")"
);

/// The command line this process was started with, as the journal records it (`set_command_line`).
static COMMAND_LINE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Records the process's command line for every run it journals: the words as given, with what must
/// not be kept already taken out by the caller (webhook URLs carry their secret in the path). The admin
/// token is taken out of every record anyway (`append`). Set once; later calls are ignored.
pub fn set_command_line(words: Vec<String>) {
    let _ = COMMAND_LINE.set(words);
}

/// The command line `set_command_line` recorded; empty when none was.
pub fn command_line() -> Vec<String> {
    COMMAND_LINE.get().cloned().unwrap_or_default()
}

/// An earlier run of the same script, arguments and cluster, as `Journal::previous_run` finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Earlier {
    pub run_id: String,
    pub host: String,
    pub pid: Option<u32>,
    /// Its `run_end` result (`done`, `stopped`, ...), `interrupted` for a run a second signal ended at
    /// once, `None` when no end was recorded (killed, or still running).
    pub result: Option<String>,
}

/// Who runs this process and where: (`$USER`, else `$LOGNAME`, else the name of the process's uid, and
/// this machine's host name). A service or a container often sets neither variable; the uid still
/// names someone (`uid1000` when no user database entry does).
pub fn whoami() -> (String, String) {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(user_of_uid);
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().trim().to_string())
        })
        .unwrap_or_default();
    (user, host)
}

/// The user database's name for this process's real uid, or `uid` and its number.
fn user_of_uid() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) if !u.name.is_empty() => u.name,
        _ => format!("uid{uid}"),
    }
}

/// Creates `dir` and its missing parents readable by the user alone. A directory that exists keeps its
/// mode, since `--journal /tmp/j.jsonl` must not change `/tmp`; the tool's own state directory is
/// tightened, because earlier versions created it 0755.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let own = default_path().is_some_and(|p| p.parent() == Some(dir));
    if own {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for appending, creating it 0600. The tool's own files (the default journal, the REPL
/// history) are tightened to 0600 if an earlier version left them readable by others; a file the operator
/// named keeps the mode they gave it.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    // A regular file only: a FIFO would block the open, `/dev/full` would fail every record.
    let file = crate::files::open_regular(
        path,
        OpenOptions::new().create(true).append(true).mode(0o600),
    )
    .map_err(std::io::Error::other)?;
    let own = default_path().is_some_and(|p| p.parent().is_some() && p.parent() == path.parent());
    if own && file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// `2026-11-25T03:40:00Z` from unix seconds.
pub fn rfc3339(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A new run's id: its start in UTC and a few bits of this process, so ids sort by time and two runs
/// started in the same second differ (`20261125T151500Z-3f2a`).
pub fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp: String = rfc3339(now.as_secs_f64())
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let salt = (u64::from(std::process::id()) << 16 ^ u64::from(now.subsec_nanos())) & 0xffff;
    format!("{stamp}-{salt:04x}")
}

/// How the journal names a cluster: its inventory's absolute path, so two `c.toml`s in different
/// directories are different clusters.
pub fn cluster_name(source: &Path) -> String {
    std::fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .display()
        .to_string()
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hears the run's events as `Ctx::event` passes them on, each as (kind, fields): the journal records the
/// same events. Must not block: anything slow goes to the runtime.
pub type Listener = Box<dyn Fn(&str, &Value)>;

/// A step of a run, from its `step_start` event to its `step_end`: `audit show` lists them, the report draws
/// them. `At` is where each end stands: an index among the run's events as `steps` pairs them, seconds on
/// the report's timeline once placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<At = usize> {
    pub name: String,
    /// 0 for a top-level step, 1 for one inside it, ...
    pub depth: usize,
    /// `ok`, `failed`, or `unfinished` when no end was recorded.
    pub result: String,
    pub error: Option<String>,
    pub start: At,
    /// `None` while unfinished.
    pub end: Option<At>,
}

impl<A> Step<A> {
    /// The same step with both ends placed by `place`.
    pub fn place<B>(self, place: impl Fn(A) -> B) -> Step<B> {
        Step {
            name: self.name,
            depth: self.depth,
            result: self.result,
            error: self.error,
            start: place(self.start),
            end: self.end.map(place),
        }
    }
}

/// The steps among a run's events, each given as (kind, fields), in the order they started. A `step_end`
/// closes the innermost open step of its name; steps inside it that never ended stay unfinished.
pub fn steps<'a>(events: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (at, (kind, fields)) in events.into_iter().enumerate() {
        let name = fields["name"].as_str().unwrap_or_default();
        match kind {
            "step_start" => {
                open.push(out.len());
                out.push(Step {
                    name: name.to_string(),
                    depth: open.len() - 1,
                    result: "unfinished".into(),
                    error: None,
                    start: at,
                    end: None,
                });
            }
            "step_end" => {
                if let Some(k) = open.iter().rposition(|&i| out[i].name == name) {
                    let i = open[k];
                    open.truncate(k);
                    out[i].result = fields["result"].as_str().unwrap_or("ok").to_string();
                    out[i].error = fields["error"].as_str().map(str::to_string);
                    out[i].end = Some(at);
                }
            }
            _ => {}
        }
    }
    out
}

/// Appends records for one run. Clones share the file: the signal handler records an exit at once.
#[derive(Clone)]
pub struct Journal {
    file: Option<Arc<Mutex<File>>>,
    path: Option<PathBuf>,
    context: Value,
    /// Every record of the run carries it; the run lease and webhooks use the same id.
    run_id: String,
}

impl Journal {
    /// A journal that records nothing (the embedded simulator without `--journal`, `check`, `functions`).
    pub fn off() -> Journal {
        Journal {
            file: None,
            path: None,
            context: Value::Null,
            run_id: new_run_id(),
        }
    }

    /// Opens (creating directories) the journal at `path` for a run of `script` against `cluster`.
    pub fn open(
        path: &Path,
        script: &str,
        script_text: &str,
        cluster: &str,
    ) -> Result<Journal, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir).map_err(|e| {
                format!(
                    "cannot create the journal's directory `{}`: {e}",
                    dir.display()
                )
            })?;
        }
        let file = open_private(path)
            .map_err(|e| format!("cannot open the journal `{}`: {e}", path.display()))?;
        let (user, host) = whoami();
        let run_id = new_run_id();
        Ok(Journal {
            file: Some(Arc::new(Mutex::new(file))),
            path: Some(path.to_path_buf()),
            run_id: run_id.clone(),
            context: json!({
                "run_id": run_id,
                "user": user,
                "host": host,
                "pid": std::process::id(),
                "script": script,
                "script_sha256": sha256_hex(script_text),
                "cluster": cluster,
            }),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The same run, recording nothing: a rehearsal's calls act on its twin, and must never read back
    /// from the journal as changes to the live cluster. Its start and end go to the journal itself.
    pub fn silent(&self) -> Journal {
        Journal {
            file: None,
            path: None,
            context: Value::Null,
            run_id: self.run_id.clone(),
        }
    }

    /// The journal's lines, newest first from the file's end: a journal kept for months is neither read
    /// whole nor held. `None` when no journal is open or the file does not exist yet.
    fn newest_first(&self) -> Result<Option<crate::files::LinesBackwards>, String> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let file = match crate::files::open_regular(path, OpenOptions::new().read(true)) {
            Ok(f) => f,
            Err(crate::files::ReadError::NotFound) => return Ok(None),
            Err(e) => return Err(self.unreadable(&e)),
        };
        crate::files::lines_backwards(file, crate::files::MAX_RECORD)
            .map(Some)
            .map_err(|e| self.unreadable(&e))
    }

    fn unreadable(&self, e: &dyn std::fmt::Display) -> String {
        let path = self.path.as_deref().unwrap_or(Path::new("?"));
        format!("cannot read the journal `{}`: {e}", path.display())
    }

    /// The newest earlier run of this journal's script and cluster that was given the same `args`
    /// (rehearsals aside), and how it ended; `None` when there is none or no journal is open. Read
    /// backwards from the journal's end, stopping at that run's start.
    pub fn previous_run(&self, args: &[String]) -> Result<Option<Earlier>, String> {
        let Some(lines) = self.newest_first()? else {
            return Ok(None);
        };
        let (cluster, script) = (self.context.get("cluster"), self.context.get("script"));
        let args: Vec<Value> = args.iter().map(|a| json!(a)).collect();
        // Read from the end: a run's end comes before its start.
        let mut ends: std::collections::HashMap<String, String> = Default::default();
        for line in lines {
            let crate::files::Line::Text(line) = line.map_err(|e| self.unreadable(&e))? else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if rec.get("cluster") != cluster || rec.get("script") != script {
                continue;
            }
            let Some(id) = rec["run_id"].as_str().filter(|id| *id != self.run_id) else {
                continue;
            };
            match (rec["event"].as_str(), rec["op"].as_str()) {
                (Some("run_end"), _) => {
                    let result = rec["result"].as_str().unwrap_or("unknown");
                    ends.entry(id.to_string()).or_insert_with(|| result.into());
                }
                (None, Some("interrupted")) => {
                    ends.entry(id.to_string())
                        .or_insert_with(|| "interrupted".into());
                }
                (Some("run_start"), _)
                    if rec["rehearsal"] != json!(true)
                        && rec["args"].as_array().map(Vec::as_slice) == Some(&args[..]) =>
                {
                    return Ok(Some(Earlier {
                        run_id: id.to_string(),
                        host: rec["host"].as_str().unwrap_or_default().to_string(),
                        pid: rec["pid"].as_u64().and_then(|p| u32::try_from(p).ok()),
                        result: ends.remove(id),
                    }));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The cluster this journal's runs are recorded against (`cluster_name`), when it is open.
    pub fn cluster(&self) -> Option<&str> {
        self.context.get("cluster").and_then(Value::as_str)
    }

    /// Records one event of the run's course (`run_start`, `step_start`, `step_end`, `run_end`, ...):
    /// `{"event": kind, ...fields}` with the time and the run's context.
    pub fn event(&self, kind: &str, fields: &Value) {
        let mut rec = serde_json::Map::new();
        if let Value::Object(f) = fields {
            rec.extend(f.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        // The kind wins over a field that happens to be called `event`, or the record would lie.
        rec.insert("event".into(), json!(kind));
        self.append(Value::Object(rec), kind == "op_begin");
    }

    /// The newest event of one of `kinds` that this cluster's runs journaled and whose fields include every
    /// (key, value) of `filter`; `None` when there is none or no journal is open. Lines that are not JSON
    /// (a run killed mid-write) are skipped: one torn line must not hide the history before it.
    pub fn last_event(
        &self,
        kinds: &[String],
        filter: &serde_json::Map<String, Value>,
    ) -> Result<Option<Value>, String> {
        let Some(lines) = self.newest_first()? else {
            return Ok(None);
        };
        let cluster = self.context.get("cluster");
        for line in lines {
            // A line over the bound is skipped, as a torn one is.
            let crate::files::Line::Text(line) = line.map_err(|e| self.unreadable(&e))? else {
                continue;
            };
            let rec = serde_json::from_slice::<Value>(&line).ok();
            if let Some(rec) = rec.filter(|rec| {
                rec.get("event")
                    .and_then(Value::as_str)
                    .is_some_and(|k| kinds.iter().any(|want| want == k))
                    && rec.get("cluster") == cluster
                    && filter.iter().all(|(k, v)| rec.get(k) == Some(v))
            }) {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    /// Records one mutating call. A failure to write is reported once per call on stderr and does not stop
    /// the run: the operation already happened, and stopping now would not undo it.
    pub fn record(
        &self,
        op: &str,
        node: Option<&str>,
        args: Value,
        error: Option<&str>,
        took: Duration,
    ) {
        self.record_overriding(op, node, args, error, took, None);
    }

    /// Records one mutating call that `#{force: true}` let past an interlock: `overrode` is
    /// `{rule, reason}`, kept in the record's `override` field.
    pub fn record_overriding(
        &self,
        op: &str,
        node: Option<&str>,
        args: Value,
        error: Option<&str>,
        took: Duration,
        overrode: Option<Value>,
    ) {
        let mut rec = json!({
            "op": op,
            "node": node,
            "args": args,
            "result": if error.is_some() { "error" } else { "ok" },
            "error": error,
            "duration_ms": took.as_millis() as u64,
        });
        if let (Some(o), Value::Object(r)) = (overrode, &mut rec) {
            r.insert("override".into(), o);
        }
        self.append(rec, true);
    }

    /// Writes one record with the time and the run's context. A `durable` one (a mutating call, and its
    /// start) is on disk before the call goes on: after a power loss the next run still learns what this
    /// one may have left stopped (`leftovers`).
    fn append(&self, mut rec: Value, durable: bool) {
        let Some(file) = &self.file else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if let Value::Object(r) = &mut rec {
            r.insert("time".into(), json!(rfc3339(now)));
            r.insert("ts".into(), json!(now));
        }
        if let (Value::Object(r), Value::Object(c)) = (&mut rec, &self.context) {
            for (k, v) in c {
                r.insert(k.clone(), v.clone());
            }
        }
        // A server's answer quoted in an error may echo the admin token back.
        crate::secret::redact_json(&mut rec);
        let line = format!("{rec}\n");
        let written = file
            .lock()
            .map_err(|_| "lock poisoned".to_string())
            .and_then(|mut f| {
                f.write_all(line.as_bytes())
                    .and_then(|()| if durable { f.sync_data() } else { Ok(()) })
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not append to the journal `{}`: {e}",
                self.path.as_deref().unwrap_or(Path::new("?")).display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_end_closes_the_innermost_open_step_of_its_name() {
        let events = [
            ("step_start", json!({"name": "outer"})),
            ("step_start", json!({"name": "inner"})),
            ("op", json!({"name": "outer"})),
            ("step_start", json!({"name": "cut short"})),
            // `cut short` never ended (the process died inside it); its parent's end closes it too.
            (
                "step_end",
                json!({"name": "inner", "result": "failed", "error": "boom"}),
            ),
            ("step_start", json!({"name": "last"})),
        ];
        let s = steps(events.iter().map(|(k, f)| (*k, f)));
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.name.as_str(), s.depth, s.result.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("outer", 0, "unfinished", 0, None),
                ("inner", 1, "failed", 1, Some(4)),
                ("cut short", 2, "unfinished", 3, None),
                ("last", 1, "unfinished", 5, None),
            ]
        );
        assert_eq!(s[1].error.as_deref(), Some("boom"));
        let placed = s[1].clone().place(|i| i as f64 * 1.5);
        assert_eq!((placed.start, placed.end), (1.5, Some(6.0)));
    }

    #[test]
    fn the_previous_run_is_the_newest_of_the_same_script_args_and_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let open = |script: &str, cluster: &str| Journal::open(&path, script, "", cluster).unwrap();
        let start = |j: &Journal, args: &[&str], rehearsal: bool| {
            j.event("run_start", &json!({"args": args, "rehearsal": rehearsal}))
        };
        let stopped = open("up.rhai", "/c.toml");
        start(&stopped, &["0.11.0"], false);
        stopped.event("run_end", &json!({"result": "stopped"}));
        let asking = open("up.rhai", "/c.toml");
        assert_eq!(
            asking.previous_run(&["0.11.0".into()]),
            Ok(Some(Earlier {
                run_id: stopped.run_id().into(),
                host: whoami().1,
                pid: Some(std::process::id()),
                result: Some("stopped".into()),
            }))
        );
        // Rehearsals, other arguments, other scripts and other clusters are not it.
        let rehearsal = open("up.rhai", "/c.toml");
        start(&rehearsal, &["0.11.0"], true);
        rehearsal.event("run_end", &json!({"result": "done"}));
        start(&open("up.rhai", "/c.toml"), &["0.12.0"], false);
        start(&open("other.rhai", "/c.toml"), &["0.11.0"], false);
        start(&open("up.rhai", "/d.toml"), &["0.11.0"], false);
        let found = asking.previous_run(&["0.11.0".into()]).unwrap().unwrap();
        assert_eq!(found.run_id, stopped.run_id());
        // A run a second signal ended at once records no end, only the marker; a killed one nothing.
        let cut = open("up.rhai", "/c.toml");
        start(&cut, &["0.11.0"], false);
        cut.record("interrupted", None, json!({}), None, Duration::ZERO);
        let found = asking.previous_run(&["0.11.0".into()]).unwrap().unwrap();
        assert_eq!(
            (found.run_id.as_str(), found.result.as_deref()),
            (cut.run_id(), Some("interrupted"))
        );
        let killed = open("up.rhai", "/c.toml");
        start(&killed, &["0.11.0"], false);
        let found = asking.previous_run(&["0.11.0".into()]).unwrap().unwrap();
        assert_eq!(
            (found.run_id.as_str(), found.result),
            (killed.run_id(), None)
        );
        // The asking run itself is never its own previous run.
        start(&asking, &["0.11.0"], false);
        let found = asking.previous_run(&["0.11.0".into()]).unwrap().unwrap();
        assert_eq!(found.run_id, killed.run_id());
        assert_eq!(Journal::off().previous_run(&[]), Ok(None));
        // Silent: the same run, nothing written.
        let silent = asking.silent();
        assert_eq!(silent.run_id(), asking.run_id());
        let before = std::fs::read_to_string(&path).unwrap();
        silent.event("run_start", &json!({}));
        silent.record("node::stop", Some("node2"), json!({}), None, Duration::ZERO);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert_eq!(silent.path(), None);
    }

    #[test]
    fn without_user_or_logname_the_user_is_the_uids() {
        let id = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        assert_eq!(
            user_of_uid(),
            String::from_utf8_lossy(&id.stdout).trim(),
            "the user database's name for this uid"
        );
        assert!(VERSION_LINE.starts_with(&format!("{TOOL_VERSION} (commit {COMMIT}, rhai ")));
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_568_400.0), "2026-11-25T01:00:00Z");
        assert_eq!(rfc3339(1_795_570_845.9), "2026-11-25T01:40:45Z");
    }

    #[test]
    fn the_newest_matching_event_of_this_cluster_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let here = Journal::open(&path, "c.rhai", "", "/a/c.toml").unwrap();
        let elsewhere = Journal::open(&path, "c.rhai", "", "/b/c.toml").unwrap();
        let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let filter = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            here.last_event(&kinds(&["tick"]), &filter(json!({}))),
            Ok(None)
        );
        here.event("tick", &json!({"target": "0.11.0", "n": 1}));
        here.event("tick", &json!({"target": "0.12.0", "n": 2}));
        elsewhere.event("tick", &json!({"target": "0.11.0", "n": 3}));
        // A run killed mid-line leaves a torn record: skipped, not the end of the history.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"event\":\"tick\",\"n\":"))
            .unwrap();
        let found = here
            .last_event(&kinds(&["tick"]), &filter(json!({"target": "0.11.0"})))
            .unwrap()
            .unwrap();
        assert_eq!(found["n"], 1);
        assert_eq!(found["run_id"], here.run_id());
        let any = here
            .last_event(&kinds(&["tock", "tick"]), &filter(json!({})))
            .unwrap()
            .unwrap();
        assert_eq!(any["n"], 2);
        assert_eq!(
            elsewhere
                .last_event(&kinds(&["tick"]), &filter(json!({})))
                .unwrap()
                .unwrap()["n"],
            3
        );
        assert_eq!(
            Journal::off().last_event(&kinds(&["tick"]), &filter(json!({}))),
            Ok(None)
        );
    }

    #[test]
    fn records_are_json_lines_with_the_run_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/journal.jsonl");
        let j = Journal::open(&path, "up.rhai", "print(1)", "c.toml").unwrap();
        j.record(
            "node::drain",
            Some("node2"),
            json!({"id": "node2"}),
            None,
            Duration::from_millis(12),
        );
        j.record(
            "node::stop",
            Some("node2"),
            json!({}),
            Some("boom"),
            Duration::ZERO,
        );
        j.event("notify_failed", &json!({"event": "run_start", "url": "u"}));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["event"], "notify_failed");
        assert_eq!(lines[0]["op"], "node::drain");
        assert_eq!(lines[0]["result"], "ok");
        assert_eq!(lines[0]["duration_ms"], 12);
        assert_eq!(lines[0]["script_sha256"], sha256_hex("print(1)"));
        assert_eq!(lines[1]["error"], "boom");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }
}
