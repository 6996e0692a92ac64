//! `status --watch`: the status page, looked at again every second, until the run holding the lease
//! ends. At a terminal the page is redrawn in place, cut to the window; otherwise a new page is printed
//! each time something other than the clock changed, and with `--format json` one document per line.
//! Nothing here changes the cluster: Ctrl-C stops watching, not the run.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::read::{snapshot, Snapshot};
use super::view::{self, Look};
use crate::cluster::Cluster;
use crate::error::Error;
use crate::files;
use crate::interrupt;
use crate::journal;
use crate::lease;
use crate::output::{self, clock, human_duration, out, outln, Format};
use crate::session::RunOptions;
use crate::transport::admin::LeaseRecord;

/// How often the cluster is looked at: a paused run reads its lease as often, so a resume shows within
/// about a second either way.
const EVERY: Duration = Duration::from_secs(1);

/// How long the run's own record of how it ended is waited for once it gave the lease back: it writes
/// that record after closing its connections.
const END_RECORD_WITHIN: Duration = Duration::from_secs(10);

/// How far back the journal is read for the run's records: a run still holding a lease is recent.
const JOURNAL_LINES: usize = 20_000;

/// Exit code when stdout's reader went away (`| head`): 128 + SIGPIPE, as a shell reports a process
/// that SIGPIPE ended.
const READER_GONE: i32 = 141;

/// How the run being watched stopped holding the lease.
enum Ending {
    /// The lease is free: the run gave it back, or stopped renewing it and it expired.
    Released,
    /// Another run holds the lease now.
    Replaced(Box<LeaseRecord>),
    /// It still holds the lease, but its process on this machine is gone.
    ProcessGone,
}

/// Watches until the run holding the lease (or, when none does, the next one to take it) ends; the exit
/// code is 0 then, or the signal's when the operator stops watching first.
pub(super) fn watch(
    tokio: &tokio::runtime::Runtime,
    cluster: &Cluster,
    name: &str,
    run: &RunOptions,
    wide: bool,
) -> Result<i32, Error> {
    let json = run.format == Format::Json;
    let mut page = if json {
        Page::Json
    } else if std::io::stdout().is_terminal() {
        Page::Screen
    } else {
        Page::Blocks
    };
    let journal = run.journal.clone().or_else(journal::default_path);
    let flag = view::cluster_flag(name);
    tokio.block_on(async {
        let signal = interrupt::next_signal();
        tokio::pin!(signal);
        let mut followed: Option<LeaseRecord> = None;
        let mut last: Option<Snapshot> = None;
        let mut shown: Option<Value> = None;
        loop {
            let looked = tokio::select! {
                r = snapshot(cluster, name) => r,
                sig = &mut signal => return Ok(page.quit(sig)),
            };
            let failing = match looked {
                Ok(s) => {
                    last = Some(s);
                    None
                }
                // The first look failing is `status` failing: the wrong inventory, most likely.
                Err(e) if last.is_none() => return Err(e),
                Err(e) => Some(e.to_string()),
            };
            let Some(snap) = last.as_ref() else {
                continue;
            };
            // A stale look decides nothing: the run is taken to go on until the cluster says otherwise.
            let ending = if failing.is_some() {
                None
            } else {
                follow(&mut followed, snap.lease.record().0)
            };
            let look = Look {
                name,
                snap,
                inventory: &cluster.inventory,
                wide,
            };
            // In JSON the ending's document, with `ended`, is the last look's too.
            if ending.is_none() || !matches!(page, Page::Json) {
                page.show(
                    &look,
                    &flag,
                    followed.as_ref(),
                    failing.as_deref(),
                    &mut shown,
                );
            }
            if let Some((ran, ending)) = ending {
                let how = tokio::select! {
                    how = how_it_ended(journal.as_deref(), &ran, &ending) => how,
                    sig = &mut signal => return Ok(page.quit(sig)),
                };
                page.end(&look, &ran, &ending, &how);
                // The run's own exit code, so `status -w && next-step` goes on only after a run that
                // finished; a run whose end this journal does not hold cannot vouch for itself.
                return Ok(how
                    .as_ref()
                    .and_then(|end| end["exit_code"].as_i64())
                    .map_or(UNKNOWN_END, |code| code as i32));
            }
            if output::stdout_gone() {
                return Ok(READER_GONE);
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                sig = &mut signal => return Ok(page.quit(sig)),
            }
        }
    })
}

/// Follows the run holding the lease now: the first one seen is the one watched, kept up to date. When
/// the lease no longer names it (or its process here is gone), that run as last seen and how it ended.
fn follow(
    followed: &mut Option<LeaseRecord>,
    current: Option<&LeaseRecord>,
) -> Option<(LeaseRecord, Ending)> {
    let Some(f) = followed.clone() else {
        *followed = current.cloned();
        return None;
    };
    match current {
        Some(c) if c.run_id == f.run_id => {
            *followed = Some(c.clone());
            (lease::alive_here(&c.holder) == Some(false)).then(|| (c.clone(), Ending::ProcessGone))
        }
        Some(c) => Some((f, Ending::Replaced(Box::new(c.clone())))),
        None => Some((f, Ending::Released)),
    }
}

/// How the run ended, as its journal's `run_end` says: found when the run journaled on this machine
/// (the watch reads `--journal FILE` or the default journal). A run that gave the lease back writes that
/// record a moment later, so it is waited for while the run's own records are here and it has not ended.
/// The exit code of a watch whose run's end is not in this journal (it ran on another machine, or kept
/// no journal): not 0, since nothing here says it finished.
const UNKNOWN_END: i32 = 1;

async fn how_it_ended(path: Option<&Path>, ran: &LeaseRecord, ending: &Ending) -> Option<Value> {
    let path = path?.to_path_buf();
    let deadline = tokio::time::Instant::now() + END_RECORD_WITHIN;
    loop {
        let run_id = ran.run_id.clone();
        let p = path.clone();
        let found = tokio::task::spawn_blocking(move || run_records(&p, &run_id))
            .await
            .unwrap_or(Journaled::Nothing);
        match found {
            Journaled::Ended(end) => return Some(end),
            Journaled::Nothing => return None,
            Journaled::Started => {}
        }
        let waiting = matches!(ending, Ending::Released | Ending::Replaced(_))
            && lease::alive_here(&ran.holder) != Some(false);
        if !waiting || tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

enum Journaled {
    /// The run's `run_end` record.
    Ended(Value),
    /// Records of the run, but no end yet.
    Started,
    /// Nothing of the run in this journal.
    Nothing,
}

/// The run's records in the journal at `path`, read from its end back to the run's `run_start`.
fn run_records(path: &Path, run_id: &str) -> Journaled {
    let Ok(file) = files::open_regular(path, std::fs::OpenOptions::new().read(true)) else {
        return Journaled::Nothing;
    };
    let Ok(lines) = files::lines_backwards(file, files::MAX_RECORD) else {
        return Journaled::Nothing;
    };
    let mut seen = false;
    for line in lines.take(JOURNAL_LINES) {
        let Ok(files::Line::Text(line)) = line else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if rec.get("run_id").and_then(Value::as_str) != Some(run_id) {
            continue;
        }
        match rec.get("event").and_then(Value::as_str) {
            Some("run_end") => return Journaled::Ended(rec),
            Some("run_start") => return Journaled::Started,
            _ => seen = true,
        }
    }
    if seen {
        Journaled::Started
    } else {
        Journaled::Nothing
    }
}

/// The sentences that say how the run ended.
fn ending_lines(
    look: &Look,
    ran: &LeaseRecord,
    ending: &Ending,
    how: Option<&Value>,
) -> Vec<String> {
    let mut what = ran.script.clone();
    for a in &ran.args {
        what.push(' ');
        what.push_str(a);
    }
    let mut out = vec![];
    let first = match how {
        Some(end) => {
            let result = end.get("result").and_then(Value::as_str).unwrap_or("ended");
            let code = end
                .get("exit_code")
                .and_then(Value::as_i64)
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default();
            let took = end
                .get("duration_ms")
                .and_then(Value::as_u64)
                .map(|ms| format!(" after {}", human_duration(Duration::from_millis(ms))))
                .unwrap_or_default();
            let message = end
                .get("message")
                .and_then(Value::as_str)
                .map(|m| format!(": {}", m.lines().next().unwrap_or_default()))
                .unwrap_or_default();
            let word = match result {
                "done" => "done",
                "stopped" => "stopped safely",
                "interrupted" => "interrupted",
                "usage" => "refused its arguments",
                _ => "failed",
            };
            format!("the run ended: {word}{code}{took}{message} (run {})", ran.run_id)
        }
        None => match ending {
            Ending::ProcessGone => format!(
                "the run ended: its process is no longer running on this machine, and it did not give the lease back (killed, or the machine restarted); the lease expires on its own, and the next run from this machine takes it over and first finishes what this one left (run {})",
                ran.run_id
            ),
            _ => format!(
                "the run ended: it no longer holds the cluster's lease (run {}); how it ended is in its own output and its journal on {} (neumann-script audit show {})",
                ran.run_id,
                ran.holder.split(" pid ").next().unwrap_or(&ran.holder),
                ran.run_id
            ),
        },
    };
    out.push(first);
    if let Ending::Replaced(next) = ending {
        out.push(format!(
            "another run holds the lease now: {}",
            lease::describe(next)
        ));
    }
    if let Some((target, done, left)) = view::progress(ran, &look.snap.health) {
        out.push(format!(
            "`{what}`: {}",
            view::progress_line(&target, &done, &left)
        ));
    }
    out
}

/// Where the pages go.
enum Page {
    /// A terminal: redrawn in place.
    Screen,
    /// A pipe or file: a new page on each change.
    Blocks,
    /// One JSON document per line on each change.
    Json,
}

impl Page {
    fn show(
        &mut self,
        look: &Look,
        flag: &str,
        followed: Option<&LeaseRecord>,
        failing: Option<&str>,
        shown: &mut Option<Value>,
    ) {
        let mut doc = view::json(look);
        if let Some(e) = failing {
            doc["error"] = json!(e);
        }
        let key = view::change_key(&doc);
        let changed = shown.as_ref() != Some(&key);
        *shown = Some(key);
        match self {
            Page::Json => {
                if changed {
                    doc["at"] = json!(look.snap.at);
                    outln!("{}", serde_json::to_string(&doc).unwrap_or_default());
                }
            }
            Page::Blocks => {
                if changed {
                    outln!("--- {} UTC", clock());
                    for line in page_lines(look, flag, followed, failing, false) {
                        outln!("{line}");
                    }
                    outln!("");
                }
            }
            Page::Screen => draw(&page_lines(look, flag, followed, failing, true)),
        }
    }

    fn end(&mut self, look: &Look, ran: &LeaseRecord, ending: &Ending, how: &Option<Value>) {
        let lines = ending_lines(look, ran, ending, how.as_ref());
        match self {
            Page::Json => {
                let mut doc = view::json(look);
                doc["at"] = json!(look.snap.at);
                doc["ended"] = json!({
                    "run_id": ran.run_id,
                    "result": how.as_ref().and_then(|h| h.get("result")).cloned(),
                    "exit_code": how.as_ref().and_then(|h| h.get("exit_code")).cloned(),
                    "message": how.as_ref().and_then(|h| h.get("message")).cloned(),
                    "lease": match ending {
                        Ending::Released => "free",
                        Ending::Replaced(_) => "held by another run",
                        Ending::ProcessGone => "held by a process that is gone",
                    },
                    "said": lines.first(),
                });
                outln!("{}", serde_json::to_string(&doc).unwrap_or_default());
            }
            Page::Screen => {
                outln!("");
                for line in lines {
                    outln!("{line}");
                }
            }
            Page::Blocks => {
                for line in lines {
                    outln!("{line}");
                }
            }
        }
    }

    /// The operator stopped watching: nothing more is said, the page stays as it was.
    fn quit(&self, sig: interrupt::Signal) -> i32 {
        if matches!(self, Page::Screen) {
            // The cursor is at the end of the page, on its last line: the shell's prompt goes below it.
            outln!("");
        }
        sig.exit_code()
    }
}

/// The status page with what a watch adds: when it was looked at (on a screen, where the page stays
/// while the clock moves), a look that failed, a wait for a run.
fn page_lines(
    look: &Look,
    flag: &str,
    followed: Option<&LeaseRecord>,
    failing: Option<&str>,
    screen: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    if screen {
        lines.push(format!(
            "status --watch: every {} s, last look {} UTC; Ctrl-C stops watching (the run goes on)",
            EVERY.as_secs(),
            clock()
        ));
    }
    if let Some(e) = failing {
        lines.push(format!(
            "cannot look at the cluster now ({e}); showing the last look, trying again"
        ));
    }
    if !lines.is_empty() {
        lines.push(String::new());
    }
    let waiting = followed.is_none() && look.snap.lease.record().0.is_none();
    lines.extend(view::text(look, flag, waiting));
    lines
}

/// Redraws the page from the top of the window, each line cut to its width; a page taller than the
/// window loses the lines that do not fit, said in its last line.
fn draw(lines: &[String]) {
    let (rows, cols) = console::Term::stdout()
        .size_checked()
        .map(|(r, c)| (usize::from(r), usize::from(c)))
        .unwrap_or((24, 80));
    // One row is left for the cursor, so the page never scrolls the window.
    let room = rows.saturating_sub(1).max(1);
    let mut shown: Vec<String> = lines.iter().take(room).cloned().collect();
    if lines.len() > room {
        let hidden = lines.len() - room + 1;
        if let Some(last) = shown.last_mut() {
            *last = format!("… {hidden} more lines: a taller window shows them");
        }
    }
    let mut frame = String::from("\x1b[H");
    for line in &shown {
        frame.push_str(&console::truncate_str(line, cols, "…"));
        frame.push_str("\x1b[K\n");
    }
    frame.push_str("\x1b[J");
    out!("{frame}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(run_id: &str) -> LeaseRecord {
        serde_json::from_value(json!({
            "run_id": run_id, "holder": "op@another-host pid 7", "script": "s.rhai", "ttl_secs": 30.0
        }))
        .unwrap()
    }

    #[test]
    fn the_first_run_seen_is_followed_to_its_end() {
        let mut f = None;
        assert!(follow(&mut f, None).is_none(), "no run yet: keep watching");
        assert!(follow(&mut f, Some(&record("a"))).is_none());
        assert!(follow(&mut f, Some(&record("a"))).is_none());
        assert!(matches!(
            follow(&mut f, Some(&record("b"))),
            Some((ran, Ending::Replaced(r))) if ran.run_id == "a" && r.run_id == "b"
        ));
        let mut f = Some(record("a"));
        assert!(matches!(follow(&mut f, None), Some((ran, Ending::Released)) if ran.run_id == "a"));
    }

    #[test]
    fn the_journal_says_how_the_run_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let lines = [
            json!({"event": "run_start", "run_id": "old"}),
            json!({"event": "run_end", "run_id": "old", "result": "done"}),
            json!({"event": "run_start", "run_id": "r1"}),
            json!({"event": "step_start", "run_id": "r1", "name": "x"}),
        ];
        let text = |ls: &[Value]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        std::fs::write(&path, text(&lines)).unwrap();
        assert!(matches!(run_records(&path, "r1"), Journaled::Started));
        assert!(matches!(
            run_records(&path, "elsewhere"),
            Journaled::Nothing
        ));
        let mut more = lines.to_vec();
        more.push(json!({"event": "run_end", "run_id": "r1", "result": "stopped", "exit_code": 3}));
        std::fs::write(&path, text(&more)).unwrap();
        match run_records(&path, "r1") {
            Journaled::Ended(v) => assert_eq!(v["exit_code"], 3),
            _ => panic!("the end was not found"),
        }
        assert!(matches!(
            run_records(&dir.path().join("missing"), "r1"),
            Journaled::Nothing
        ));
    }
}
