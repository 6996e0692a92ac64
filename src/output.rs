//! What the tool tells the operator while it works, on stderr (stdout belongs to the script's `print`).
//!
//! Every line carries the UTC time of day, so a log read after the fact says when each thing happened.
//! On a terminal, waits show a live line (what is awaited, elapsed time, the figure being watched);
//! otherwise a wait prints one line when it starts, one every 10 s while it lasts, and one when it ends.
//!
//! Nothing here panics on a failed write. `println!` does ("failed printing to stdout"), so a closed pipe
//! (`| head`) or a terminal gone after SIGHUP would kill a run with a node stopped; the program writes
//! through `out!`, `outln!`, `err!` and `errln!` instead, which drop what cannot be written (the journal
//! keeps the record).
//!
//! The questions the tool asks the operator are asked here too (`Output::confirm`), with the answer read
//! from the terminal (`typed_line`), so every question takes `--yes`, a missing terminal and a signal alike.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes to stdout, or to stderr when `to_stderr`; after the first failed write (`EPIPE` from a closed
/// pipe, `EIO` from a hung-up terminal) that stream is dropped for the rest of the run.
pub fn write(to_stderr: bool, args: std::fmt::Arguments<'_>) {
    // Every line the tool writes passes here: a secret echoed back by a server (in an error's body) is
    // removed before it reaches a terminal or a log.
    if crate::secret::any() {
        let text = args.to_string();
        return write_now(to_stderr, format_args!("{}", crate::secret::redact(&text)));
    }
    write_now(to_stderr, args);
}

fn write_now(to_stderr: bool, args: std::fmt::Arguments<'_>) {
    let gone = if to_stderr {
        &STDERR_GONE
    } else {
        &STDOUT_GONE
    };
    if gone.load(Ordering::Relaxed) {
        return;
    }
    let written = if to_stderr {
        std::io::stderr().lock().write_fmt(args)
    } else {
        let mut out = std::io::stdout().lock();
        // Flushed per write, so a closed pipe is found now and not at exit, where it would be lost.
        out.write_fmt(args).and_then(|()| out.flush())
    };
    if written.is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// True once a write to stdout has failed: its reader is gone.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// `print!` that never panics.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write(false, format_args!($($t)*)) };
}
/// `println!` that never panics.
macro_rules! outln {
    ($($t:tt)*) => { $crate::output::write(false, format_args!("{}\n", format_args!($($t)*))) };
}
/// `eprint!` that never panics.
macro_rules! err {
    ($($t:tt)*) => { $crate::output::write(true, format_args!($($t)*)) };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::write(true, format_args!("{}\n", format_args!($($t)*))) };
}
pub(crate) use {err, errln, out, outln};

use indicatif::{ProgressBar, ProgressStyle};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// "340 ms", "1.2 s", "2 min 5 s", "2 h 3 min".
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{} s", s.round())
        } else {
            format!("{s:.1} s")
        }
    } else if ms < 3_600_000 {
        let s = d.as_secs();
        format!("{} min {} s", s / 60, s % 60)
    } else {
        let m = d.as_secs() / 60;
        format!("{} h {} min", m / 60, m % 60)
    }
}

/// Unix seconds on this machine's wall clock.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// UTC time of day, HH:MM:SS.
pub fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Stdin and stderr are both a terminal: someone is there to see a question and answer it.
pub fn at_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// "y" or "yes", in any case, spaces around: the one line that answers yes.
pub fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// What ended a wait for a line typed at the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Line(String),
    /// Stdin is closed: Ctrl-D at the start of a line, or the terminal is gone.
    Closed,
    /// The wait's `stop` said so (a signal).
    Stopped,
    /// Nothing was typed within the time given.
    Nothing,
}

/// How often a wait for the terminal asks its `stop`.
const STOP_EVERY: Duration = Duration::from_millis(100);

/// The next line typed at the terminal, waiting at most `within` (`None`: as long as it takes), asking
/// `stop` every 100 ms. The line is read straight from stdin's descriptor a byte at a time once one is
/// there, so nothing past its end is taken: a line typed ahead stays for whoever reads next (the next
/// question, the REPL's line editor), and no thread is left blocked on the terminal when the wait ends
/// another way.
pub fn typed_line(stop: &dyn Fn() -> bool, within: Option<Duration>) -> std::io::Result<Typed> {
    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;

    let started = Instant::now();
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    loop {
        if stop() {
            return Ok(Typed::Stopped);
        }
        let left = within.map(|w| w.saturating_sub(started.elapsed()));
        if left == Some(Duration::ZERO) {
            return Ok(Typed::Nothing);
        }
        let wait = left.map_or(STOP_EVERY, |l| l.min(STOP_EVERY));
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        match poll(
            &mut [PollFd::new(fd, PollFlags::POLLIN)],
            PollTimeout::from(ms),
        ) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fd, &mut byte) {
            Ok(0) if line.is_empty() => return Ok(Typed::Closed),
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Typed::Line(String::from_utf8_lossy(&line).into_owned()))
}

/// How a question to the operator was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// The wait's `stop` ended it (a signal) before an answer came.
    Stopped,
}

/// Why a question could not be answered; the text says so.
#[derive(Debug, Clone, PartialEq)]
pub enum Unanswered {
    /// No terminal to ask on, and nothing answered for the operator.
    NoTerminal(String),
    /// The terminal could not be read.
    Unreadable(String),
}

/// The operator-facing log.
pub struct Output {
    live: bool,
    depth: Cell<usize>,
}

impl Default for Output {
    fn default() -> Self {
        Output::new()
    }
}

impl Output {
    pub fn new() -> Output {
        let live = std::io::stderr().is_terminal()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        Output {
            live,
            depth: Cell::new(0),
        }
    }

    fn indent(&self) -> String {
        "  ".repeat(self.depth.get())
    }

    fn emit(&self, text: &str) {
        for line in text.lines() {
            errln!("{}  {}{}", clock(), self.indent(), line);
        }
    }

    pub fn info(&self, msg: &str) {
        self.emit(msg);
    }

    pub fn warn(&self, msg: &str) {
        self.emit(&format!("warning: {msg}"));
    }

    /// Asks the operator a yes/no question: every confirmation goes through here (a script's `confirm()`,
    /// the question after a rehearsal). `answered`, why it is answered yes without asking (`--yes`, a
    /// simulated cluster), is said instead. Otherwise `QUESTION [y/N] ` goes to stderr and the line typed
    /// answers it: "y" or "yes" is yes, anything else no, a closed stdin too. With no terminal to ask on
    /// it is not asked. `stop` is asked every 100 ms while it waits: a signal ends the wait, not the
    /// next line typed.
    pub fn confirm(
        &self,
        question: &str,
        answered: Option<&str>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Answer, Unanswered> {
        if let Some(why) = answered {
            self.info(&format!("{question} yes ({why})"));
            return Ok(Answer::Yes);
        }
        if !at_terminal() {
            return Err(Unanswered::NoTerminal(format!(
                "`{question}` needs an answer and there is no terminal to ask on: \
                 re-run with --yes to answer yes"
            )));
        }
        // Through the output path like every other line: the question may quote an error.
        err!("{question} [y/N] ");
        match typed_line(stop, None) {
            Ok(Typed::Line(line)) if is_yes(&line) => Ok(Answer::Yes),
            Ok(Typed::Line(_) | Typed::Closed | Typed::Nothing) => Ok(Answer::No),
            Ok(Typed::Stopped) => Ok(Answer::Stopped),
            Err(e) => Err(Unanswered::Unreadable(format!(
                "cannot read the answer: {e}"
            ))),
        }
    }

    /// Opens a named step; lines until `step_end` are indented under it.
    pub fn step_begin(&self, name: &str) -> Instant {
        self.emit(&format!("▶ {name}"));
        self.depth.set(self.depth.get() + 1);
        Instant::now()
    }

    pub fn step_end(&self, name: &str, started: Instant, error: Option<&str>) {
        self.depth.set(self.depth.get().saturating_sub(1));
        let took = human_duration(started.elapsed());
        match error {
            None => self.emit(&format!("✔ {name} ({took})")),
            Some(why) => self.emit(&format!(
                "✘ {name} failed after {took}: {}",
                first_line(why)
            )),
        }
    }

    /// Starts reporting a wait.
    pub fn wait(&self, label: &str) -> Wait {
        self.wait_since(label, Instant::now())
    }

    /// Starts reporting a wait that began at `started`: a call shown only once it is slow.
    pub fn wait_since(&self, label: &str, started: Instant) -> Wait {
        let bar = self.live.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix}{msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("{}  {}", clock(), self.indent()));
            bar.set_message(crate::secret::redact(&format!("waiting for {label}")).into_owned());
            bar.set_elapsed(started.elapsed());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            self.emit(&format!("waiting for {label}"));
        }
        Wait {
            label: label.to_string(),
            started,
            last_line: Instant::now(),
            bar,
            indent: self.indent(),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A wait in progress.
pub struct Wait {
    label: String,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
    indent: String,
}

impl Wait {
    /// Reports the figure being watched ("lag 830 ms").
    pub fn update(&mut self, figure: &str) {
        match &self.bar {
            // The live line is drawn by indicatif, not through `write`.
            Some(bar) => bar.set_message(
                crate::secret::redact(&format!("waiting for {}: {figure}", self.label))
                    .into_owned(),
            ),
            None if self.last_line.elapsed() >= Duration::from_secs(10) => {
                self.last_line = Instant::now();
                errln!(
                    "{}  {}still waiting for {} after {}: {figure}",
                    clock(),
                    self.indent,
                    self.label,
                    human_duration(self.started.elapsed())
                );
            }
            None => {}
        }
    }

    /// Ends the wait with a one-line outcome.
    pub fn finish(self, outcome: &str) {
        let line = format!("{} ({})", outcome, human_duration(self.started.elapsed()));
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        errln!("{}  {}{line}", clock(), self.indent);
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_is_yes() {
        for yes in ["y", "Y", "yes", " YES ", "yes\r"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "n", "no", "yep", "y es", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(340)), "340 ms");
        assert_eq!(human_duration(Duration::from_millis(1200)), "1.2 s");
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(human_duration(Duration::from_secs(7396)), "2 h 3 min");
    }

    #[test]
    fn clock_is_hh_mm_ss() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
    }
}
