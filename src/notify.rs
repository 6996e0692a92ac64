//! Webhooks: each event of a run's course (docs/SCRIPTING.md, "The run's events") POSTed as JSON to the
//! receivers named by `--notify URL` and the inventory's `[notify] webhooks`, with a one-line `text` that a
//! Slack incoming webhook shows as it is. `--notify-on` or the inventory's `notify_on` choose the kinds.
//!
//! A receiver is the team's channel, not part of the upgrade: one that is down, slow or answering errors
//! must never block or fail the run. So the script thread only puts events on a bounded queue per
//! receiver; a task on the runtime posts them in order with short timeouts, retrying a post that met a
//! 5xx, a connection error or a timeout a few times with backoff; a failure that outlasts its retries is
//! warned about once per receiver and journaled as `notify_failed`; at the end of the run the queues get a
//! bounded time to drain. Webhook URLs often carry their secret in the path (Slack's do), so a URL is only
//! ever shown or journaled as `scheme://host:port/…`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::journal::{self, Journal, Listener};
use crate::output::{human_duration, Output};

/// Connecting to a receiver: a receiver on a LAN or the internet answers a SYN well within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// One post, from connecting to the answer's status.
pub const POST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the end of a run waits, in all, for queued posts (and their retries) to go out.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Posts of one event to one receiver, the first included, when each meets a 5xx, a connection error or
/// a timeout.
pub const ATTEMPTS: u32 = 4;
/// The wait before the first retry; each later one waits twice as long as the one before, and each wait
/// is drawn between half and all of that (jitter), so receivers that failed together are not retried in
/// step: 125-250 ms, 250-500 ms, 0.5-1 s.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// One event's posts to one receiver, retries and waits included, end within this: the events after it
/// queue meanwhile, and a long run's queue must keep moving.
pub const RETRY_WITHIN: Duration = Duration::from_secs(10);
/// Events queued per receiver; beyond this (a receiver hanging through a long run) new ones are dropped
/// and counted as undelivered, so memory stays bounded.
const QUEUE: usize = 512;

/// Listener-only kinds: a feed of every call and wait for the HTML report, too fine-grained for a
/// team's channel (the journal and `audit show` keep the calls).
const NOT_POSTED: &[&str] = &["op", "op_begin", "wait"];

/// The kinds `--notify-on` and the inventory's `notify_on` choose from: the runtime's and the stock
/// runbooks' (docs/SCRIPTING.md, "The run's events"), and `script` for every other kind, a script's own
/// `journal::event`s. Without a choice, all of them are posted.
pub const KINDS: &[&str] = &[
    "run_start",
    "recovered",
    "step_start",
    "step_end",
    "gate",
    "paused",
    "resumed",
    "abort",
    "canary_watch",
    "canary_check",
    "canary_end",
    "analysis_check",
    "run_end",
    "script",
];

/// Checks a choice of kinds (`notify_on`, `--notify-on`): each one of `KINDS`, and at least one. The
/// message names the first unknown kind, the nearest known one, and lists them all.
pub fn check_kinds(kinds: &[String]) -> Result<(), String> {
    let listed = || {
        format!(
            "the kinds are {} (`script`: a script's own `journal::event` kinds)",
            KINDS.join(", ")
        )
    };
    if kinds.is_empty() {
        return Err(format!(
            "no event kind chosen: name at least one (to post nothing, name no webhook); {}",
            listed()
        ));
    }
    for k in kinds {
        if !KINDS.contains(&k.as_str()) {
            let near = KINDS
                .iter()
                .map(|c| (strsim::levenshtein(k, c), *c))
                .filter(|(d, _)| *d <= 2.max(k.len() / 4))
                .min()
                .map(|(_, c)| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!("unknown event kind `{k}`{near}; {}", listed()));
        }
    }
    Ok(())
}

/// Which events a run posts: the chosen kinds, or every kind for `None`; never the listener-only kinds or
/// the routine checks.
#[derive(Clone, Debug, Default)]
struct Filter(Option<Vec<String>>);

impl Filter {
    fn posts(&self, kind: &str, fields: &Value) -> bool {
        if NOT_POSTED.contains(&kind) || routine(kind, fields) {
            return false;
        }
        let Some(chosen) = &self.0 else {
            return true;
        };
        let named = if KINDS.contains(&kind) {
            kind
        } else {
            "script"
        };
        chosen.iter().any(|c| c == named)
    }
}

/// A check that found nothing wrong, repeated every interval of a canary watch or a post-upgrade
/// analysis (a day's watch is hundreds): the channel hears when a watch starts and ends, and any check
/// whose verdict is not "ok".
fn routine(kind: &str, fields: &Value) -> bool {
    matches!(kind, "canary_check" | "analysis_check") && fields["verdict"] == "ok"
}

/// Checks a webhook URL: http or https, a host, nothing that cannot be sent. The message shows the URL
/// redacted, since its path may be the secret.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let shown = redact(url);
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "webhook `{shown}` contains a space or control character"
        ));
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("webhook `{shown}` is not a URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!(
            "webhook `{shown}` must be an http:// or https:// URL, not {}:",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("webhook `{shown}` has no host"));
    }
    if u.fragment().is_some() {
        return Err(format!(
            "webhook `{shown}` has a #fragment, which is never sent to the server: remove it"
        ));
    }
    Ok(u)
}

/// How a webhook URL is shown and journaled: scheme, host and port, and `/…` when anything followed
/// (user, path or query), since that is where receivers keep their tokens.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = u.path() != "/"
                || u.query().is_some()
                || !u.username().is_empty()
                || u.password().is_some();
            format!(
                "{}://{}{port}/{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                if hidden { "…" } else { "" }
            )
        }
        _ => match url.split_once("://") {
            Some((scheme, _)) if scheme.len() < 16 => format!("{scheme}://…"),
            _ => "…".into(),
        },
    }
}

/// The receivers of one run, fed by `listener`.
pub struct Notifier {
    receivers: Vec<Receiver>,
    queues: Queues,
    filter: Filter,
    tokio: tokio::runtime::Handle,
    journal: Journal,
    /// Filled from `run_start`, so every payload names its run and cluster.
    run: Arc<Mutex<RunFacts>>,
}

#[derive(Default, Clone)]
struct RunFacts {
    run_id: String,
    cluster: String,
    script: String,
}

struct Receiver {
    shown: String,
    task: Option<tokio::task::JoinHandle<()>>,
    state: Arc<ReceiverState>,
}

/// Each receiver's queue, shared by the listener and `finish`, which empties it to close the queues
/// while the listener still lives in the engine.
type Queues = Arc<Mutex<Vec<(tokio::sync::mpsc::Sender<Value>, Arc<ReceiverState>)>>>;

#[derive(Default)]
struct ReceiverState {
    queued: AtomicUsize,
    delivered: AtomicUsize,
    /// Set by whoever reported the receiver's first failure: one warning per receiver, not per event.
    warned: AtomicBool,
    /// The last event's retries all failed: later events get one post each until one is delivered, so a
    /// receiver that is down costs a post per event, not a round of retries per event.
    down: AtomicBool,
    /// Why the latest post failed, and how many posts the event in hand has had: what `finish` reports
    /// of a receiver it gives up on in the middle of retrying.
    last_error: Mutex<Option<String>>,
    attempts: AtomicUsize,
}

impl ReceiverState {
    /// The first failure of a receiver: a warning on stderr and a `notify_failed` journal record.
    fn fail_once(
        &self,
        shown: &str,
        error: &str,
        attempts: usize,
        event: Option<&str>,
        journal: &Journal,
    ) {
        if self.warned.swap(true, Ordering::SeqCst) {
            return;
        }
        let tries = if attempts > 1 {
            format!(" ({attempts} attempts)")
        } else {
            String::new()
        };
        Output::new().warn(&format!(
            "webhook {shown}: {error}{tries}; the run goes on without waiting for it (further failures of this receiver are not reported one by one)"
        ));
        journal.event(
            "notify_failed",
            &json!({ "url": shown, "error": error, "attempts": attempts, "posting": event }),
        );
    }
}

impl Notifier {
    /// Starts one posting task per receiver on `tokio`. `urls` must have passed `check_url`, `kinds`
    /// (`None`: every kind) `check_kinds`.
    pub fn start(
        urls: &[String],
        kinds: Option<&[String]>,
        tokio: tokio::runtime::Handle,
        journal: Journal,
    ) -> Notifier {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(POST_TIMEOUT)
            // A redirect would carry the payload somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut queues = Vec::new();
        let receivers = urls
            .iter()
            // The same receiver named on the command line and in the inventory is told once.
            .filter(|u| seen.insert(u.as_str()))
            .map(|url| {
                let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
                let state = Arc::new(ReceiverState::default());
                let shown = redact(url);
                let task = tokio.spawn(post_all(
                    client.clone(),
                    url.clone(),
                    shown.clone(),
                    rx,
                    state.clone(),
                    journal.clone(),
                ));
                queues.push((tx, state.clone()));
                Receiver {
                    shown,
                    task: Some(task),
                    state,
                }
            })
            .collect();
        Notifier {
            receivers,
            queues: Arc::new(Mutex::new(queues)),
            filter: Filter(kinds.map(<[String]>::to_vec)),
            tokio,
            journal,
            run: Arc::new(Mutex::new(RunFacts::default())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// A listener for `Ctx::listeners`: builds the payload and queues it for every receiver, never
    /// waiting. A full queue drops the event (counted as undelivered).
    pub fn listener(&self) -> Listener {
        let queues = self.queues.clone();
        let run = self.run.clone();
        let filter = self.filter.clone();
        Box::new(move |kind: &str, fields: &Value| {
            // Facts first: a `run_start` that is not posted still names the run in later payloads.
            let facts = {
                let mut facts = run.lock().unwrap_or_else(|p| p.into_inner());
                if kind == "run_start" {
                    let s = |k: &str| fields[k].as_str().unwrap_or_default().to_string();
                    *facts = RunFacts {
                        run_id: s("run_id"),
                        cluster: s("cluster"),
                        script: s("script"),
                    };
                }
                facts.clone()
            };
            if !filter.posts(kind, fields) {
                return;
            }
            let body = payload(&facts, kind, fields);
            for (q, state) in queues.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                state.queued.fetch_add(1, Ordering::SeqCst);
                // Full or closed: the event is lost for this receiver and shows in the final count.
                let _ = q.try_send(body.clone());
            }
        })
    }

    /// At the end of the run (after `run_end` was queued): waits at most `DRAIN_TIMEOUT` in all for the
    /// queues to empty, retries included, then gives up on what is left (a post in flight or a retry
    /// waiting its turn among it) and says how many events each receiver missed.
    pub fn finish(mut self) {
        // Closing the queues lets each task end once it has posted what is in its own.
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        for r in &mut self.receivers {
            if let Some(task) = r.task.take() {
                let abort = task.abort_handle();
                let done = self
                    .tokio
                    .block_on(async { tokio::time::timeout_at(deadline, task).await.is_ok() });
                if !done {
                    abort.abort();
                }
            }
        }
        for r in &self.receivers {
            let queued = r.state.queued.load(Ordering::SeqCst);
            let delivered = r.state.delivered.load(Ordering::SeqCst);
            let missed = queued.saturating_sub(delivered);
            if missed == 0 {
                continue;
            }
            let counts = format!("{missed} of {queued} events not delivered");
            if r.state.warned.load(Ordering::SeqCst) {
                Output::new().info(&format!("webhook {}: {counts}", r.shown));
            } else {
                // Nothing failed for good: the receiver was still busy with a post, or the post was
                // still being retried, when time ran out.
                let drain = human_duration(DRAIN_TIMEOUT);
                let last = r
                    .state
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let why = match last {
                    Some(e) => {
                        format!(
                            "{e}, and still being retried when the run ended ({drain} to drain)"
                        )
                    }
                    None => format!("no answer before the end of the run ({drain} to drain)"),
                };
                r.state.fail_once(
                    &r.shown,
                    &format!("{why}; {counts}"),
                    r.state.attempts.load(Ordering::SeqCst),
                    None,
                    &self.journal,
                );
            }
            self.journal.event(
                "notify_undelivered",
                &json!({ "url": r.shown, "undelivered": missed, "events": queued }),
            );
        }
    }
}

/// One receiver's task: posts its events in order until its queue closes, each until it is delivered,
/// fails in a way a retry cannot mend, or has used its retries (`post`).
async fn post_all(
    client: reqwest::Client,
    url: String,
    shown: String,
    mut rx: tokio::sync::mpsc::Receiver<Value>,
    state: Arc<ReceiverState>,
    journal: Journal,
) {
    while let Some(body) = rx.recv().await {
        match post(&client, &url, &body, &state).await {
            Ok(()) => {
                state.delivered.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                let attempts = state.attempts.load(Ordering::SeqCst);
                state.fail_once(&shown, &e, attempts, body["event"].as_str(), &journal);
            }
        }
    }
}

/// Posts one event: again after a 5xx, a connection error or a timeout, up to `ATTEMPTS` posts within
/// `RETRY_WITHIN`, waiting `backoff` between them; never again after any other answer (a 4xx says the
/// post itself is wrong, and a redirect is not followed). A receiver that is `down` gets one post.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    state: &ReceiverState,
) -> Result<(), String> {
    let first = Instant::now();
    let attempts = if state.down.load(Ordering::SeqCst) {
        1
    } else {
        ATTEMPTS
    };
    let mut attempt = 1;
    loop {
        state.attempts.store(attempt as usize, Ordering::SeqCst);
        // The last post of the round gets only what is left of it.
        let within = POST_TIMEOUT.min(RETRY_WITHIN.saturating_sub(first.elapsed()));
        let started = Instant::now();
        let result = client.post(url).json(body).timeout(within).send().await;
        let (error, again) = match result {
            Ok(resp) if resp.status().is_success() => {
                *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                state.down.store(false, Ordering::SeqCst);
                return Ok(());
            }
            Ok(resp) => (
                format!("HTTP {}", resp.status()),
                resp.status().is_server_error(),
            ),
            // A request that could not even be built is the same on every try.
            Err(e) => {
                let again = !e.is_builder();
                (describe(e, started.elapsed()), again)
            }
        };
        *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        if !again {
            return Err(error);
        }
        let wait = backoff(attempt, fastrand::f64());
        if attempt >= attempts || first.elapsed() + wait >= RETRY_WITHIN {
            state.down.store(true, Ordering::SeqCst);
            return Err(error);
        }
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// The wait before post `attempt + 1`: `FIRST_BACKOFF` doubled for each post before, drawn between half
/// and all of that by `jitter` (in 0..1).
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let full = FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1)).min(64);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// Why a post failed, without the URL reqwest would put in its message.
fn describe(e: reqwest::Error, took: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", human_duration(took));
    }
    let e = e.without_url();
    let io = crate::error::chain(&e).find_map(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(std::io::ErrorKind::TimedOut) => {
            format!("no answer within {}", human_duration(took))
        }
        _ => crate::error::root_cause(&e),
    }
}

/// The JSON posted for one event: `{run_id, cluster, event, time, text, ...fields}`.
fn payload(run: &RunFacts, kind: &str, fields: &Value) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut body = json!({
        "run_id": run.run_id,
        "cluster": run.cluster,
        "event": kind,
        "time": journal::rfc3339(now),
        "text": text(run, kind, fields),
    });
    if let (Value::Object(b), Value::Object(f)) = (&mut body, fields) {
        for (k, v) in f {
            // A `--set` value or the command line may carry a key or a URL the operator passed to the
            // script: they stay in the journal on this machine and are not posted.
            if kind == "run_start" && matches!(k.as_str(), "options" | "command_line") {
                continue;
            }
            // The run's own facts win over a field of the same name.
            b.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    // An event's message may quote a server's answer that echoed the admin token.
    crate::secret::redact_json(&mut body);
    body
}

/// How the cluster is named in a one-line text: the inventory's file name, not its full path.
fn cluster_short(cluster: &str) -> String {
    if cluster.is_empty() {
        return "no cluster".into();
    }
    if cluster.starts_with('<') {
        return cluster.trim_matches(['<', '>']).to_string();
    }
    std::path::Path::new(cluster)
        .file_name()
        .map_or_else(|| cluster.to_string(), |f| f.to_string_lossy().into_owned())
}

fn script_short(script: &str) -> &str {
    script.strip_prefix("<stock>/").unwrap_or(script)
}

fn ms(fields: &Value) -> String {
    human_duration(Duration::from_millis(
        fields["duration_ms"].as_u64().unwrap_or(0),
    ))
}

/// `prefix` and `value`, or nothing when there is no value.
fn words(prefix: &str, value: &str) -> String {
    if value.is_empty() {
        String::new()
    } else {
        format!("{prefix}{value}")
    }
}

/// The first line of `text`, with `…` when more followed.
fn first_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

/// The one-line summary of an event, for a chat channel.
fn text(run: &RunFacts, kind: &str, f: &Value) -> String {
    let head = format!("neumann-script run {}", run.run_id);
    let on = cluster_short(&run.cluster);
    // A script error's message goes on with the source line and a caret: the channel gets its first line.
    let s = |k: &str| first_line(f[k].as_str().unwrap_or_default());
    match kind {
        "run_start" => {
            let args: Vec<&str> = f["args"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut what = script_short(&run.script).to_string();
            if !args.is_empty() {
                what = format!("{what} {}", args.join(" "));
            }
            let by = match (s("user"), s("host")) {
                (u, h) if h.is_empty() => u,
                (u, h) => format!("{u}@{h}"),
            };
            format!("{head}: started `{what}` on {on} by {by}")
        }
        "step_start" => format!("{head}: step `{}` started on {on}", s("name")),
        "step_end" if s("result") == "ok" => {
            format!("{head}: step `{}` done in {} on {on}", s("name"), ms(f))
        }
        "step_end" => format!(
            "{head}: step `{}` failed after {} on {on}: {}",
            s("name"),
            ms(f),
            s("error")
        ),
        "run_end" => {
            let script = script_short(&run.script);
            let message = s("message");
            match s("result").as_str() {
                "done" => format!("{head}: `{script}` done in {} on {on}", ms(f)),
                "stopped" => {
                    let why = message.strip_prefix("stopped safely: ").unwrap_or(&message);
                    format!(
                        "{head}: stopped safely: {why} (`{script}` on {on}, after {})",
                        ms(f)
                    )
                }
                "interrupted" => format!(
                    "{head}: `{script}` interrupted after {} on {on} (exit {})",
                    ms(f),
                    f["exit_code"]
                ),
                "usage" => format!("{head}: `{script}` did not run on {on}: {message}"),
                _ => format!(
                    "{head}: `{script}` failed after {} on {on}: {message}",
                    ms(f)
                ),
            }
        }
        // The gate's `resume` is there when the run waits for one from any terminal: the channel gets
        // the command to paste.
        "gate" => {
            let resume = s("resume");
            let waits = if resume.is_empty() {
                String::new()
            } else {
                format!("; the run waits: resume it with `{resume}`")
            };
            format!("{head}: gate on {on}: {}{waits}", s("reason"))
        }
        "paused" => format!(
            "{head}: paused on {on}{}{}{}",
            words(" at ", &s("at")),
            // A gate pauses the run itself: its `at` already says so.
            words(" by ", &s("by")).replace(" by gate", ""),
            words(": ", &s("reason"))
        ),
        "resumed" => format!("{head}: resumed on {on}{}", words(" by ", &s("by"))),
        "abort" => format!(
            "{head}: aborting on {on}{}{}{}",
            words(" at ", &s("at")),
            words(" as asked by ", &s("by")),
            words(": ", &s("reason"))
        ),
        // Other kinds (the canary's, a script's own `journal::event`, any added later): the kind in words
        // and its plain fields; maps and lists stay in the payload.
        other => {
            let mut line = format!("{head}: {} on {on}", other.replace('_', " "));
            if let Value::Object(m) = f {
                for (key, v) in m {
                    let v = match v {
                        Value::String(v) => first_line(v),
                        Value::Number(n) => match n.as_f64() {
                            Some(f) if n.is_f64() => format!("{f:.1}"),
                            _ => n.to_string(),
                        },
                        Value::Bool(_) => v.to_string(),
                        _ => continue,
                    };
                    if v.is_empty() || matches!(key.as_str(), "run_id" | "cluster" | "time") {
                        continue;
                    }
                    let v: String = match v.char_indices().nth(120) {
                        Some((cut, _)) => format!("{} …", &v[..cut]),
                        None => v,
                    };
                    line.push_str(&format!("; {key}: {v}"));
                }
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_secrets() {
        assert!(check_url("https://hooks.slack.com/services/T0/B0/secret").is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook?token=x").is_ok());
        for (bad, want) in [
            ("ftp://example.com/x", "http:// or https://"),
            ("hooks.slack.com/services/x", "not a URL"),
            ("https://exa mple.com/", "space"),
            ("https://example.com/a#frag", "fragment"),
            ("file:///etc/passwd", "http:// or https://"),
        ] {
            let e = check_url(bad).expect_err(bad);
            assert!(e.contains(want), "{bad}: {e}");
        }
        let e = check_url("ftp://user:pw@example.com/T0/secret").unwrap_err();
        assert!(!e.contains("secret") && !e.contains("pw"), "{e}");
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://u:p@10.0.0.1:8080/"),
            "http://10.0.0.1:8080/…"
        );
        assert_eq!(redact("http://10.0.0.1:8080"), "http://10.0.0.1:8080/");
        assert_eq!(redact("http://h/?token=abc"), "http://h/…");
    }

    #[test]
    fn texts_read_as_one_line() {
        let run = RunFacts {
            run_id: "20261125T151500Z-3f2a".into(),
            cluster: "/etc/neumann/prod.toml".into(),
            script: "<stock>/rolling_upgrade.rhai".into(),
        };
        let t = text(
            &run,
            "step_end",
            &json!({"name": "upgrade follower node2 (1/3)", "result": "ok", "duration_ms": 8100}),
        );
        assert_eq!(
            t,
            "neumann-script run 20261125T151500Z-3f2a: step `upgrade follower node2 (1/3)` done in 8.1 s on prod.toml"
        );
        let t = text(
            &run,
            "run_end",
            &json!({"result": "stopped", "message": "stopped safely: node3 is down", "duration_ms": 61_000}),
        );
        assert!(t.contains(": stopped safely: node3 is down (`rolling_upgrade.rhai` on prod.toml, after 1 min 1 s)"), "{t}");
        let t = text(&run, "paused", &json!({"by": "ops@h", "reason": "lunch"}));
        assert!(t.ends_with(": paused on prod.toml by ops@h: lunch"), "{t}");
        let t = text(
            &run,
            "paused",
            &json!({"by": "gate", "at": "gate \"x\"", "reason": "x"}),
        );
        assert!(t.ends_with(": paused on prod.toml at gate \"x\": x"), "{t}");
        let t = text(
            &run,
            "canary_end",
            &json!({"canary": "node2", "checks": 12, "figures": {"a": 1}, "verdict": "rollback\nmore"}),
        );
        assert!(
            t.ends_with(
                ": canary end on prod.toml; canary: node2; checks: 12; verdict: rollback …"
            ),
            "{t}"
        );
        assert!(!t.contains('\n'));
        let t = text(
            &run,
            "run_end",
            &json!({"result": "script error", "message": "up.rhai:3:5: boom\n  3 | fail(\"boom\")\n    ^", "duration_ms": 10}),
        );
        assert!(
            t.ends_with("failed after 10 ms on prod.toml: up.rhai:3:5: boom …"),
            "{t}"
        );
    }

    #[test]
    fn the_listener_feeds_skip_calls_and_waits() {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let n = Notifier::start(
            &["http://127.0.0.1:9/".into()],
            None,
            tokio.handle().clone(),
            Journal::off(),
        );
        let listen = n.listener();
        listen("op", &json!({"op": "node::stop"}));
        listen("wait", &json!({"what": "healthy"}));
        assert_eq!(n.receivers[0].state.queued.load(Ordering::SeqCst), 0);
        listen("canary_check", &json!({"verdict": "ok"}));
        listen("analysis_check", &json!({"verdict": "ok"}));
        assert_eq!(n.receivers[0].state.queued.load(Ordering::SeqCst), 0);
        listen("step_start", &json!({"name": "x"}));
        listen("gate", &json!({"reason": "y"}));
        listen("canary_check", &json!({"verdict": "rollback"}));
        listen("analysis_check", &json!({"verdict": "failed"}));
        assert_eq!(n.receivers[0].state.queued.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_choice_of_kinds_is_checked_and_filters() {
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_kinds(&k(&["run_start", "gate", "script"])), Ok(()));
        let e = check_kinds(&k(&["run_start", "step_ended"])).unwrap_err();
        assert!(
            e.contains("unknown event kind `step_ended` (did you mean `step_end`?)")
                && e.contains("run_start, recovered, step_start"),
            "{e}"
        );
        assert!(check_kinds(&[]).unwrap_err().contains("no event kind"));
        let all = Filter(None);
        let some = Filter(Some(k(&["gate", "canary_check", "script"])));
        let v = json!({});
        for (kind, by_all, by_some) in [
            ("run_start", true, false),
            ("gate", true, true),
            ("probe_failed", true, true),
            ("op", false, false),
            ("wait", false, false),
        ] {
            assert_eq!(all.posts(kind, &v), by_all, "{kind}");
            assert_eq!(some.posts(kind, &v), by_some, "{kind}");
        }
        // Routine checks stay out even when their kind is chosen.
        assert!(!some.posts("canary_check", &json!({"verdict": "ok"})));
        assert!(some.posts("canary_check", &json!({"verdict": "rollback"})));
        assert!(!Filter(Some(k(&["gate"]))).posts("probe_failed", &v));
    }

    #[test]
    fn backoff_doubles_within_its_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, 0.5), Duration::from_millis(375));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(1000));
        // Every wait of a round together stays far inside the time one event may take.
        let most: Duration = (1..ATTEMPTS).map(|a| backoff(a, 1.0)).sum();
        assert!(most < RETRY_WITHIN / 4, "{most:?}");
        assert!(backoff(40, 1.0) <= FIRST_BACKOFF * 64);
    }

    #[test]
    fn a_gate_that_waits_tells_how_to_resume() {
        let run = RunFacts {
            run_id: "r1".into(),
            cluster: "/etc/neumann/prod.toml".into(),
            script: "s".into(),
        };
        let cmd = "neumann-script --cluster /etc/neumann/prod.toml resume";
        let t = text(
            &run,
            "gate",
            &json!({"reason": "dashboards", "resume": cmd}),
        );
        assert!(
            t.ends_with(&format!(
                ": gate on prod.toml: dashboards; the run waits: resume it with `{cmd}`"
            )),
            "{t}"
        );
        let t = text(&run, "gate", &json!({"reason": "dashboards"}));
        assert!(t.ends_with(": gate on prod.toml: dashboards"), "{t}");
    }

    #[test]
    fn payloads_carry_the_run_and_the_fields() {
        let run = RunFacts {
            run_id: "r1".into(),
            cluster: "c".into(),
            script: "s".into(),
        };
        let p = payload(&run, "step_start", &json!({"name": "x", "run_id": "other"}));
        assert_eq!(p["run_id"], "r1");
        assert_eq!(p["event"], "step_start");
        assert_eq!(p["name"], "x");
        assert!(p["time"].as_str().unwrap().ends_with('Z'));
        assert!(p["text"].as_str().unwrap().contains("step `x` started"));
    }
}
