//! `--report FILE.html`: the run's timeline as one self-contained page (docs/REPORT.md).
//!
//! `Collector` gathers a run's records: its events through `Ctx::listeners` (with the moment each arrived),
//! and on a simulated cluster the simulator's own log and figures over its control API. `timeline` turns
//! records into lanes and `page` draws them; both are pure. The page is written at the session's close,
//! whatever happened, through a temporary file renamed into place.

pub mod page;
mod svg;
pub mod text;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cluster::Cluster;
use crate::journal::Listener;
use crate::sim::SimEvent;
use timeline::{Record, Rehearsal, RunEvent, SimRecord};

/// The start of every page this writes: an existing file without it is not overwritten.
const DOCTYPE: &str = "<!doctype html>";

/// Checks up front that `path` can be written, so a run never does its work and then fails to report it.
/// An existing file is only replaced when it is an HTML page (a report); a missing directory, a directory,
/// or one this process cannot create files in is refused.
pub fn check_path(path: &Path) -> Result<PathBuf, String> {
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err("--report needs a file name, such as run.html".into());
    }
    if path.is_dir() {
        return Err(format!(
            "--report {shown}: is a directory; name a file such as {shown}/run.html"
        ));
    }
    if path.extension().is_some_and(|e| e == "rhai" || e == "toml") {
        return Err(format!(
            "--report {shown}: refusing to write a report over a script or inventory (name an .html file)"
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "--report {shown}: the directory `{}` does not exist",
            dir.display()
        ));
    }
    // Only the start of an existing file is read, and only a regular file's: `/dev/zero` would read
    // forever, a FIFO would wait for a writer.
    let existing = match crate::files::open_regular(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => Some(f),
        Err(crate::files::ReadError::NotFound) => None,
        Err(e) => return Err(format!("--report {shown}: {e}; name an HTML file")),
    };
    if let Some(file) = existing {
        use std::io::Read;
        let mut start = Vec::with_capacity(DOCTYPE.len());
        file.take(DOCTYPE.len() as u64)
            .read_to_end(&mut start)
            .map_err(|e| format!("--report {shown}: cannot read the existing file: {e}"))?;
        if !String::from_utf8_lossy(&start).eq_ignore_ascii_case(DOCTYPE) {
            return Err(format!(
                "--report {shown}: the file exists and is not an HTML report; refusing to overwrite it"
            ));
        }
    }
    tempfile::NamedTempFile::new_in(&dir).map_err(|e| {
        format!(
            "--report {shown}: cannot create a file in `{}`: {e}",
            dir.display()
        )
    })?;
    Ok(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// A leader and its term, when known.
type Leader = (String, Option<u64>);

/// What the run said, as it said it.
#[derive(Default, Clone)]
struct Collected {
    events: Vec<(Instant, String, Value)>,
    /// The simulator's clock when the run began: (when read, simulated seconds, speed).
    sim_origin: Option<(Instant, f64, f64)>,
    /// And when it ended: (when read, simulated seconds).
    sim_close: Option<(Instant, f64)>,
    sim_events: Vec<SimEvent>,
    sim_stats: Option<Value>,
    /// Each node's version as the run began, and as it ended.
    versions_before: BTreeMap<String, String>,
    versions_after: BTreeMap<String, String>,
    rehearsal: Option<Rehearsal>,
}

/// Gathers one run's records for its report.
#[derive(Clone)]
pub struct Collector {
    path: PathBuf,
    started: Instant,
    started_unix: f64,
    predicted: bool,
    nodes: Arc<Mutex<Vec<String>>>,
    leader: Arc<Mutex<Option<Leader>>>,
    control: Arc<Mutex<Option<String>>>,
    inner: Arc<Mutex<Collected>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn http() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .ok()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("GET {url}: {}", crate::error::root_cause(&e)))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

impl Collector {
    /// `path` as `check_path` returned it; `predicted` for a rehearsal's twin.
    pub fn new(path: PathBuf, predicted: bool) -> Collector {
        Collector {
            path,
            started: Instant::now(),
            started_unix: unix_now(),
            predicted,
            nodes: Arc::default(),
            leader: Arc::default(),
            control: Arc::default(),
            inner: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listener to add to `Ctx::listeners`: every event, with the moment it arrived. Never blocks
    /// for long: it only appends to a list.
    pub fn listener(&self) -> Listener {
        let inner = self.inner.clone();
        Box::new(move |kind: &str, fields: &Value| {
            if let Ok(mut c) = inner.lock() {
                c.events
                    .push((Instant::now(), kind.to_string(), fields.clone()));
            }
        })
    }

    /// The cluster the run talks to, as the run begins: its nodes (one lane each), its leader and term, each
    /// node's version, and, when simulated, its control address and clock, to place its log on the run's
    /// timeline. Bounded reads: a cluster that does not answer leaves the leader row to the changes the run
    /// sees and the versions unread.
    pub fn cluster(&self, tokio: &tokio::runtime::Handle, cluster: &Cluster) {
        let (raft, versions) = tokio.block_on(async {
            let limit = Duration::from_secs(5);
            tokio::join!(
                tokio::time::timeout(limit, cluster.raft_status()),
                tokio::time::timeout(limit, cluster.versions()),
            )
        });
        let leader = raft
            .ok()
            .and_then(Result::ok)
            .and_then(|s| Some((s.leader?, u64::try_from(s.term).ok())));
        if let Ok(mut n) = self.nodes.lock() {
            *n = cluster
                .inventory
                .nodes
                .iter()
                .map(|n| n.id.clone())
                .collect();
        }
        if let Ok(mut l) = self.leader.lock() {
            *l = leader;
        }
        let control = cluster.inventory.sim_control.clone();
        if let Ok(mut inner) = self.inner.lock() {
            inner.versions_before = versions.ok().and_then(Result::ok).unwrap_or_default();
        }
        if let Some(c) = &control {
            if let Some(http) = http() {
                let url = format!("http://{c}/sim/clock");
                if let Ok(v) = tokio.block_on(get_json(&http, &url)) {
                    if let (Some(t), Ok(mut inner)) = (v["t"].as_f64(), self.inner.lock()) {
                        let speed = v["speed"].as_f64().filter(|s| *s > 0.0).unwrap_or(1.0);
                        inner.sim_origin = Some((Instant::now(), t, speed));
                    }
                }
            }
        }
        if let Ok(mut ctl) = self.control.lock() {
            *ctl = control;
        }
    }

    /// What a rehearsal printed after its run, for the page to show the same.
    pub fn rehearsal(&self, rehearsal: Rehearsal) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.rehearsal = Some(rehearsal);
        }
    }

    /// A signal that reached the process at `at`; `at_once` for the second, which exits at once.
    pub fn signalled(&self, signal: &str, at: Instant, at_once: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            let fields = serde_json::json!({ "signal": signal, "at_once": at_once });
            inner.events.push((at, "signal".into(), fields));
        }
    }

    /// As the run ends, before the simulator goes away: each node's version now, and on a simulated cluster
    /// the simulator's log, figures and clock. Bounded; a simulator that does not answer leaves the page
    /// without its lanes' sources, and says so (the error); versions not read are shown as such.
    pub fn read_end(
        &self,
        tokio: &tokio::runtime::Handle,
        cluster: Option<&Cluster>,
    ) -> Result<(), String> {
        if let Some(cluster) = cluster {
            let versions = tokio.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), cluster.versions()).await
            });
            if let (Ok(Ok(v)), Ok(mut inner)) = (versions, self.inner.lock()) {
                inner.versions_after = v;
            }
        }
        self.read_simulator(tokio)
    }

    fn read_simulator(&self, tokio: &tokio::runtime::Handle) -> Result<(), String> {
        let Some(control) = self.control.lock().ok().and_then(|c| c.clone()) else {
            return Ok(());
        };
        let http = http().ok_or("cannot set up an HTTP client")?;
        let base = format!("http://{control}");
        let urls = ["clock", "events", "stats"].map(|p| format!("{base}/sim/{p}"));
        let (clock, events, stats) = tokio.block_on(async {
            tokio::join!(
                get_json(&http, &urls[0]),
                get_json(&http, &urls[1]),
                get_json(&http, &urls[2]),
            )
        });
        let read_at = Instant::now();
        let clock = clock?;
        let events = events?;
        let stats = stats?;
        let mut inner = self.inner.lock().map_err(|_| "report records poisoned")?;
        if let Some(t) = clock["t"].as_f64() {
            inner.sim_close = Some((read_at, t));
        }
        inner.sim_events = events
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(SimEvent {
                    t: e["t"].as_f64()?,
                    node: e["node"].as_str().map(str::to_string),
                    kind: e["kind"].as_str()?.to_string(),
                    detail: e["detail"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect();
        inner.sim_stats = Some(stats);
        Ok(())
    }

    /// The records as the page needs them, every time on the run's timeline: real seconds since the
    /// start on a real cluster; on a simulated one, the simulator's seconds since the run began, with the
    /// run's own events placed by the two readings of its clock.
    pub fn record(&self) -> Record {
        let inner = self.inner.lock().map(|c| c.clone()).unwrap_or_default();
        let nodes = self.nodes.lock().map(|n| n.clone()).unwrap_or_default();
        let origin = inner.sim_origin;
        // Timeline seconds per real second, and the wall clock at the timeline's 0.
        let (rate, wall_origin) = match (origin, inner.sim_close) {
            (Some((i0, s0, speed)), close) => {
                let rate = match close {
                    Some((i1, s1)) if i1 > i0 && s1 > s0 => {
                        (s1 - s0) / i1.duration_since(i0).as_secs_f64()
                    }
                    _ => speed,
                };
                let since_start = i0.saturating_duration_since(self.started).as_secs_f64();
                (rate, self.started_unix + since_start)
            }
            (None, _) => (1.0, self.started_unix),
        };
        let to_timeline: Box<dyn Fn(Instant) -> f64> = match origin {
            Some((i0, _, _)) => Box::new(move |i: Instant| {
                let real = if i >= i0 {
                    i.duration_since(i0).as_secs_f64()
                } else {
                    -i0.duration_since(i).as_secs_f64()
                };
                real * rate
            }),
            None => {
                let start = self.started;
                Box::new(move |i: Instant| i.saturating_duration_since(start).as_secs_f64())
            }
        };
        let events: Vec<RunEvent> = inner
            .events
            .iter()
            .map(|(i, kind, fields)| RunEvent {
                t: to_timeline(*i).max(0.0),
                kind: kind.clone(),
                fields: fields.clone(),
            })
            .collect();
        let field = |kind: &str, key: &str| -> Option<Value> {
            inner
                .events
                .iter()
                .rev()
                .find(|(_, k, _)| k == kind)
                .map(|(_, _, f)| f[key].clone())
        };
        let s = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_string));
        let end_at = inner
            .events
            .iter()
            .rev()
            .find(|(_, k, _)| k == "run_end")
            .map(|(i, _, _)| *i)
            .unwrap_or_else(Instant::now);
        let mut end = to_timeline(end_at);
        // Without the simulator's log (an exit at once never read it), the run's own calls draw the lanes.
        let sim = origin
            .filter(|_| inner.sim_stats.is_some())
            .map(|(_, s0, _)| {
                let events: Vec<SimEvent> = inner
                    .sim_events
                    .iter()
                    .map(|e| SimEvent {
                        t: e.t - s0,
                        ..e.clone()
                    })
                    .collect();
                if let Some(last) = events.last() {
                    end = end.max(last.t);
                }
                SimRecord {
                    events,
                    stats: inner.sim_stats.clone().unwrap_or(Value::Null),
                    install_secs: crate::sim::INSTALL_SECS,
                }
            });
        // As configured (`--sim-speed`, a twin's 20): the measured rate only places events.
        let speed = origin.map_or(1.0, |(_, _, speed)| speed);
        Record {
            run_id: s(field("run_start", "run_id")).unwrap_or_default(),
            script: s(field("run_start", "script")).unwrap_or_default(),
            args: field("run_start", "args")
                .and_then(|a| serde_json::from_value(a).ok())
                .unwrap_or_default(),
            cluster: s(field("run_start", "cluster")).unwrap_or_default(),
            result: s(field("run_end", "result")).unwrap_or_else(|| "unfinished".into()),
            exit_code: field("run_end", "exit_code")
                .and_then(|v| v.as_i64())
                .unwrap_or(-1),
            message: s(field("run_end", "message")),
            duration_s: field("run_end", "duration_ms")
                .and_then(|v| v.as_f64())
                .map(|ms| ms / 1000.0)
                .unwrap_or_else(|| self.started.elapsed().as_secs_f64()),
            end: end.max(0.001),
            speed,
            predicted: self.predicted,
            started_unix: self.started_unix,
            wall_origin,
            rate,
            versions_before: inner.versions_before.clone(),
            versions_after: inner.versions_after.clone(),
            rehearsal: inner.rehearsal.clone(),
            nodes,
            leader_at_start: self.leader.lock().ok().and_then(|l| l.clone()),
            events,
            sim,
        }
    }

    /// The process is exiting at once (a second signal): the run's end as the page will say it.
    /// `stopped` are the nodes it leaves between their stop and start: a stop still in progress is drawn
    /// from where it began. `first` is when the first signal came.
    pub fn exited_at_once(
        &self,
        signal: &str,
        exit_code: i32,
        stopped: &[String],
        first: Option<(&str, Instant)>,
    ) {
        if let Some((name, at)) = first {
            self.signalled(name, at, false);
        }
        self.signalled(signal, Instant::now(), true);
        if let Ok(mut c) = self.inner.lock() {
            for node in stopped {
                let begun = c.events.iter().rposition(|(_, k, f)| {
                    k == "op_begin" && f["node"] == node.as_str() && f["op"] == "node::stop"
                });
                let Some(b) = begun else { continue };
                let finished = c.events[b..].iter().any(|(_, k, f)| {
                    k == "op" && f["node"] == node.as_str() && f["op"] == "node::stop"
                });
                if !finished {
                    let at = c.events[b].0;
                    let fields = serde_json::json!({
                        "op": "node::stop", "node": node, "args": {}, "error": null,
                        "refused": null, "duration_ms": 0,
                    });
                    c.events.insert(b + 1, (at, "op".into(), fields));
                }
            }
            let fields = serde_json::json!({
                "result": "interrupted",
                "exit_code": exit_code,
                "message": format!("{signal} again: the process exited at once, without stopping at a safe point"),
                "duration_ms": self.started.elapsed().as_millis() as u64,
            });
            c.events.push((Instant::now(), "run_end".into(), fields));
        }
    }

    /// Draws the page and puts it in place: written beside its final name, then renamed over it, so a
    /// reader never sees half a page.
    pub fn write(&self) -> Result<PathBuf, String> {
        // The page quotes errors, which may quote a server's answer that echoed the admin token.
        let html = page::render(&self.record());
        let html = crate::secret::redact_html(&html);
        let shown = self.path.display();
        crate::files::write_whole(&self.path, html.as_bytes(), ".report-")
            .map_err(|e| format!("cannot write the report {shown}: {e}"))?;
        Ok(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_cannot_be_written_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        std::fs::write(d.join("old.html"), "<!DOCTYPE html><p>old report").unwrap();
        for (p, want) in [
            (d.join("missing/r.html"), "does not exist"),
            (d.to_path_buf(), "is a directory"),
            (d.join("notes.txt"), "not an HTML report"),
            (d.join("x.rhai"), "over a script"),
            (
                "/dev/zero".into(),
                "is a character device, not a regular file",
            ),
            ("/dev/full".into(), "is a character device"),
        ] {
            let e = check_path(&p).unwrap_err();
            assert!(e.contains(want), "{}: {e}", p.display());
        }
        assert!(check_path(&d.join("old.html")).is_ok());
        assert!(check_path(&d.join("new.html")).is_ok());
    }

    #[test]
    fn the_page_replaces_the_file_whole_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.html");
        let c = Collector::new(path.clone(), false);
        let listen = c.listener();
        listen(
            "run_start",
            &serde_json::json!({"run_id": "x1", "script": "s.rhai", "args": ["a"]}),
        );
        listen(
            "run_end",
            &serde_json::json!({"result": "done", "exit_code": 0, "duration_ms": 5}),
        );
        c.write().unwrap();
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains("x1") && page.contains("s.rhai"));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
