//! The operations that change the cluster. Stop, restart, drain, installs and leadership transfers each
//! ask their interlock (`interlock.rs`) before they act, so no caller can skip one by accident; `force` is
//! the explicit override. `interlock` gives the same verdict without acting, for a caller that wants to
//! answer early or say what an override overrides.

use std::time::Duration;

use semver::Version;
use serde_json::Value;

use super::{Cluster, Force, Guarded, Judgement, OpError, OpResult, Progress};
use crate::model::RaftStatus;
use crate::transport::host::{ExecOutput, HostOp};

impl Cluster {
    /// What the interlocks guarding `g` say now, with `force` going past the rules it names: the refusal
    /// that stands and the ones overridden. Asks every node (one survey, so who leads is read at the
    /// moment of the call); changes nothing.
    pub async fn interlock(&self, g: &Guarded<'_>, force: &Force) -> OpResult<Judgement> {
        self.node(g.node())?;
        let members = self.survey().await?.members;
        Ok(g.judge(&members, force))
    }

    /// Refuses `g` unless its interlocks allow it or `force` goes past every rule it breaks. A call
    /// forcing every rule asks nothing: in an emergency the cluster may not answer.
    async fn enforce(&self, g: &Guarded<'_>, force: &Force) -> OpResult<()> {
        if *force == Force::All {
            return Ok(());
        }
        match self.interlock(g, force).await?.refused {
            Some(r) => Err(OpError::Refused(r)),
            None => Ok(()),
        }
    }

    /// Drains or undrains a node. A drain is refused when it would leave too few members serving
    /// (unless `force`).
    pub async fn drain(&self, id: &str, drain: bool, force: &Force) -> OpResult<()> {
        self.node(id)?;
        if drain {
            self.enforce(&Guarded::TakeDown { id, op: "drain" }, force)
                .await?;
            self.admin.drain(id).await?;
        } else {
            self.admin.undrain(id).await?;
        }
        Ok(())
    }

    pub async fn set_paused(&self, paused: bool) -> OpResult<()> {
        self.admin.set_paused(paused).await?;
        Ok(())
    }

    /// Runs a host operation; for service control and installs a non-zero exit is an error. Stop,
    /// restart and installs are refused first when their interlock says so (unless `force`).
    pub async fn host(&self, id: &str, op: HostOp, force: &Force) -> OpResult<ExecOutput> {
        let spec = self.node(id)?;
        if let Some(g) = Guarded::of_host(id, &op) {
            self.enforce(&g, force).await?;
        }
        let _on_the_wire = self.admin.in_flight.start(id, op.name());
        let out = self.hosts.run(spec, &op).await?;
        if out.status != 0 && !matches!(op, HostOp::Exec(_)) {
            let detail = last_lines(
                if out.stderr.trim().is_empty() {
                    &out.stdout
                } else {
                    &out.stderr
                },
                3,
            );
            return Err(OpError::Failed(format!(
                "{id}: {} failed: `{}` exited with status {}: {detail}",
                op.name(),
                op.command(spec),
                out.status
            )));
        }
        Ok(out)
    }

    pub async fn install(&self, id: &str, version: &Version, force: &Force) -> OpResult<()> {
        self.host(id, HostOp::Install(version.clone()), force)
            .await
            .map(|_| ())
    }

    /// Asks the leader to hand over to `to` and waits until `to` leads. An older or lagging `to` is
    /// refused before the cluster is asked (unless `force`).
    pub async fn transfer_leadership(
        &self,
        to: &str,
        timeout: Duration,
        force: &Force,
        progress: Progress<'_>,
    ) -> OpResult<RaftStatus> {
        self.node(to)?;
        self.enforce(&Guarded::Transfer { to }, force).await?;
        let status = self.raft_status().await?;
        let Some(leader) = status.leader.clone() else {
            return Err(OpError::Failed(format!(
                "{to}: transfer leadership failed: the cluster has no leader to hand over"
            )));
        };
        if leader == to {
            return Ok(status);
        }
        self.admin
            .transfer_leadership(&leader, to)
            .await
            .map_err(|e| match e.status() {
                Some(_) => OpError::Failed(format!(
                    "{to}: transfer leadership from {leader} refused: {}",
                    e.cause()
                )),
                None => OpError::from(e),
            })?;
        self.wait_leader(to, &leader, timeout, progress).await
    }

    pub async fn snapshot(&self) -> OpResult<Value> {
        let leader = self.leader().await?;
        Ok(self.admin.snapshot(&leader).await?)
    }

    /// Moves client traffic to `to` ("green" or "blue") with the inventory's switch `command`, run on this
    /// machine. Without one, a simulated cluster's simulator moves its clients, and nothing runs here.
    pub async fn switch_traffic(&self, to: &str, command: Option<&str>) -> OpResult<ExecOutput> {
        match command {
            Some(c) => crate::transport::host::run_local_command(c)
                .await
                .map_err(OpError::Failed),
            None => match self.hosts.sim_traffic(to).await {
                Some(r) => r.map_err(OpError::Failed),
                None => Err(OpError::Usage(
                    "no traffic switch: the inventory's [blue_green] names no `switch` command"
                        .into(),
                )),
            },
        }
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_end_of_a_cargo_error() {
        let s = "    Updating crates.io index\nerror: could not find `neumann`\n\n";
        assert_eq!(
            last_lines(s, 3),
            "Updating crates.io index / error: could not find `neumann`"
        );
        assert_eq!(last_lines("a\nb\nc\nd", 2), "c / d");
    }
}
