//! The inventory's SSH settings: how to reach each node's host, and how strictly to check its key.

use std::path::PathBuf;
use std::time::Duration;

/// Whether unknown host keys may be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only hosts already in known_hosts (the default).
    Strict,
    /// Unknown hosts are added on first connection; changed keys are still refused.
    AcceptNew,
}

/// SSH settings from the inventory's `[ssh]` table and the node's own keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    pub host_keys: HostKeyPolicy,
    pub known_hosts: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub jump: Option<String>,
    pub connect_timeout: Duration,
    pub max_concurrent: usize,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            host_keys: HostKeyPolicy::Strict,
            known_hosts: None,
            key: None,
            config: None,
            jump: None,
            connect_timeout: Duration::from_secs(10),
            max_concurrent: 8,
        }
    }
}

/// `user@host:port`, `user@host`, `host:port` or `host` (IPv6 in brackets: `user@[::1]:22`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    pub fn parse(s: &str) -> Result<SshTarget, String> {
        let bad = |why: &str| format!("ssh target `{s}` {why}: expected user@host:port");
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("has an empty user")),
            None => (None, s),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed `[`"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("has no usable host"));
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("has a bad port")))
            .transpose()?;
        Ok(SshTarget { user, host, port })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}
