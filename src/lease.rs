//! The run lease: one cluster has at most one mutating run. The lease lives in the cluster
//! (`/admin/lease`, any node answers for all), is renewed by its holder from a background task and
//! expires when the holder stops renewing it. A cluster without the endpoint (HTTP 404), or one that
//! cannot be reached at all, gets a lock file in the local state directory instead, which keeps out runs
//! from this machine only.
//!
//! Read-only calls never need the lease: the script layer asks for it on a run's first mutating call and
//! gives it back when the session closes.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, OpError};
use crate::journal;
use crate::output::human_duration;
use crate::transport::admin::{AdminError, LeaseRecord};

/// The variable that sets the lease's time to live, for tests of a dead holder.
pub const TTL_VAR: &str = "NEUMANN_SCRIPT_LEASE_TTL_SECS";

/// How long a lease outlives its holder's last renewal: 30 s, or `NEUMANN_SCRIPT_LEASE_TTL_SECS` (0.3 to
/// 3600; set empty, unset), which shortens it for tests, so a test of a dead holder does not wait half a
/// minute. Any other value is an error naming the variable: a typo must not quietly mean 30 s.
pub fn ttl_setting() -> Result<Duration, String> {
    let Some(raw) = std::env::var_os(TTL_VAR).filter(|v| !v.is_empty()) else {
        return Ok(Duration::from_secs(30));
    };
    let text = raw.to_string_lossy();
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.3..=3600.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!(
                "{TTL_VAR}={text}: expected the run lease's time to live in seconds, from 0.3 to 3600 \
                 (unset, it is 30)"
            )
        })
}

/// The lease's time to live; `run` refuses a bad `NEUMANN_SCRIPT_LEASE_TTL_SECS` before any session
/// opens (`ttl_setting`), so the default here is never a silent replacement.
pub fn ttl() -> Duration {
    ttl_setting().unwrap_or(Duration::from_secs(30))
}

/// Who asks for the lease: this process, and the run it carries out.
#[derive(Debug, Clone)]
pub struct Identity {
    pub run_id: String,
    /// `user@host pid N`.
    pub holder: String,
    pub host: String,
    pub script: String,
    pub args: Vec<String>,
}

impl Identity {
    pub fn new(run_id: &str, script: &str, args: &[String]) -> Identity {
        let (user, _) = journal::whoami();
        let host = this_host();
        let pid = std::process::id();
        Identity {
            run_id: run_id.to_string(),
            holder: format!("{user}@{host} pid {pid}"),
            host,
            script: script.to_string(),
            args: args.to_vec(),
        }
    }

    fn body(&self, step: Option<&str>, ttl: Duration) -> Value {
        json!({
            "run_id": self.run_id,
            "holder": self.holder,
            "script": self.script,
            "args": self.args,
            "ttl_secs": ttl.as_secs_f64(),
            "step": step,
        })
    }

    /// A renewal that also says whether the run is paused, and acknowledges a request it acted on.
    fn renewal(&self, shared: &Shared, ttl: Duration, ack: Option<u64>) -> Value {
        let step = shared
            .step
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut body = self.body(step.as_deref(), ttl);
        let course = shared
            .course
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !course.is_null() {
            body["history"] = course;
        }
        body["paused"] = shared
            .paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(Value::Null);
        if let Some(id) = ack {
            body["ack"] = id.into();
        }
        body
    }

    fn record(&self, step: Option<&str>, ttl: Duration) -> LeaseRecord {
        LeaseRecord {
            run_id: self.run_id.clone(),
            holder: self.holder.clone(),
            script: self.script.clone(),
            args: self.args.clone(),
            acquired_at: unix_now(),
            ttl_secs: ttl.as_secs_f64(),
            step: step.map(str::to_string),
            request: None,
            paused: None,
            expires_in_secs: None,
            history: None,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The holder of a lease in one line: who, what, since when, at which step.
pub fn describe(l: &LeaseRecord) -> String {
    let mut what = l.script.clone();
    for a in &l.args {
        what.push(' ');
        what.push_str(a);
    }
    let ago = Duration::from_secs_f64((unix_now() - l.acquired_at).max(0.0));
    let mut s = format!(
        "{} running `{what}` since {} ({} ago)",
        l.holder,
        journal::rfc3339(l.acquired_at),
        human_duration(ago)
    );
    match &l.step {
        Some(step) => s.push_str(&format!(", at step \"{step}\"")),
        None => s.push_str(", outside any step"),
    }
    if let Some(p) = &l.paused {
        let by = p.get("by").and_then(Value::as_str).unwrap_or("someone");
        s.push_str(&if by == "gate" {
            ", PAUSED at a gate".to_string()
        } else {
            format!(", PAUSED by {by}")
        });
    }
    s
}

/// How many of a run's steps its lease carries: the newest, and any still open.
const COURSE_KEPT: usize = 50;

/// The steps a run has begun, which its lease carries as `history` so that `status --watch` shows them
/// from any terminal, however late it starts: the newest `COURSE_KEPT`, numbered from the run's first,
/// each with when it began and, once ended, how long it took and whether it succeeded.
#[derive(Debug, Default)]
pub struct Course {
    begun: u64,
    steps: std::collections::VecDeque<CourseStep>,
}

#[derive(Debug, serde::Serialize)]
struct CourseStep {
    /// 1 for the run's first step.
    n: u64,
    name: String,
    /// 0 for a step no other step contains.
    depth: usize,
    /// Unix seconds.
    at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    took_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
}

impl Course {
    /// A step begins, inside `depth` open ones.
    pub fn begin(&mut self, name: &str, depth: usize) {
        self.begun += 1;
        self.steps.push_back(CourseStep {
            n: self.begun,
            name: name.to_string(),
            depth,
            at: unix_now(),
            took_secs: None,
            ok: None,
        });
        // The oldest ended steps go first: a step still open (a group around its batches) stays.
        while self.steps.len() > COURSE_KEPT {
            let drop = self.steps.iter().position(|s| s.ok.is_some()).unwrap_or(0);
            self.steps.remove(drop);
        }
    }

    /// The innermost open step ends (steps nest, so it is the newest open one).
    pub fn end(&mut self, ok: bool) {
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.ok.is_none()) {
            s.took_secs = Some((unix_now() - s.at).max(0.0));
            s.ok = Some(ok);
        }
    }

    /// The course as the lease carries it: `[{n, name, depth, at, took_secs?, ok?}]`, oldest first.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.steps).unwrap_or(Value::Null)
    }
}

/// Why the lease was not granted.
#[derive(Debug)]
pub enum Refused {
    /// Another run holds it: the whole message for the operator.
    Held(String),
    /// The cluster answered the lease call with an error that is not about the lease.
    Failed(OpError),
}

/// What the holder's renewal task and the run share.
#[derive(Default)]
struct Shared {
    step: Mutex<Option<String>>,
    /// `{by, reason, since, at}` while the run is paused: every renewal carries it, so `status` sees it.
    paused: Mutex<Option<Value>>,
    /// The steps the run has begun (`Course::to_json`), sent with every renewal as `history`.
    course: Mutex<Value>,
    /// The request the cluster showed on this run's lease last (renewals answer with the record).
    seen: Mutex<Option<Value>>,
    /// Requests this run has acted on, by key: never acted on twice, even by a cluster that kept one.
    handled: Mutex<std::collections::BTreeSet<String>>,
    /// Why this run no longer holds the lease, once it does not.
    lost: Mutex<Option<String>>,
    wake: Notify,
    /// Held from building a renewal to its answer: a renewal built before the run paused (or acted on a
    /// request) must not reach the cluster after the one that says so, or it would undo it.
    sending: tokio::sync::Mutex<()>,
}

enum Kind {
    Cluster {
        cluster: Arc<Cluster>,
        me: Identity,
        ttl: Duration,
    },
    File {
        file: Arc<Mutex<File>>,
    },
}

/// A lease this run holds.
pub struct Lease {
    kind: Kind,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// A lease just granted, with what the operator must be told about it.
pub struct Granted {
    pub lease: Lease,
    /// Warnings: a lock file instead of the cluster's lease.
    pub warnings: Vec<String>,
    /// The lease this run took over: with `--steal-lease`, or because its holder's process is gone.
    pub stolen: Option<LeaseRecord>,
    /// The lease was taken over because its holder ran on this machine and its process is gone.
    pub holder_gone: bool,
}

/// Where lock files go when the cluster has no lease: beside the journal.
fn lock_dir() -> PathBuf {
    journal::default_path()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("leases")
}

/// The lock file of a cluster, keyed by its inventory's absolute path.
pub fn lock_path(cluster: &Cluster) -> PathBuf {
    let hash = journal::sha256_hex(&journal::cluster_name(&cluster.inventory.source));
    lock_dir().join(format!("{}.lock", &hash[..16]))
}

/// True when `holder` (`user@host pid N`) names a process on this machine that is still running; `None`
/// when it is on another machine, or this machine cannot tell.
pub fn alive_here(holder: &str) -> Option<bool> {
    let (who, pid) = holder.rsplit_once(" pid ")?;
    let host = who.split_once('@')?.1;
    process_alive_here(host, pid.trim().parse().ok()?)
}

/// True when process `pid` of `host` runs on this machine and is this program: a pid the system has
/// since given to another program is not the holder. `None` when `host` is another machine, or this
/// machine has no `/proc` to tell.
pub fn process_alive_here(host: &str, pid: u32) -> Option<bool> {
    if host != this_host() {
        return None;
    }
    let proc_dir = Path::new("/proc");
    if !proc_dir.is_dir() {
        return None;
    }
    let name = |pid: &str| std::fs::read_to_string(proc_dir.join(pid).join("comm")).ok();
    // A killed process whose parent has not reaped it yet (a zombie, state `Z`) has ended all the same.
    let zombie = std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
        .unwrap_or(false);
    Some(match name(&pid.to_string()) {
        Some(theirs) if !zombie => name("self").is_none_or(|mine| mine == theirs),
        _ => false,
    })
}

/// This machine's name as leases record it.
fn this_host() -> String {
    let (_, host) = journal::whoami();
    if host.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
    } else {
        host
    }
}

fn held_message(l: &LeaseRecord, ttl_note: &str) -> String {
    format!(
        "another run holds this cluster's lease: {}. This run changed nothing. Wait for that run to \
         finish; if its process is gone, its lease expires {ttl_note}, or re-run with --steal-lease to \
         take it over now",
        describe(l)
    )
}

/// Asks for the cluster's lease for `me`; on a cluster without one, a local lock file.
pub async fn acquire(
    cluster: &Arc<Cluster>,
    me: &Identity,
    step: Option<String>,
    steal: bool,
) -> Result<Granted, Refused> {
    let ttl = ttl();
    let mut stolen = None;
    let mut holder_gone = false;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let body = me.body(step.as_deref(), ttl);
        match cluster.admin.lease_acquire(&body).await {
            Ok(_) => {
                let shared = Arc::new(Shared::default());
                *shared.step.lock().unwrap_or_else(|e| e.into_inner()) = step;
                let task = tokio::spawn(renew(cluster.clone(), me.clone(), shared.clone(), ttl));
                return Ok(Granted {
                    lease: Lease {
                        kind: Kind::Cluster {
                            cluster: cluster.clone(),
                            me: me.clone(),
                            ttl,
                        },
                        shared,
                        task: Some(task),
                    },
                    warnings: Vec::new(),
                    stolen,
                    holder_gone,
                });
            }
            Err(e) if e.status() == Some(409) && attempts < 4 => {
                let held = match cluster.admin.lease().await {
                    Ok(Some(l)) => l,
                    // Released or expired in between: ask again.
                    Ok(None) => continue,
                    Err(e) => return Err(Refused::Failed(e.into())),
                };
                // This very process took it in an attempt whose answer never arrived (a response lost or
                // late on a busy machine): it is ours to give back and take again, not another run's.
                if held.holder == me.holder && attempts < 3 {
                    cluster
                        .admin
                        .lease_release(&held.run_id, &me.holder)
                        .await
                        .map_err(|e| Refused::Failed(e.into()))?;
                    continue;
                }
                let left = held
                    .expires_in_secs
                    .map(|s| format!("within {}", human_duration(Duration::from_secs_f64(s))))
                    .unwrap_or_else(|| format!("{} s after its last renewal", held.ttl_secs));
                // A holder on this machine whose process is gone will never renew or give it back:
                // waiting out its lease would only keep the cluster as that run left it.
                let alive = alive_here(&held.holder);
                if !steal && alive != Some(false) {
                    return Err(Refused::Held(held_message(&held, &left)));
                }
                if alive == Some(true) {
                    return Err(Refused::Held(format!(
                        "--steal-lease refused: the lease's holder is still running on this machine: \
                         {}. This run changed nothing. Stop that process first, or wait for it",
                        describe(&held)
                    )));
                }
                cluster
                    .admin
                    .lease_release(&held.run_id, &me.holder)
                    .await
                    .map_err(|e| Refused::Failed(e.into()))?;
                holder_gone = alive == Some(false);
                stolen = Some(held);
            }
            Err(e) if e.status() == Some(409) => {
                return Err(Refused::Failed(OpError::Failed(format!(
                    "cluster: the lease changed hands {attempts} times while this run asked for it: {e}"
                ))))
            }
            Err(e) if e.status() == Some(404) => {
                let why = format!(
                    "the cluster does not serve a run lease ({})",
                    first_cause(&e)
                );
                return lock_file(cluster, me, step, steal, ttl, why);
            }
            Err(e) if e.try_elsewhere() => {
                let why = format!("no node answered the lease request ({e})");
                return lock_file(cluster, me, step, steal, ttl, why);
            }
            Err(e) => return Err(Refused::Failed(e.into())),
        }
    }
}

fn first_cause(e: &AdminError) -> String {
    match e {
        AdminError::Node { node, cause, .. } => format!("{node}: {cause}"),
        other => other.to_string(),
    }
}

/// The local fallback: an advisory lock on a file named for the inventory, holding the holder's record.
fn lock_file(
    cluster: &Arc<Cluster>,
    me: &Identity,
    step: Option<String>,
    steal: bool,
    ttl: Duration,
    why: String,
) -> Result<Granted, Refused> {
    let path = lock_path(cluster);
    let fail = |what: &str, e: std::io::Error| {
        Refused::Failed(OpError::Failed(format!(
            "{why}, and the local lock file `{}` cannot be {what}: {e}",
            path.display()
        )))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("created", e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| fail("opened", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let who = serde_json::from_str::<LeaseRecord>(&text)
                .map(|l| describe(&l))
                .unwrap_or_else(|_| "a run on this machine".into());
            let tail = if steal {
                "; --steal-lease cannot take over a lock whose process is still running"
            } else {
                ""
            };
            return Err(Refused::Held(format!(
                "another run on this machine holds the lock file `{}` for this cluster ({why}): {who}. \
                 This run changed nothing. Wait for that run to finish{tail}",
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail("locked", e)),
    }
    let file = Arc::new(Mutex::new(file));
    write_record(&file, &me.record(step.as_deref(), ttl));
    let shared = Arc::new(Shared::default());
    *shared.step.lock().unwrap_or_else(|e| e.into_inner()) = step;
    let task = tokio::spawn(rewrite_on_step(
        file.clone(),
        me.clone(),
        shared.clone(),
        ttl,
    ));
    Ok(Granted {
        lease: Lease {
            kind: Kind::File { file },
            shared,
            task: Some(task),
        },
        warnings: vec![format!(
            "{why}: this run holds the local lock file `{}` instead, which keeps out runs from this \
             machine only; runs from other machines are not excluded",
            path.display()
        )],
        stolen: None,
        holder_gone: false,
    })
}

fn write_record(file: &Mutex<File>, record: &LeaseRecord) {
    let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
    let text = serde_json::to_string(record).unwrap_or_default();
    let _ = f
        .set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.flush());
}

async fn rewrite_on_step(file: Arc<Mutex<File>>, me: Identity, shared: Arc<Shared>, ttl: Duration) {
    let acquired_at = unix_now();
    loop {
        shared.wake.notified().await;
        let step = shared
            .step
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut record = me.record(step.as_deref(), ttl);
        record.acquired_at = acquired_at;
        record.history = Some(
            shared
                .course
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
        .filter(|c| !c.is_null());
        write_record(&file, &record);
    }
}

/// Renews the lease every third of its TTL, and at once when the step changes. A 409 means another run
/// took it over; failing to renew for a whole TTL means it may have expired: either way it is lost.
async fn renew(cluster: Arc<Cluster>, me: Identity, shared: Arc<Shared>, ttl: Duration) {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ttl / 3) => {}
            _ = shared.wake.notified() => {}
        }
        let renewed_now = {
            let _one_at_a_time = shared.sending.lock().await;
            cluster
                .admin
                .lease_acquire(&me.renewal(&shared, ttl, None))
                .await
        };
        let lost = match renewed_now {
            Ok(record) => {
                renewed = Instant::now();
                *shared.seen.lock().unwrap_or_else(|e| e.into_inner()) =
                    record.and_then(|r| r.request);
                None
            }
            Err(e) if e.status() == Some(409) => {
                let by = match cluster.admin.lease().await {
                    Ok(Some(l)) => describe(&l),
                    _ => "another run".into(),
                };
                Some(format!("another run took over this run's lease: {by}"))
            }
            Err(e) if renewed.elapsed() >= ttl => Some(format!(
                "this run could not renew its lease for {} and it may have expired: {e}",
                human_duration(renewed.elapsed())
            )),
            Err(_) => None,
        };
        if let Some(why) = lost {
            *shared.lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            return;
        }
    }
}

/// What an operator can ask of the run holding a cluster's lease (`neumann-script pause|resume|abort`,
/// docs/CONTROL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Abort,
}

impl Action {
    /// The word on the command line and in `POST /admin/lease/request`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
        }
    }

    /// The action `word` names, if any.
    pub fn parse(word: &str) -> Option<Action> {
        [Action::Pause, Action::Resume, Action::Abort]
            .into_iter()
            .find(|a| a.as_str() == word)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `pause`, `resume` or `abort` waiting on this run's lease (`POST /admin/lease/request`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The cluster's id for it, which a renewal names to acknowledge it (`"ack": ID`).
    pub id: Option<u64>,
    pub action: Action,
    /// Who asked: `user@host`.
    pub by: String,
    pub reason: String,
    /// What tells it apart from every other request: its id, else when it was made.
    key: String,
}

impl Request {
    fn parse(v: &Value) -> Option<Request> {
        // The cluster takes only these three (400 for any other word).
        let action = Action::parse(v.get("action")?.as_str()?)?;
        let id = v.get("id").and_then(Value::as_u64);
        let at = v.get("at").map(Value::to_string).unwrap_or_default();
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(Request {
            key: id.map_or_else(|| format!("{action}@{at}"), |i| i.to_string()),
            id,
            action,
            by: text("by"),
            reason: text("reason"),
        })
    }
}

/// How long a safe point waits to read the lease before it goes on with the request last seen.
const READ_WITHIN: Duration = Duration::from_secs(3);

impl Lease {
    /// The request waiting for this run that it has not acted on yet: read from the cluster now, or, when
    /// the cluster does not answer within a few seconds, the one its last renewal saw. `None` on a lock
    /// file, which carries no requests.
    pub async fn request(&self) -> Option<Request> {
        let Kind::Cluster { cluster, me, .. } = &self.kind else {
            return None;
        };
        let raw = match tokio::time::timeout(READ_WITHIN, cluster.admin.lease()).await {
            Ok(Ok(Some(l))) if l.run_id == me.run_id => l.request,
            Ok(Ok(_)) => None,
            _ => self
                .shared
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        let r = Request::parse(raw.as_ref()?)?;
        let handled = self
            .shared
            .handled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        (!handled.contains(&r.key)).then_some(r)
    }

    /// True when requests can reach this run through the cluster (not on a lock file).
    pub fn carries_requests(&self) -> bool {
        matches!(self.kind, Kind::Cluster { .. })
    }

    /// Tells the cluster at once that the run is paused (`Some({by, reason, since, at})`) or not, and
    /// acknowledges `acted_on`, which the cluster then drops. The run remembers it acted on it either way,
    /// so a cluster that missed the acknowledgement cannot make it act twice.
    pub async fn update(
        &self,
        acted_on: Option<&Request>,
        paused: Option<Value>,
    ) -> Result<(), String> {
        if let Some(r) = acted_on {
            self.shared
                .handled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.key.clone());
        }
        *self.shared.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        let Kind::Cluster { cluster, me, ttl } = &self.kind else {
            return Ok(());
        };
        let send = async {
            let _one_at_a_time = self.shared.sending.lock().await;
            let body = me.renewal(&self.shared, *ttl, acted_on.and_then(|r| r.id));
            cluster.admin.lease_acquire(&body).await
        };
        match tokio::time::timeout(READ_WITHIN, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}", human_duration(READ_WITHIN))),
        }
    }

    /// Records the step the run is at, and tells the cluster at once.
    pub fn set_step(&self, step: Option<&str>) {
        *self.shared.step.lock().unwrap_or_else(|e| e.into_inner()) = step.map(str::to_string);
        self.shared.wake.notify_one();
    }

    /// Records the steps the run has begun (`Course::to_json`), and tells the cluster at once.
    pub fn set_course(&self, course: Value) {
        *self.shared.course.lock().unwrap_or_else(|e| e.into_inner()) = course;
        self.shared.wake.notify_one();
    }

    /// Why this run no longer holds the lease, if it lost it.
    pub fn lost(&self) -> Option<String> {
        self.shared
            .lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Gives the lease back; an error is for a warning, the lease then expires on its own.
    pub async fn release(mut self) -> Result<(), String> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        match &self.kind {
            Kind::Cluster { cluster, me, .. } => {
                if self.lost().is_some() {
                    return Ok(());
                }
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    cluster.admin.lease_release(&me.run_id, &me.holder),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 5 s".into()),
                }
            }
            Kind::File { file } => {
                let f = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = f.set_len(0);
                f.unlock().map_err(|e| e.to_string())
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_one_of_the_three_actions() {
        let r = Request::parse(
            &json!({"id": 4, "action": "abort", "by": "op@desk", "reason": "freeze"}),
        )
        .unwrap();
        assert_eq!(
            (
                r.id,
                r.action,
                r.by.as_str(),
                r.reason.as_str(),
                r.key.as_str()
            ),
            (Some(4), Action::Abort, "op@desk", "freeze", "4")
        );
        for a in [Action::Pause, Action::Resume, Action::Abort] {
            let r = Request::parse(&json!({"action": a.as_str(), "at": 7.5})).unwrap();
            assert_eq!((r.action, r.key), (a, format!("{a}@7.5")));
        }
        assert_eq!(Request::parse(&json!({"action": "explode"})), None);
        assert_eq!(Request::parse(&json!({"by": "op@desk"})), None);
    }

    #[test]
    fn the_course_numbers_steps_keeps_open_ones_and_drops_the_oldest_ended() {
        let mut c = Course::default();
        c.begin("group zone=a", 0);
        for i in 0..COURSE_KEPT + 5 {
            c.begin(&format!("node{i}"), 1);
            c.end(i % 7 != 3);
        }
        let v = c.to_json();
        let steps = v.as_array().unwrap();
        assert_eq!(steps.len(), COURSE_KEPT);
        // The group, still open, is kept ahead of newer steps that ended.
        assert_eq!(steps[0]["name"], "group zone=a");
        assert_eq!(steps[0]["n"], 1);
        assert!(steps[0].get("ok").is_none() && steps[0].get("took_secs").is_none());
        let last = &steps[COURSE_KEPT - 1];
        assert_eq!(last["n"], COURSE_KEPT as u64 + 6);
        assert_eq!(
            (last["depth"].as_u64(), last["ok"].as_bool()),
            (Some(1), Some(true))
        );
        assert!(
            steps.iter().any(|s| s["ok"] == false),
            "a failed step says so"
        );
        // Ending the group closes the innermost open step, which is the group now.
        c.end(true);
        assert_eq!(c.to_json()[0]["ok"], true);
    }
}
