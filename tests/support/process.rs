//! The binary as a process the test steers: signals as a terminal or a service manager sends them, and a
//! run in the background whose stderr the test waits on.

use std::io::{BufRead, BufReader};
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::poll::{poll_until, Seen};
use super::Cluster;

/// How long a wait on a run may take: a step on a loaded 2-core machine, with room to spare.
const RUN_WAIT: Duration = Duration::from_secs(120);

/// Sends `sig` (`INT`, `TERM`, `HUP`, `KILL`, ...) to the child, as `kill -SIG PID` would.
pub fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {}", child.id());
}

/// Kills the child with SIGKILL and reaps it, so its process is gone from this machine (as a lease's
/// holder check sees it); returns what it wrote to stderr.
pub fn kill9(mut child: Child) -> String {
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a test waits for before it acts on a run.
#[derive(Clone, Copy, Debug)]
pub enum Trigger {
    /// An event of this kind for this node in the simulator's log.
    Event(&'static str, &'static str),
    /// A line of the run's own output saying this.
    Said(&'static str),
}

/// A run in the background whose stderr is collected as it comes; killed if the test ends without
/// finishing it, so a failed test leaves no process behind.
pub struct Running {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// How far `until` has read, in bytes of `stderr`.
    read: usize,
}

impl Running {
    /// Starts the binary against the cluster (`Cluster::spawn`).
    pub fn start(c: &Cluster, args: &[&str]) -> Running {
        Running::of(c.spawn(args))
    }

    /// Follows a child started with its stderr piped.
    pub fn of(mut child: Child) -> Running {
        let pipe = child.stderr.take().expect("the child's stderr is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Running {
            child: Some(child),
            stderr,
            reader: Some(reader),
            read: 0,
        }
    }

    pub fn child(&self) -> &Child {
        self.child.as_ref().expect("the run is finished")
    }

    /// Everything the run has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the run has said `text` so far.
    pub fn said(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().contains(text)
    }

    /// Waits until `done` holds; panics if the run ends first or `RUN_WAIT` passes.
    pub fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Running) -> bool) {
        poll_until(what, RUN_WAIT, || {
            if done(self) {
                return Seen::Done(());
            }
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => {
                    Seen::GaveUp(format!("the run ended ({status}):\n{}", self.stderr()))
                }
                _ => Seen::NotYet(String::new()),
            }
        });
    }

    /// Waits for the trigger (see `wait_until`).
    pub fn wait_for(&mut self, c: &Cluster, trigger: Trigger) {
        self.wait_until(&format!("{trigger:?}"), |run| match trigger {
            Trigger::Event(kind, node) => c
                .events()
                .iter()
                .any(|e| e.kind == kind && e.node.as_deref() == Some(node)),
            Trigger::Said(text) => run.said(text),
        });
    }

    /// Waits until the run prints a line containing `needle` after the line the last `until` returned,
    /// and returns that line (see `wait_until`).
    pub fn until(&mut self, needle: &str) -> String {
        let mut found = None;
        let from = self.read;
        self.wait_until(&format!("the run to print {needle:?}"), |run| {
            let all = run.stderr.lock().unwrap();
            let mut at = from;
            for line in all[from..].split_inclusive('\n') {
                at += line.len();
                if line.contains(needle) {
                    found = Some((line.trim_end().to_string(), at));
                    return true;
                }
            }
            false
        });
        let (line, end) = found.unwrap();
        self.read = end;
        line
    }

    /// Sends `sig` to the run (see `signal`).
    pub fn signal(&self, sig: &str) {
        signal(self.child(), sig);
    }

    /// Waits for the run to end: its exit status, its stdout, and all its stderr.
    pub fn finish(mut self) -> Output {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        self.reader.take().unwrap().join().unwrap();
        Output {
            status: out.status,
            stdout: out.stdout,
            stderr: self.stderr().into_bytes(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
