//! A real OpenSSH server for integration tests: `sshd -D` on a loopback port with its own host key,
//! authorized key, config and pid file in a temp dir; nothing of the system's configuration is touched
//! (only the privilege-separation directory the package expects, /run/sshd, is created if missing).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{find_program, free_port, try_poll_until, Seen, SSHD};

pub struct SshServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// A key the server accepts.
    pub client_key: PathBuf,
    /// A known_hosts file that holds the server's host key.
    pub known_hosts: PathBuf,
    pub user: String,
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "neumann-script-test",
            "-f",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl SshServer {
    pub fn start() -> Result<SshServer, String> {
        let sshd =
            find_program(&SSHD).ok_or("sshd not installed (apt-get install openssh-server)")?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| {
            format!("cannot create /run/sshd (sshd's privilege-separation dir): {e}")
        })?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        keygen(&d.join("host_key"))?;
        keygen(&d.join("client_key"))?;
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let user = String::from_utf8_lossy(
            &Command::new("id")
                .arg("-un")
                .output()
                .map_err(|e| e.to_string())?
                .stdout,
        )
        .trim()
        .to_string();
        let mut last = String::new();
        // A free port can be taken between probing and sshd binding it: try a fresh one then.
        for _ in 0..3 {
            let port = free_port()?;
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 MaxSessions 30\nMaxStartups 30\nLogLevel INFO\n",
                d = d.display()
            );
            std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
            let mut child = Command::new(&sshd)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", sshd.display()))?;
            match wait_for_banner(port, &mut child) {
                Ok(()) => {
                    let host_pub = std::fs::read_to_string(d.join("host_key.pub"))
                        .map_err(|e| e.to_string())?;
                    let known_hosts = d.join("known_hosts");
                    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
                        .map_err(|e| e.to_string())?;
                    return Ok(SshServer {
                        child,
                        port,
                        client_key: d.join("client_key"),
                        known_hosts,
                        user,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    let _ = child.wait();
                    last = format!("{e}; sshd said: {}", err.trim());
                }
            }
        }
        Err(format!("sshd did not start: {last}"))
    }

    /// `user@127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("{}@127.0.0.1:{}", self.user, self.port)
    }
}

/// Waits until sshd accepts a connection and sends its `SSH-2.0` banner.
fn wait_for_banner(port: u16, child: &mut Child) -> Result<(), String> {
    try_poll_until("an SSH banner", Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.try_wait() {
            return Seen::GaveUp(format!("sshd exited with {status}"));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 7];
            if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-2.0" {
                return Seen::Done(());
            }
        }
        Seen::NotYet(String::new())
    })
}

impl SshServer {
    /// Stops the server and returns what it logged (logins, errors).
    pub fn stop_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut s) = self.child.stderr.take() {
            let _ = s.read_to_string(&mut log);
        }
        log
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
