//! Ctrl-C. The first press asks the run to stop at the next safe point: the script is terminated at its
//! next operation and blocked waits and calls are abandoned, except while a node is between `stop` and
//! `start` (a critical section), which is finished first. A second press exits at once, saying which
//! node, if any, it leaves stopped.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

struct Inner {
    requested: AtomicBool,
    presses: AtomicUsize,
    /// Nodes this run stopped and has not started yet.
    critical: Mutex<BTreeSet<String>>,
    /// Bumped on every change, so waiters re-check.
    changed: watch::Sender<u64>,
    /// How the operator runs a snippet against this run's cluster (`neumann-script --cluster PATH`), so
    /// the hint a second Ctrl-C prints acts on the cluster the run left, not on the default inventory.
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
            critical: Mutex::new(BTreeSet::new()),
            changed: watch::channel(0).0,
            command: Mutex::new("neumann-script".into()),
        }))
    }

    /// Sets the command the recovery hint starts with: `neumann-script --cluster PATH`.
    pub fn set_command(&self, command: String) {
        if let Ok(mut c) = self.0.command.lock() {
            *c = command;
        }
    }

    fn bump(&self) {
        self.0.changed.send_modify(|v| *v += 1);
    }

    /// Listens for Ctrl-C on `rt` for the rest of the process.
    pub fn install(&self, rt: &tokio::runtime::Handle) {
        let me = self.clone();
        rt.spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                me.press();
            }
        });
    }

    /// What one Ctrl-C does.
    pub fn press(&self) {
        let n = self.0.presses.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            let critical = self.critical();
            if critical.is_empty() {
                eprintln!(
                    "\ninterrupted: stopping at the next safe point (Ctrl-C again to exit at once)"
                );
            } else {
                eprintln!(
                    "\ninterrupted: finishing the restart of {} first, then stopping (Ctrl-C again to exit at once)",
                    critical.join(", ")
                );
            }
            self.0.requested.store(true, Ordering::SeqCst);
            self.bump();
        } else {
            let critical = self.critical();
            if critical.is_empty() {
                eprintln!("interrupted again: exiting now");
            } else {
                let command = self.0.command.lock().map(|c| c.clone()).unwrap_or_default();
                eprintln!(
                    "interrupted again: exiting now, leaving {} STOPPED (between stop and start); start it with: {command} -e 'node::start(\"{}\")'",
                    critical.join(", "),
                    critical[0]
                );
            }
            std::process::exit(130);
        }
    }

    /// Forgets earlier presses: the REPL cancels one entry per Ctrl-C and goes on.
    pub fn reset(&self) {
        self.0.presses.store(0, Ordering::SeqCst);
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
