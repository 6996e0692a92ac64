//! Cluster operations for every caller (the script API, so the REPL too; `status` and the requests of
//! `steer`; the run lease; the rehearsal's survey): one admin call, a host command, or a wait on a
//! condition. Rules that must hold whatever the script says live here, not in the script modules. A
//! `Cluster` is one inventory with its admin client, host transports, optional Prometheus client and
//! clock; this file holds it, its errors and the plain calls, and the other files add the rest:
//!
//! - `interlock.rs`: the rules that guard stop, restart, drain, installs and leadership transfers
//!   (docs/SAFETY.md), and their verdict on one survey's members;
//! - `survey.rs`: every node's `/health` merged with the cluster's member list, and what is read from it;
//! - `wait.rs`: the one poll-until loop every wait runs (pacing, the live line, a cluster gone silent,
//!   the timeout that says what was last seen) and the waits built on it;
//! - `ops.rs`: the operations that change the cluster, each checking its interlock before it acts;
//! - `metrics.rs`: scrapes, canary figures and Prometheus queries.
//!
//! Imports within the folder run one way (`tests/layers.rs` checks it): this file imports only
//! `interlock.rs`, which imports nothing of the folder; the others import this file, and `wait.rs` the
//! survey.
//!
//! Errors are sentences naming the node, the operation and the cause; `OpError::Usage` marks input that
//! was wrong (an unknown node id) rather than a cluster that misbehaved.

mod interlock;
mod metrics;
mod ops;
mod survey;
mod wait;

use std::time::Duration;

use serde_json::Value;

use crate::inventory::{Inventory, NodeSpec};
use crate::model::RaftStatus;
use crate::transport::admin::{AdminClient, AdminError};
use crate::transport::clock::Clock;
use crate::transport::host::{HostError, Hosts};
use crate::transport::prometheus::{PromClient, PromError};

pub use interlock::{Force, Guarded, Judgement, Refusal, Rule};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The caller named something that does not exist (exit 2 when uncaught).
    #[error("{0}")]
    Usage(String),
    /// A node's admin API did not answer as asked.
    #[error(transparent)]
    Admin(Box<AdminError>),
    /// A host command could not be carried out at all.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The Prometheus server did not answer a query.
    #[error(transparent)]
    Prometheus(Box<PromError>),
    /// The cluster did not do what was asked, or not in time.
    #[error("{0}")]
    Failed(String),
    /// An interlock refused the operation before anything was changed.
    #[error("{0}")]
    Refused(Refusal),
    /// The operator pressed Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl From<AdminError> for OpError {
    fn from(e: AdminError) -> Self {
        // An inventory that names the wrong node is the operator's input to correct, like an unknown id:
        // exit 2, and no waiting or retrying elsewhere will fix it.
        if e.wrong_node() {
            return OpError::Usage(e.to_string());
        }
        OpError::Admin(Box::new(e))
    }
}

impl From<PromError> for OpError {
    fn from(e: PromError) -> Self {
        OpError::Prometheus(Box::new(e))
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// Takes the figure a wait watches; the runtime turns it into the wait's live line.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// How long every node may refuse connections before a wait gives up on the cluster: far longer than a
/// node takes to restart (and the interlocks never let a run take down all of them), far shorter than
/// the minutes a wait's timeout may allow. The rest of that check is in `wait.rs`.
const SILENT_FOR: Duration = Duration::from_secs(30);

/// A cluster as the tool reaches it: its inventory, admin API and hosts.
pub struct Cluster {
    pub inventory: Inventory,
    pub admin: AdminClient,
    pub hosts: Hosts,
    /// The inventory's Prometheus, when it names one.
    pub prometheus: Option<PromClient>,
    /// Real time, or the simulator's clock for a simulated cluster.
    pub clock: Clock,
    /// The waits the script chose (`sleep`, metric windows, watches) on a rehearsal's twin, as (start, end)
    /// in simulated seconds: the part of the predicted duration no node's outage shows.
    waits: std::sync::Mutex<Vec<(f64, f64)>>,
    /// `SILENT_FOR`; shorter in tests.
    silent_for: Duration,
}

impl Cluster {
    pub fn new(inventory: Inventory) -> Result<Cluster, String> {
        let admin = AdminClient::new(&inventory)?;
        let hosts = Hosts::new(&inventory)?;
        let prometheus = inventory
            .prometheus_url
            .as_deref()
            .map(PromClient::new)
            .transpose()?;
        let clock = Clock::new(inventory.sim_control.as_deref(), inventory.sim_warp)?;
        Ok(Cluster {
            inventory,
            admin,
            hosts,
            prometheus,
            clock,
            waits: Default::default(),
            silent_for: SILENT_FOR,
        })
    }

    /// Waits `d` on the cluster's clock: real time, or simulated time on a simulated cluster.
    pub async fn sleep(&self, d: Duration) -> OpResult<()> {
        let span = self.clock.sleep(d).await.map_err(OpError::Failed)?;
        // Only a rehearsal's twin predicts a duration from them: elsewhere the list would only grow.
        if let (true, Some(span), Ok(mut waits)) =
            (self.inventory.sim_warp, span, self.waits.lock())
        {
            waits.push(span);
        }
        Ok(())
    }

    /// The waits the script has chosen on this rehearsal's twin so far (its sleeps, metric windows and
    /// watches), as (start, end) on the twin's clock; none on any other cluster.
    pub fn waits(&self) -> Vec<(f64, f64)> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Unix seconds on the cluster's clock.
    pub async fn unix_now(&self) -> OpResult<f64> {
        self.clock.unix_now().await.map_err(OpError::Failed)
    }

    /// The inventory entry of a node, or a usage error listing the ids there are.
    pub fn node(&self, id: &str) -> OpResult<&NodeSpec> {
        self.inventory.node(id).map_err(OpError::Usage)
    }

    pub async fn test_transaction(&self) -> OpResult<Value> {
        Ok(self.admin.test_transaction().await?)
    }

    pub async fn raft_status(&self) -> OpResult<RaftStatus> {
        Ok(self.admin.raft_status().await?)
    }

    pub async fn backup_status(&self) -> OpResult<Value> {
        Ok(self.admin.backup_status().await?)
    }
}
