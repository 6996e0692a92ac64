//! Host operations over SSH with the `openssh` crate: one multiplexed master connection per host,
//! opened on first use, reused for every command of a run and closed at exit; a bound on how many
//! commands run at once across hosts; host keys checked strictly unless the inventory says otherwise.

use std::collections::HashMap;

use std::sync::Arc;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder};
use tokio::sync::{Mutex, Semaphore};

use crate::inventory::ssh::{HostKeyPolicy, SshSettings, SshTarget};
use crate::model::ExecOutput;

/// The most specific message in an error's chain: openssh's own `Display` is generic ("failed to connect
/// to the remote host"), the ssh client's words ("Host key verification failed.") are in the source.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let text = crate::error::root_cause(e);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    if lines.is_empty() {
        e.to_string()
    } else {
        lines.join(" / ")
    }
}

/// Runs commands on hosts over SSH.
pub struct SshHost {
    settings: SshSettings,
    sessions: Mutex<HashMap<SshTarget, Arc<Session>>>,
    limit: Semaphore,
    /// Control sockets live here: a short path, because their path is limited to about 107 bytes.
    control_dir: tempfile::TempDir,
}

impl SshHost {
    pub fn new(settings: SshSettings) -> Result<SshHost, String> {
        let control_dir = tempfile::Builder::new()
            .prefix("ns-ssh")
            .tempdir_in("/tmp")
            .map_err(|e| {
                format!("cannot create a directory for ssh control sockets in /tmp: {e}")
            })?;
        Ok(SshHost {
            limit: Semaphore::new(settings.max_concurrent.max(1)),
            settings,
            sessions: Mutex::new(HashMap::new()),
            control_dir,
        })
    }

    async fn session(&self, target: &SshTarget) -> Result<Arc<Session>, String> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(target) {
            if s.check().await.is_ok() {
                return Ok(s.clone());
            }
            sessions.remove(target);
        }
        let s = &self.settings;
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match s.host_keys {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        })
        .connect_timeout(s.connect_timeout)
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(self.control_dir.path());
        if let Some(u) = &target.user {
            b.user(u.clone());
        }
        if let Some(p) = target.port {
            b.port(p);
        }
        if let Some(k) = &s.key {
            b.keyfile(k);
        }
        if let Some(k) = &s.known_hosts {
            b.user_known_hosts_file(k);
        }
        if let Some(c) = &s.config {
            b.config_file(c);
        }
        if let Some(j) = &s.jump {
            b.jump_hosts([j.as_str()]);
        }
        // ConnectTimeout covers the TCP connect and the banner; this bounds the whole handshake too.
        let limit = s.connect_timeout * 2 + Duration::from_secs(5);
        let session = match tokio::time::timeout(limit, b.connect(&target.host)).await {
            Err(_) => {
                return Err(format!(
                    "ssh {target}: no connection within {} s",
                    limit.as_secs()
                ))
            }
            Ok(Err(e)) => return Err(format!("ssh {target}: {}", cause(&e))),
            Ok(Ok(session)) => Arc::new(session),
        };
        sessions.insert(target.clone(), session.clone());
        Ok(session)
    }

    /// Runs `command` through the remote user's shell; a non-zero exit is a result, not an error.
    pub async fn run(
        &self,
        target: &SshTarget,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, String> {
        let _permit = self.limit.acquire().await.map_err(|e| e.to_string())?;
        let session = self.session(target).await?;
        let output = tokio::time::timeout(timeout, session.raw_command(command).output())
            .await
            .map_err(|_| {
                format!(
                    "ssh {target}: `{command}` did not finish within {} s",
                    timeout.as_secs()
                )
            })?
            .map_err(|e| format!("ssh {target}: {}", cause(&e)))?;
        let status = output.status.code().map_or(-1, i64::from);
        // ssh exits 255 for its own failures too: only the master connection can tell which it was.
        if status == 255 {
            if let Err(e) = session.check().await {
                self.sessions.lock().await.remove(target);
                return Err(format!(
                    "ssh {target}: the connection was lost: {}",
                    cause(&e)
                ));
            }
        }
        Ok(ExecOutput {
            status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Closes every master connection.
    pub async fn close(&self) {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for s in sessions {
            if let Ok(s) = Arc::try_unwrap(s) {
                let _ = s.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_user_and_port() {
        let t = SshTarget::parse("deploy@10.0.0.5:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("deploy"), "10.0.0.5", Some(2222))
        );
        assert_eq!(SshTarget::parse("node1.internal").unwrap().port, None);
        let v6 = SshTarget::parse("root@[::1]:22").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(22)));
        assert_eq!(v6.to_string(), "root@[::1]:22");
        for bad in ["@h", "u@h:port", "u@[::1", "u@", "a b"] {
            assert!(SshTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
