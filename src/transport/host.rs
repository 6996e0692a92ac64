//! Host operations: service control, installs and ad-hoc commands on a node's host.
//!
//! The inventory's command templates (defaults from the runbook) are rendered here, with every
//! substituted value shell-quoted. Which transport carries them is chosen per node: the simulator's host
//! endpoints for a simulated cluster (every operation, `exec` included, so nothing reaches this machine's
//! shell); SSH (openssh) for a real one.

use std::time::Duration;

use semver::Version;

use super::ssh;
use crate::inventory::{Inventory, NodeSpec, Templates};
pub use crate::model::ExecOutput;

/// What to do on a host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOp {
    Stop,
    Start,
    Restart,
    Install(Version),
    /// Installs a version beside the running one; the node keeps serving.
    Stage(Version),
    /// Points the (stopped) node's service at a staged version.
    Activate(Version),
    Exec(String),
}

impl HostOp {
    /// The verb used in messages and the simulator's host endpoints.
    pub fn name(&self) -> &'static str {
        match self {
            HostOp::Stop => "stop",
            HostOp::Start => "start",
            HostOp::Restart => "restart",
            HostOp::Install(_) => "install",
            HostOp::Stage(_) => "stage",
            HostOp::Activate(_) => "activate",
            HostOp::Exec(_) => "exec",
        }
    }

    /// The version the operation puts on the node, if it is one of the version-changing ones.
    pub fn version(&self) -> Option<&Version> {
        match self {
            HostOp::Install(v) | HostOp::Stage(v) | HostOp::Activate(v) => Some(v),
            _ => None,
        }
    }

    /// The shell command this operation runs on a real host, from the node's templates.
    pub fn command(&self, node: &NodeSpec) -> String {
        let t: &Templates = &node.templates;
        match self {
            HostOp::Stop => render(&t.stop, node, None),
            HostOp::Start => render(&t.start, node, None),
            HostOp::Restart => render(&t.restart, node, None),
            HostOp::Install(v) => render(&t.install, node, Some(v)),
            HostOp::Stage(v) => render(&t.stage, node, Some(v)),
            HostOp::Activate(v) => render(&t.activate, node, Some(v)),
            HostOp::Exec(cmd) => cmd.clone(),
        }
    }

    /// How long the operation may take before the tool gives up on it. Installs compile from source.
    pub fn timeout(&self) -> Duration {
        match self {
            HostOp::Install(_) | HostOp::Stage(_) => Duration::from_secs(1800),
            _ => Duration::from_secs(300),
        }
    }
}

/// Substitutes `{version}` and `{node}` into a template, shell-quoted, so no value can add a command.
pub fn render(template: &str, node: &NodeSpec, version: Option<&Version>) -> String {
    let out = substitute(template, "node", &node.id);
    match version {
        Some(v) => substitute(&out, "version", &v.to_string()),
        None => out,
    }
}

/// `template` with every `{key}` replaced by `value`, shell-quoted so a value is always one word.
pub fn substitute(template: &str, key: &str, value: &str) -> String {
    // try_quote refuses only a NUL byte, which no node id, version or traffic target can hold.
    let quoted = shlex::try_quote(value)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into());
    template.replace(&format!("{{{key}}}"), &quoted)
}

/// A host operation that could not be carried out at all (as opposed to one that ran and exited non-zero).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{node}: {op} failed: {cause}")]
pub struct HostError {
    pub node: String,
    pub op: String,
    pub cause: String,
}

/// Carries host operations for every node of an inventory.
pub struct Hosts {
    sim: Option<SimHost>,
    ssh: Option<ssh::SshHost>,
}

impl Hosts {
    /// On a simulated cluster, moves its client traffic to `to` in the simulator (`POST /sim/traffic`),
    /// which records it; `None` for a real cluster, whose switch is the inventory's own command.
    pub async fn sim_traffic(&self, to: &str) -> Option<Result<ExecOutput, String>> {
        let sim = self.sim.as_ref()?;
        let body = serde_json::json!({ "to": to });
        Some(
            sim.post("sim/traffic", &body, Duration::from_secs(10))
                .await,
        )
    }

    pub fn new(inv: &Inventory) -> Result<Hosts, String> {
        let sim = match &inv.sim_control {
            Some(addr) => Some(SimHost::new(addr, inv.connect_timeout)?),
            None => None,
        };
        let ssh = match inv.nodes.iter().any(|n| n.ssh.is_some()) {
            true => Some(ssh::SshHost::new(inv.ssh.clone())?),
            false => None,
        };
        Ok(Hosts { sim, ssh })
    }

    /// Closes the SSH master connections this run opened.
    pub async fn close(&self) {
        if let Some(ssh) = &self.ssh {
            ssh.close().await;
        }
    }

    /// Runs `op` on the node's host and returns how the command exited.
    pub async fn run(&self, node: &NodeSpec, op: &HostOp) -> Result<ExecOutput, HostError> {
        let fail = |cause: String| HostError {
            node: node.id.clone(),
            op: op.name().to_string(),
            cause,
        };
        if let (Some(target), Some(ssh)) = (&node.ssh, &self.ssh) {
            return ssh
                .run(target, &op.command(node), op.timeout())
                .await
                .map_err(fail);
        }
        // A simulated node's host is the simulator, for `exec` too: a command meant for a node must never
        // reach this machine's shell because the cluster is a simulation.
        match &self.sim {
            Some(sim) => sim.run(&node.id, op).await.map_err(fail),
            None => Err(fail(
                "the inventory gives no way to reach this node's host: add `ssh = \"user@host:22\"` to the node".into(),
            )),
        }
    }
}

/// The simulator's host side (`POST /sim/host/...`, docs/SIMULATOR.md): what systemctl and cargo do, in simulation.
struct SimHost {
    http: reqwest::Client,
    base: String,
}

impl SimHost {
    fn new(control: &str, connect_timeout: Duration) -> Result<SimHost, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let base = if control.starts_with("http://") {
            control.to_string()
        } else {
            format!("http://{control}")
        };
        Ok(SimHost { http, base })
    }

    async fn run(&self, node: &str, op: &HostOp) -> Result<ExecOutput, String> {
        let body = match op {
            HostOp::Install(v) | HostOp::Stage(v) | HostOp::Activate(v) => {
                serde_json::json!({ "version": v.to_string() })
            }
            HostOp::Exec(cmd) => serde_json::json!({ "command": cmd }),
            _ => serde_json::json!({}),
        };
        self.post(
            &format!("sim/host/{node}/{}", op.name()),
            &body,
            op.timeout(),
        )
        .await
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<ExecOutput, String> {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {}", crate::error::root_cause(&e)))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("POST {url}: {}", crate::error::root_cause(&e)))?;
        if !status.is_success() {
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(text);
            return Err(format!("POST {url}: HTTP {}: {msg}", status.as_u16()));
        }
        serde_json::from_str(&text).map_err(|e| format!("POST {url}: unexpected answer: {e}"))
    }
}

/// Runs a hook command on this machine (a traffic switch, say), with the host commands' timeout.
pub async fn run_local_command(cmd: &str) -> Result<ExecOutput, String> {
    run_local(cmd, Duration::from_secs(300)).await
}

/// Runs a command on this machine: hooks only, never a node's host command.
async fn run_local(cmd: &str, timeout: Duration) -> Result<ExecOutput, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => Err(format!(
            "`{cmd}` did not finish within {} s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot run `sh -c`: {e}")),
        Ok(Ok(out)) => Ok(ExecOutput {
            status: out.status.code().map_or(-1, i64::from),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(install: &str) -> NodeSpec {
        NodeSpec {
            id: "node1".into(),
            admin_url: "http://h:9090".into(),
            ssh: None,
            prometheus_instance: String::new(),
            labels: Default::default(),
            templates: Templates {
                install: install.into(),
                ..Templates::default()
            },
        }
    }

    #[test]
    fn templates_render_with_quoted_values() {
        let n = node("cargo install neumann --version {version}");
        let v = Version::parse("0.11.0").unwrap();
        assert_eq!(
            HostOp::Install(v.clone()).command(&n),
            "cargo install neumann --version 0.11.0"
        );
        assert_eq!(HostOp::Stop.command(&n), "systemctl stop neumann");
        let pre = Version::parse("0.11.0-rc.1+build.5").unwrap();
        assert_eq!(
            render("x {version}", &n, Some(&pre)),
            "x 0.11.0-rc.1+build.5"
        );
        let mut odd = node("deploy {node} {version}");
        odd.id = "a;b".into();
        assert_eq!(
            render(&odd.templates.install, &odd, Some(&v)),
            "deploy 'a;b' 0.11.0"
        );
    }

    #[tokio::test]
    async fn local_exec_reports_status_and_output() {
        let out = run_local(
            "printf 'a b'; echo oops >&2; exit 3",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            ExecOutput {
                status: 3,
                stdout: "a b".into(),
                stderr: "oops\n".into()
            }
        );
        let slow = run_local("sleep 5", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(slow.contains("did not finish"), "{slow}");
    }

    #[tokio::test]
    async fn a_node_without_a_way_to_its_host_is_a_clear_error() {
        let inv = Inventory::parse(
            "[[nodes]]\nid = \"node1\"\nhost = \"h\"\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let hosts = Hosts::new(&inv).unwrap();
        let e = hosts.run(&inv.nodes[0], &HostOp::Stop).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("node1: stop failed: the inventory gives no way"),
            "{e}"
        );
    }
}
