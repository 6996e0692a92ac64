//! What `status`, its watch and the requests read: the cluster an inventory names, its health and the run
//! lease, each read bounded in time.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{Cluster, OpError};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::journal;
use crate::lease;
use crate::model::ClusterHealth;
use crate::output::unix_now;
use crate::session::{RunOptions, Target};
use crate::transport::admin::{AdminError, LeaseRecord};

/// The longest one look at the cluster may take: health probes and the lease read are bounded at 3 s
/// each and run at once, so this is slack, not the expected time.
pub(super) const LOOK_WITHIN: Duration = Duration::from_secs(5);

/// The cluster the options name; `status` and the requests never start a simulator.
pub(super) fn open(run: &RunOptions) -> Result<(Arc<Cluster>, String), Error> {
    let path = match &run.target {
        Target::Inventory(p) => p.clone(),
        Target::Sim { .. } => {
            return Err(Error::Usage(
                "name the cluster with --cluster FILE: --sim would start a new one".into(),
            ))
        }
    };
    let inv = Inventory::locate(path.as_deref())?.ok_or_else(|| {
        Error::Usage(
            "no cluster named: pass --cluster FILE, set NEUMANN_CLUSTER, or create ./neumann-cluster.toml"
                .into(),
        )
    })?;
    let name = journal::cluster_name(&inv.source);
    Ok((Arc::new(Cluster::new(inv).map_err(Error::Tool)?), name))
}

/// Who asks: `user@host`, as the run shows it ("paused by op@desk: ...").
pub(super) fn asker() -> String {
    let (user, host) = journal::whoami();
    format!("{user}@{host}")
}

/// The lease, or what a cluster without one means for the operator.
#[derive(Debug, Clone)]
pub(super) enum LeaseView {
    Held(LeaseRecord),
    Free,
    /// The cluster serves no lease: runs take a lock file on their own machine (`Some` when one is held
    /// here).
    NoApi(Option<LeaseRecord>),
}

impl LeaseView {
    /// The run holding the lease, if any, and whether it was read from this machine's lock file.
    pub(super) fn record(&self) -> (Option<&LeaseRecord>, bool) {
        match self {
            LeaseView::Held(l) => (Some(l), false),
            LeaseView::Free => (None, false),
            LeaseView::NoApi(l) => (l.as_ref(), true),
        }
    }
}

pub(super) async fn read_lease(cluster: &Cluster) -> Result<LeaseView, Error> {
    match cluster.admin.lease().await {
        Ok(Some(l)) => Ok(LeaseView::Held(l)),
        Ok(None) => Ok(LeaseView::Free),
        Err(e) if e.status() == Some(404) => {
            let text = std::fs::read_to_string(lease::lock_path(cluster)).unwrap_or_default();
            Ok(LeaseView::NoApi(serde_json::from_str(&text).ok()))
        }
        Err(e) => Err(tool_or_inventory(e, "cannot read the run lease")),
    }
}

/// An admin call's failure as the command's error: an inventory that names the wrong node is the
/// operator's to correct (exit 2); anything else is the tool's failure, after `context`.
pub(super) fn tool_or_inventory(e: AdminError, context: &str) -> Error {
    if e.wrong_node() {
        Error::Usage(e.to_string())
    } else {
        Error::Tool(format!("{context}: {e}"))
    }
}

/// One look at the cluster: its health and its lease, read at once, at `at` (unix seconds).
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub(super) health: ClusterHealth,
    pub(super) lease: LeaseView,
    pub(super) at: f64,
}

pub(super) async fn snapshot(cluster: &Cluster, name: &str) -> Result<Snapshot, Error> {
    let look = async { tokio::join!(cluster.health(), read_lease(cluster)) };
    let (health, lease) = tokio::time::timeout(LOOK_WITHIN, look).await.map_err(|_| {
        Error::Tool(format!(
            "cluster `{name}`: no answer within {} s",
            LOOK_WITHIN.as_secs()
        ))
    })?;
    let health = health.map_err(|e| match e {
        OpError::Usage(m) => Error::Usage(m),
        e => Error::Tool(format!("cluster `{name}`: cannot read its state: {e}")),
    })?;
    Ok(Snapshot {
        health,
        lease: lease?,
        at: unix_now(),
    })
}
