//! Ctrl-C, SIGTERM (a CI cancel, systemd, `timeout`) and SIGHUP (a dropped SSH session), all alike. The
//! first asks the run to stop at the next safe point: the script is terminated at its next operation and
//! blocked waits and calls are abandoned, except while a node is between `stop` and `start` (a critical
//! section), which is finished first. A second signal exits at once, saying which node, if any, it leaves
//! stopped. The exit code says which signal ended the run: 128 + its number, as a shell reports it.
//!
//! Messages go straight to stderr and ignore write errors: after SIGHUP the terminal is gone, and a failed
//! write must not stop the handler before it records the request.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::SignalKind;
use tokio::sync::watch;

/// Taken by whatever ends the process: a second signal's exit holds it while its hook runs.
static ENDING: Mutex<()> = Mutex::new(());

/// Ends the process with `code`, the way the program ends, unless a second signal's exit is under way:
/// then this waits, and that exit ends the process with the signal's code once its hook has run.
pub fn exit_process(code: i32) -> ! {
    let _ending = ENDING.lock();
    std::process::exit(code)
}

/// A signal that interrupts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Int, Signal::Term, Signal::Hup];

    /// The POSIX number, the same on every Unix for these three.
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => 2,
            Signal::Term => 15,
            Signal::Hup => 1,
        }
    }

    pub fn from_number(n: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == n)
    }

    /// The exit code of a run this signal ended: 130, 143 or 129.
    pub fn exit_code(self) -> i32 {
        128 + self.number()
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    fn kind(self) -> SignalKind {
        match self {
            Signal::Int => SignalKind::interrupt(),
            Signal::Term => SignalKind::terminate(),
            Signal::Hup => SignalKind::hangup(),
        }
    }
}

/// Resolves at the next of the three signals, for waits outside a run (a question, the foreground
/// simulator). It listens from the call on, not from the first poll, so a signal that comes before the
/// future is first awaited is not missed. Must be called within a tokio runtime.
pub fn next_signal() -> impl std::future::Future<Output = Signal> {
    async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) {
        match stream {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let mut int = tokio::signal::unix::signal(Signal::Int.kind()).ok();
    let mut term = tokio::signal::unix::signal(Signal::Term.kind()).ok();
    let mut hup = tokio::signal::unix::signal(Signal::Hup.kind()).ok();
    async move {
        tokio::select! {
            () = recv(&mut int) => Signal::Int,
            () = recv(&mut term) => Signal::Term,
            () = recv(&mut hup) => Signal::Hup,
        }
    }
}

fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

type ExitHook = Box<dyn Fn(Signal, &[String]) + Send + Sync>;

struct Inner {
    requested: AtomicBool,
    presses: AtomicUsize,
    /// The first signal's number, 0 before any.
    first: AtomicI32,
    /// When the first signal came: the report marks it.
    first_at: Mutex<Option<std::time::Instant>>,
    /// Nothing is in progress (the REPL at its prompt): SIGTERM and SIGHUP exit at once.
    idle: AtomicBool,
    /// Called with the signal and the nodes left stopped just before an exit at once (the journal).
    on_exit: Mutex<Option<ExitHook>>,
    exiting: AtomicBool,
    /// Nodes this run stopped and has not started yet.
    critical: Mutex<BTreeSet<String>>,
    /// Bumped on every change, so waiters re-check.
    changed: watch::Sender<u64>,
    /// How the operator runs a snippet against this run's cluster (`neumann-script --cluster PATH`), so
    /// the hint a second Ctrl-C prints acts on the cluster the run left, not on the default inventory;
    /// empty for the embedded simulator, which ends with the process.
    command: Mutex<String>,
}

/// Shared between the signal task, the script thread and its blocking calls.
#[derive(Clone)]
pub struct Interrupt(Arc<Inner>);

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt::new()
    }
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt(Arc::new(Inner {
            requested: AtomicBool::new(false),
            presses: AtomicUsize::new(0),
            first: AtomicI32::new(0),
            first_at: Mutex::new(None),
            idle: AtomicBool::new(false),
            on_exit: Mutex::new(None),
            exiting: AtomicBool::new(false),
            critical: Mutex::new(BTreeSet::new()),
            changed: watch::channel(0).0,
            command: Mutex::new("neumann-script".into()),
        }))
    }

    /// Sets the command the recovery hint starts with: `neumann-script --cluster PATH`; empty when the
    /// cluster ends with this process (`--sim`).
    pub fn set_command(&self, command: String) {
        if let Ok(mut c) = self.0.command.lock() {
            *c = command;
        }
    }

    fn bump(&self) {
        self.0.changed.send_modify(|v| *v += 1);
    }

    /// Listens for Ctrl-C, SIGTERM and SIGHUP on `tokio` for the rest of the process. The handlers are in
    /// place when this returns, so a signal from then on is never the default kill.
    pub fn install(&self, tokio: &tokio::runtime::Handle) {
        let _entered = tokio.enter();
        for sig in Signal::ALL {
            let Ok(mut stream) = tokio::signal::unix::signal(sig.kind()) else {
                continue;
            };
            let me = self.clone();
            tokio.spawn(async move {
                while stream.recv().await.is_some() {
                    me.press(sig);
                }
            });
        }
    }

    /// What one signal does.
    pub fn press(&self, sig: Signal) {
        let n = self.0.presses.fetch_add(1, Ordering::SeqCst) + 1;
        // Stored before `idle` is read, as `set_idle` stores `idle` before reading this: one of the two
        // sees the other, so a signal as the REPL reaches its prompt is never missed.
        if n == 1 {
            self.0.first.store(sig.number(), Ordering::SeqCst);
            if let Ok(mut at) = self.0.first_at.lock() {
                *at = Some(std::time::Instant::now());
            }
        }
        if sig != Signal::Int && self.0.idle.load(Ordering::SeqCst) {
            say(&format!("\n{}: nothing in progress; exiting", sig.name()));
            self.exit(sig, &[]);
        }
        let (by, again) = match sig {
            Signal::Int => ("", "Ctrl-C again"),
            other => (
                match other {
                    Signal::Term => " by SIGTERM",
                    _ => " by SIGHUP",
                },
                "a second signal",
            ),
        };
        if n == 1 {
            let critical = self.critical();
            if critical.is_empty() {
                say(&format!(
                    "\ninterrupted{by}: stopping at the next safe point ({again} to exit at once)"
                ));
            } else {
                say(&format!(
                    "\ninterrupted{by}: finishing the restart of {} first, then stopping ({again} to exit at once)",
                    critical.join(", ")
                ));
            }
            self.0.requested.store(true, Ordering::SeqCst);
            self.bump();
        } else {
            let critical = self.critical();
            if critical.is_empty() {
                say(&format!("interrupted again{by}: exiting now"));
            } else {
                let command = self.0.command.lock().map(|c| c.clone()).unwrap_or_default();
                let hint = if command.is_empty() {
                    "the embedded simulated cluster ends with this process, so there is nothing to start".to_string()
                } else {
                    format!(
                        "start it with: {command} -e 'node::start(\"{}\")', or run the same command again: it starts it first",
                        critical[0]
                    )
                };
                say(&format!(
                    "interrupted again{by}: exiting now, leaving {} STOPPED (between stop and start); {hint}",
                    critical.join(", "),
                ));
            }
            self.exit(sig, &critical);
        }
    }

    /// Sets what runs just before an exit at once: recording it, since the run's own records stop here.
    pub fn on_exit(&self, hook: impl Fn(Signal, &[String]) + Send + Sync + 'static) {
        if let Ok(mut h) = self.0.on_exit.lock() {
            *h = Some(Box::new(hook));
        }
    }

    fn exit(&self, sig: Signal, critical: &[String]) -> ! {
        // The signal task and the REPL's thread can both decide to exit; one is enough.
        if self.0.exiting.swap(true, Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        // Held until the process ends: the program's own end waits for the hook (the journal's record,
        // the report as far as the run got) instead of ending the process halfway through it.
        let _ending = ENDING.lock();
        if let Ok(h) = self.0.on_exit.lock() {
            if let Some(hook) = h.as_ref() {
                hook(sig, critical);
            }
        }
        std::process::exit(sig.exit_code());
    }

    /// The first signal of this run (or REPL entry), if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::from_number(self.0.first.load(Ordering::SeqCst))
    }

    /// The first signal and when it came.
    pub fn first_signal(&self) -> Option<(Signal, std::time::Instant)> {
        let at = self.0.first_at.lock().ok().and_then(|a| *a)?;
        Some((self.signal()?, at))
    }

    /// The REPL waits at its prompt (`true`) or runs an entry (`false`). A SIGTERM or SIGHUP taken while it
    /// was busy ends it on the way to the prompt, where it would otherwise wait unnoticed.
    pub fn set_idle(&self, idle: bool) {
        self.0.idle.store(idle, Ordering::SeqCst);
        if let Some(sig) = self.signal().filter(|s| idle && *s != Signal::Int) {
            say(&format!("{}: exiting", sig.name()));
            self.exit(sig, &[]);
        }
    }

    /// Forgets earlier presses: the REPL cancels one entry per Ctrl-C and goes on.
    pub fn reset(&self) {
        self.0.presses.store(0, Ordering::SeqCst);
        self.0.first.store(0, Ordering::SeqCst);
        if let Ok(mut at) = self.0.first_at.lock() {
            *at = None;
        }
        self.0.requested.store(false, Ordering::SeqCst);
        self.bump();
    }

    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// True when the run should stop now: Ctrl-C was pressed and no node is between stop and start.
    pub fn should_stop(&self) -> bool {
        self.requested() && self.0.critical.lock().map(|c| c.is_empty()).unwrap_or(true)
    }

    /// Nodes between their stop and their start now: no run pauses or stops while there are any.
    pub fn critical_nodes(&self) -> Vec<String> {
        self.critical()
    }

    fn critical(&self) -> Vec<String> {
        self.0
            .critical
            .lock()
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `node` is about to be stopped: finish its restart before honouring Ctrl-C.
    pub fn enter(&self, node: &str) {
        if let Ok(mut c) = self.0.critical.lock() {
            c.insert(node.to_string());
        }
        self.bump();
    }

    /// `node` was started again (or its start failed): Ctrl-C may stop the run now.
    pub fn leave(&self, node: &str) {
        if let Ok(mut c) = self.0.critical.lock() {
            c.remove(node);
        }
        self.bump();
    }

    /// Resolves once the run should stop.
    pub async fn stopped(&self) {
        let mut rx = self.0.changed.subscribe();
        loop {
            if self.should_stop() {
                return;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`; this cannot end, but never spin if it did.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_critical_section_defers_the_stop() {
        let i = Interrupt::new();
        i.enter("node2");
        i.0.requested.store(true, Ordering::SeqCst);
        i.bump();
        assert!(i.requested() && !i.should_stop());
        let waiter = tokio::spawn({
            let i = i.clone();
            async move { i.stopped().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        i.leave("node2");
        tokio::time::timeout(std::time::Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(i.should_stop());
    }
}
