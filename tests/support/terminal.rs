//! A real terminal for the tests that drive the program as a person would: tmux, one server per test
//! (its own socket), one window running the binary, read back with `capture-pane`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::poll::poll_until;
use super::BIN;

/// The window's name in its tmux server.
const WINDOW: &str = "main";

/// A tmux server running one command; killed with everything in it when dropped.
pub struct Term {
    socket: String,
}

impl Term {
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `neumann-script ARGS` in a fresh 160x50 terminal in `home`, with HOME there and nothing
    /// from the environment that names an inventory or moves the journal, as `support::bare` runs it;
    /// the window stays after it exits, showing `EXIT=code`.
    pub fn run(socket: &str, home: &Path, args: &str) -> Term {
        let t = Term {
            socket: socket.to_string(),
        };
        let cmd = format!(
            "cd {home} && env -u NEUMANN_CLUSTER -u XDG_STATE_HOME HOME={home} TERM=xterm {BIN} {args}; echo EXIT=$?; sleep 600",
            home = home.display()
        );
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            WINDOW,
            "-x",
            "160",
            "-y",
            "50",
            &cmd,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// What the window shows, with up to 200 lines of its scrollback.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .tmux(&["capture-pane", "-p", "-t", WINDOW, "-S", "-200"])
                .stdout,
        )
        .into_owned()
    }

    /// Types text literally (no key names, no command separators).
    pub fn text(&self, s: &str) {
        self.tmux(&["send-keys", "-t", WINDOW, "-l", s]);
    }

    /// Sends several keys in one tmux call: they reach the program at once, as typed over a laggy link.
    pub fn keys(&self, ks: &[&str]) {
        let mut args = vec!["send-keys", "-t", WINDOW];
        args.extend_from_slice(ks);
        self.tmux(&args);
    }

    /// Pastes `text` the way a terminal does; `bracketed` wraps it in the paste markers a terminal sends
    /// when the program asked for bracketed paste.
    pub fn paste(&self, text: &str, bracketed: bool) {
        self.tmux(&["set-buffer", "--", text]);
        let mut args = vec!["paste-buffer", "-t", WINDOW];
        if bracketed {
            args.push("-p");
        }
        self.tmux(&args);
    }

    pub fn key(&self, k: &str) {
        self.tmux(&["send-keys", "-t", WINDOW, k]);
    }

    /// Waits until the screen shows `want` `times` times.
    pub fn wait_for(&self, want: &str, times: usize) -> String {
        self.wait_until(&format!("{want:?} x{times} on screen"), |s| {
            s.matches(want).count() >= times
        })
    }

    /// Waits until `done` holds for the screen, and returns that screen.
    pub fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        poll_until(what, Duration::from_secs(30), || {
            let s = self.screen();
            if done(&s) {
                Ok(s)
            } else {
                Err(format!("the screen:\n{s}"))
            }
        })
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
