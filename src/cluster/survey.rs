//! The survey: every node's own `/health`, asked at once, merged with the cluster's member list, and what
//! is read from it (members, health, versions, leader). The interlocks judge one survey's members, and
//! `wait_healthy` polls it.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Cluster, OpError, OpResult};
use crate::model::values::UNKNOWN_VERSION;
use crate::model::{ClusterHealth, Member, NodeHealth};
use crate::output::human_duration;
use crate::transport::admin::AdminError;

/// What one survey of every node found.
pub(super) struct Survey {
    pub(super) members: Vec<Member>,
    /// The leader's own report (any node's when no leader answered): term, commit index, pause.
    pub(super) view: NodeHealth,
    pub(super) notes: BTreeMap<String, String>,
    /// How the inventory differs from the cluster's own member list, when it does: waiting cannot fix it.
    pub(super) mismatch: Option<String>,
}

impl Cluster {
    /// Every node's own `/health` (asked concurrently) merged with the cluster's membership view: a node's
    /// own report wins; a node the tool cannot reach is down from where the operator stands, with the
    /// cluster's last word on its role and version; members missing from the inventory are noted.
    pub(super) async fn survey(&self) -> OpResult<Survey> {
        let started = Instant::now();
        let own = self.admin.health_all().await;
        // A node answering under another's name makes every figure below a lie about which node is which.
        if let Some(Err(e)) = own
            .iter()
            .find(|h| h.as_ref().is_err_and(AdminError::wrong_node))
        {
            return Err(e.clone().into());
        }
        // The member list from a node that has just answered (the leader when it did), bounded like a
        // probe: asking a hung node would cost the request timeout once per node.
        let asked = own
            .iter()
            .zip(&self.inventory.nodes)
            .filter_map(|(h, spec)| h.as_ref().ok().map(|h| (h, spec)))
            .max_by_key(|(h, _)| h.raft_state == "leader")
            .map(|(_, spec)| spec.id.clone());
        let view = match asked {
            Some(id) => self
                .admin
                .members_on(&id, crate::transport::admin::PROBE_TIMEOUT)
                .await
                .ok(),
            None => None,
        };
        let mut members = Vec::with_capacity(own.len());
        let mut notes = BTreeMap::new();
        let mut leader_view: Option<NodeHealth> = None;
        let mut errors = Vec::new();
        for (spec, answer) in self.inventory.nodes.iter().zip(own) {
            match answer {
                Ok(h) => {
                    let m = h.to_member(&spec.admin_url);
                    if m.role == "leader" || leader_view.is_none() {
                        leader_view = Some(h);
                    }
                    members.push(m);
                }
                Err(e) => {
                    let known = view
                        .as_ref()
                        .and_then(|v| v.iter().find(|m| m.id == spec.id));
                    members.push(Member {
                        state: "down".into(),
                        healthy: false,
                        ..known.cloned().unwrap_or_else(|| Member {
                            id: spec.id.clone(),
                            address: spec.admin_url.clone(),
                            role: "follower".into(),
                            state: "down".into(),
                            healthy: false,
                            version: UNKNOWN_VERSION.into(),
                            commit_index: 0,
                            applied_index: 0,
                            replication_lag_ms: 0,
                        })
                    });
                    notes.insert(spec.id.clone(), format!("not answering: {}", e.cause()));
                    errors.push(e.to_string());
                }
            }
        }
        let mut extra = Vec::new();
        for m in view.iter().flatten() {
            if self.inventory.node(&m.id).is_err() {
                extra.push(m.id.clone());
                notes.insert(
                    m.id.clone(),
                    format!(
                        "a cluster member missing from the inventory `{}`",
                        self.inventory.source.display()
                    ),
                );
                members.push(m.clone());
            }
        }
        let missing: Vec<String> = match &view {
            Some(v) => self
                .inventory
                .nodes
                .iter()
                .filter(|n| !v.iter().any(|m| m.id == n.id))
                .map(|n| n.id.clone())
                .collect(),
            None => Vec::new(),
        };
        for id in &missing {
            notes.insert(
                id.clone(),
                "listed in the inventory but not a member of the cluster".into(),
            );
        }
        let mismatch = (!extra.is_empty() || !missing.is_empty()).then(|| {
            let mut parts = Vec::new();
            if !extra.is_empty() {
                parts.push(format!(
                    "the cluster has {} that the inventory does not list",
                    extra.join(", ")
                ));
            }
            if !missing.is_empty() {
                parts.push(format!(
                    "the inventory lists {} that the cluster does not have as {}",
                    missing.join(", "),
                    if missing.len() == 1 { "a member" } else { "members" }
                ));
            }
            let members: Vec<&str> = view.iter().flatten().map(|m| m.id.as_str()).collect();
            format!(
                "cluster: the inventory `{}` does not match the cluster's members ({}): {}. Waiting cannot \
                 fix this: correct the inventory",
                self.inventory.source.display(),
                members.join(", "),
                parts.join("; ")
            )
        });
        match leader_view {
            Some(view) => {
                if let Some(l) = &view.leader {
                    self.admin.prefer(l);
                }
                Ok(Survey {
                    members,
                    view,
                    notes,
                    mismatch,
                })
            }
            // Every node's reason: the one that matters may not be the first.
            None if errors.is_empty() => Err(OpError::Failed(
                "cluster: the inventory names no nodes".into(),
            )),
            None => Err(OpError::Failed(format!(
                "cluster: no node answered in {}: {}",
                human_duration(started.elapsed()),
                errors.join("; ")
            ))),
        }
    }

    pub async fn members(&self) -> OpResult<Vec<Member>> {
        Ok(self.survey().await?.members)
    }

    pub async fn health(&self) -> OpResult<ClusterHealth> {
        let s = self.survey().await?;
        Ok(ClusterHealth::assess(s.members, &s.view, &s.notes))
    }

    pub async fn versions(&self) -> OpResult<BTreeMap<String, String>> {
        Ok(self
            .members()
            .await?
            .into_iter()
            .map(|m| (m.id, m.version))
            .collect())
    }

    pub async fn leader(&self) -> OpResult<String> {
        let h = self.health().await?;
        h.leader.ok_or_else(|| {
            OpError::Failed(format!(
                "cluster: no leader: an election is in progress or quorum is lost ({} of {} members healthy, quorum {})",
                h.healthy_members,
                h.members.len(),
                h.quorum
            ))
        })
    }

    pub async fn followers(&self) -> OpResult<Vec<String>> {
        Ok(self
            .members()
            .await?
            .into_iter()
            .filter(|m| m.role != "leader")
            .map(|m| m.id)
            .collect())
    }

    /// A node's own report, or the cluster's view of it when the node cannot be reached.
    pub async fn node_status(&self, id: &str) -> OpResult<Member> {
        let spec = self.node(id)?;
        let started = Instant::now();
        match self.admin.node_health(id).await {
            Ok(h) => Ok(h.to_member(&spec.admin_url)),
            Err(e) if e.unreachable() => {
                let members = self.members().await.map_err(|m| match m {
                    OpError::Usage(_) => m,
                    m => OpError::Failed(format!(
                        "{e}; and {m} ({} in all)",
                        human_duration(started.elapsed())
                    )),
                })?;
                members.into_iter().find(|m| m.id == id).ok_or_else(|| {
                    OpError::Failed(format!(
                        "{e}; and the cluster does not list `{id}` as a member"
                    ))
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}
