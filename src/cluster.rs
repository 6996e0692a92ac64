//! Cluster operations as the script API offers them: one admin call, a host command, or a wait on a
//! condition. Waits poll with a short adaptive interval so they wake soon after the change they wait for,
//! give up at their timeout, and then say what was last seen.
//!
//! Errors are sentences naming the node, the operation and the cause; `OpError::Usage` marks input that
//! was wrong (an unknown node id) rather than a cluster that misbehaved.
//!
//! The interlocks live here too (docs/SAFETY.md): stop, restart and drain keep a quorum; installs keep
//! the version skew policy; a leadership transfer goes to a node as new and as caught up as the leader.
//! Each operation checks its own before it acts, so no caller can skip one by accident; `force` is the
//! explicit override. `interlock` gives the same verdict without acting, for a caller that wants to
//! answer early or say what an override overrides.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use semver::Version;
use serde_json::Value;

use crate::inventory::{Inventory, NodeSpec};
use crate::model::figures::{figures, Figures};
use crate::model::metrics_text::Scrape;
use crate::model::policy::{parse_version, quorum_after, skew_conflicts};
use crate::model::types::{CAUGHT_UP_MS, UNKNOWN_VERSION};
use crate::model::{ClusterHealth, Member, NodeHealth, RaftStatus};
use crate::output::human_duration;
use crate::transport::admin::{AdminClient, AdminError};
use crate::transport::clock::Clock;
use crate::transport::host::{ExecOutput, HostError, HostOp, Hosts};
use crate::transport::prometheus::{
    group_figure_queries, group_figure_queries_ms, PromClient, PromError, PromValue,
};

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

/// The rules the interlocks enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Stop, restart and drain leave a quorum of members up, healthy, joined and caught up.
    Quorum,
    /// An install keeps every running member within one minor version.
    Skew,
    /// Leadership goes only to a node as new as the leader and caught up.
    TransferTarget,
}

impl Rule {
    /// The rule's name as messages, the journal and `e.rule` in a script say it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Quorum => "quorum",
            Rule::Skew => "version skew",
            Rule::TransferTarget => "transfer target",
        }
    }
}

/// An interlock's verdict against an operation: the rule and a sentence saying why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub rule: Rule,
    /// The operation: "node3: stop".
    pub subject: String,
    /// What it would break, naming the members counted.
    pub reason: String,
    /// The whole refusal: the reason, that nothing was changed, the rule, and the override.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An operation an interlock guards.
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<'a> {
    /// `op` ("stop", "restart", "drain") takes `id` out of service.
    TakeDown { id: &'a str, op: &'static str },
    /// `op` ("install", "stage", "activate") puts `version` on `id`.
    Version {
        id: &'a str,
        op: &'static str,
        version: &'a Version,
    },
    /// Leadership moves to `to`.
    Transfer { to: &'a str },
}

impl Guarded<'_> {
    /// The interlock a host operation falls under. Staging is held to the skew policy too: a build
    /// the cluster could never run is refused before it costs a compile.
    pub fn of_host<'a>(id: &'a str, op: &'a HostOp) -> Option<Guarded<'a>> {
        match op {
            HostOp::Stop => Some(Guarded::TakeDown { id, op: "stop" }),
            HostOp::Restart => Some(Guarded::TakeDown { id, op: "restart" }),
            HostOp::Install(v) | HostOp::Stage(v) | HostOp::Activate(v) => Some(Guarded::Version {
                id,
                op: op.name(),
                version: v,
            }),
            HostOp::Start | HostOp::Exec(_) => None,
        }
    }

    /// The operation as messages name it: "node3: stop".
    fn subject(&self) -> String {
        match self {
            Guarded::TakeDown { id, op } => format!("{id}: {op}"),
            Guarded::Version { id, op, version } => format!("{id}: {op} {version}"),
            Guarded::Transfer { to } => format!("{to}: transfer leadership"),
        }
    }

    /// How a script overrides this interlock, for the refusal's last sentence.
    fn override_hint(&self) -> String {
        match self {
            Guarded::TakeDown { id, op } => format!("node::{op}(\"{id}\", #{{force: true}})"),
            Guarded::Version { id, op, version } => {
                format!("node::{op}(\"{id}\", \"{version}\", #{{force: true}})")
            }
            Guarded::Transfer { to } => {
                format!("raft::transfer_leadership(\"{to}\", #{{force: true}})")
            }
        }
    }
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

/// Reports the figure a wait watches; the runtime turns it into a progress line.
pub type Report<'a> = &'a mut dyn FnMut(&str);

/// Polls until a deadline: 50 ms at first, growing to a cap (250 ms for the whole cluster, 100 ms for one
/// node), never past the deadline.
struct Poll {
    started: Instant,
    deadline: Instant,
    interval: Duration,
    cap: Duration,
}

impl Poll {
    /// For waits that survey every node: a probe is one request per member.
    fn new(timeout: Duration) -> Poll {
        Poll::capped(timeout, Duration::from_millis(250))
    }

    /// For waits on one node's `/health` (drained, rejoined, caught up). A wait ends up to one interval
    /// after its condition holds; ten requests a second to one node cost it nothing. Measured, this
    /// shortens in-window upgrades a little and leaves pre-staged ones as they were (docs/BENCHMARKS.md).
    fn one_node(timeout: Duration) -> Poll {
        Poll::capped(timeout, Duration::from_millis(100))
    }

    fn capped(timeout: Duration, cap: Duration) -> Poll {
        let started = Instant::now();
        Poll {
            started,
            deadline: started + timeout,
            interval: Duration::from_millis(50),
            cap,
        }
    }

    /// The real time the wait has taken: a last probe can outlast the deadline, and a message says what
    /// was spent, not what was planned.
    fn spent(&self) -> String {
        human_duration(self.started.elapsed())
    }

    /// Sleeps until the next probe; false once the deadline has passed.
    async fn next(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.interval.min(self.deadline - now)).await;
        self.interval = (self.interval * 3 / 2).min(self.cap);
        true
    }

    /// A probe's own timeout: short, so one hung node cannot eat the whole wait.
    fn probe_timeout(&self) -> Duration {
        Duration::from_secs(2).min(
            self.deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(200)),
        )
    }
}

/// How long every node may refuse connections before a wait gives up on the cluster: far longer than a
/// node takes to restart (and the interlocks never let a run take down all of them), far shorter than
/// the minutes a wait's timeout may allow.
const SILENT_FOR: Duration = Duration::from_secs(30);

/// How many checks in a row must find every node refusing before a wait gives up, and the least time
/// between two: one refusal is no verdict.
const SILENT_CHECKS: u32 = 3;
const SILENCE_CHECK_EVERY: Duration = Duration::from_millis(500);

/// A check's time for each node (and a simulator's control API): a refusal comes at once, and an
/// address slower than this is not refusing.
const SILENCE_PROBE: Duration = Duration::from_millis(500);

/// What a wait has seen of a cluster that does not answer at all: when every node began refusing
/// connections, and how many checks in a row have found them all refusing.
#[derive(Default)]
struct Silence {
    since: Option<Instant>,
    checked: Option<Instant>,
    checks: u32,
}

impl Silence {
    /// Something answered: the cluster is not silent.
    fn heard(&mut self) {
        self.since = None;
        self.checks = 0;
    }
}

/// What one survey of every node found.
struct Survey {
    members: Vec<Member>,
    /// The leader's own report (any node's when no leader answered): term, commit index, pause.
    view: NodeHealth,
    notes: BTreeMap<String, String>,
    /// How the inventory differs from the cluster's own member list, when it does: waiting cannot fix it.
    mismatch: Option<String>,
}

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

    /// For a wait whose last probe got no answer: every `SILENCE_CHECK_EVERY` at most, asks every node
    /// (and a simulator's control API) at once. `Ok(true)` while every node refuses connections, and an
    /// error naming them once that has lasted `SILENT_FOR`, or `SILENT_CHECKS` checks when a simulator's
    /// control API refuses too: then the simulator is gone, and waiting longer cannot help. A node that
    /// answers, or is merely slow, clears it.
    async fn silence(&self, s: &mut Silence, waiting_for: &str, poll: &Poll) -> OpResult<bool> {
        if s.checked.is_some_and(|t| t.elapsed() < SILENCE_CHECK_EVERY) {
            return Ok(s.since.is_some());
        }
        s.checked = Some(Instant::now());
        let probes = self
            .inventory
            .nodes
            .iter()
            .map(|n| self.admin.node_health_within(&n.id, SILENCE_PROBE));
        let (nodes, control) = tokio::join!(
            futures_util::future::join_all(probes),
            self.clock.control_refuses(SILENCE_PROBE)
        );
        if !nodes
            .iter()
            .all(|r| r.as_ref().is_err_and(AdminError::refused))
        {
            s.heard();
            return Ok(false);
        }
        let since = *s.since.get_or_insert_with(Instant::now);
        s.checks += 1;
        let ids: Vec<&str> = self.inventory.nodes.iter().map(|n| n.id.as_str()).collect();
        let ids = ids.join(", ");
        let verdict = match &control {
            Some(addr) if s.checks >= SILENT_CHECKS => format!(
                "every node ({ids}) and the simulator's control API ({addr}) stopped answering: \
                 connections refused, so the simulator has stopped"
            ),
            None if s.checks >= SILENT_CHECKS && since.elapsed() >= self.silent_for => format!(
                "every node ({ids}) stopped answering: connections refused on every admin URL for {}, \
                 so the cluster is down or this machine can no longer reach it",
                human_duration(since.elapsed())
            ),
            _ => return Ok(true),
        };
        Err(OpError::Failed(format!(
            "{verdict}; gave up waiting for {waiting_for} after {}",
            poll.spent()
        )))
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

    /// Every node's own `/health` (asked concurrently) merged with the cluster's membership view: a node's
    /// own report wins; a node the tool cannot reach is down from where the operator stands, with the
    /// cluster's last word on its role and version; members missing from the inventory are noted.
    async fn survey(&self) -> OpResult<Survey> {
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
        for (spec, report) in self.inventory.nodes.iter().zip(own) {
            match report {
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

    pub async fn set_paused(&self, paused: bool) -> OpResult<()> {
        self.admin.set_paused(paused).await?;
        Ok(())
    }

    pub async fn wait_healthy(
        &self,
        timeout: Duration,
        report: Report<'_>,
    ) -> OpResult<ClusterHealth> {
        let mut poll = Poll::new(timeout);
        let mut silence = Silence::default();
        let mut last;
        loop {
            let survey = self.survey().await;
            if survey.is_ok() {
                silence.heard();
            }
            let health = match survey {
                // A member list that disagrees with the inventory does not change by waiting.
                Ok(Survey {
                    mismatch: Some(m), ..
                }) => return Err(OpError::Failed(m)),
                Ok(s) => Ok(ClusterHealth::assess(s.members, &s.view, &s.notes)),
                // Neither does an inventory that names the wrong node.
                Err(e @ OpError::Usage(_)) => return Err(e),
                Err(e) => Err(e),
            };
            last = match health {
                Ok(h) if h.healthy => return Ok(h),
                Ok(h) => {
                    report(&format!(
                        "{}/{} healthy",
                        h.healthy_members,
                        h.members.len()
                    ));
                    h.problems.join("; ")
                }
                Err(e) => {
                    if self
                        .silence(&mut silence, "the cluster to be healthy", &poll)
                        .await?
                    {
                        report("no node answers: every one refuses connections");
                    }
                    e.to_string()
                }
            };
            if !poll.next().await {
                return Err(OpError::Failed(format!(
                    "cluster: not healthy after {}: {last}",
                    poll.spent()
                )));
            }
        }
    }

    pub async fn test_transaction(&self) -> OpResult<Value> {
        Ok(self.admin.test_transaction().await?)
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

    /// What the interlock guarding `g` says now: `Some(refusal)` when the operation would break its rule.
    /// Asks every node (one survey); changes nothing.
    pub async fn interlock(&self, g: &Guarded<'_>) -> OpResult<Option<Refusal>> {
        let id = match g {
            Guarded::TakeDown { id, .. } | Guarded::Version { id, .. } => id,
            Guarded::Transfer { to } => to,
        };
        self.node(id)?;
        let members = self.survey().await?.members;
        let refusal = match g {
            Guarded::TakeDown { id, op } => take_down(&members, id, op),
            Guarded::Version { id, version, .. } => version_skew(&members, id, version),
            Guarded::Transfer { to } => transfer_target(&members, to),
        };
        let subject = g.subject();
        Ok(refusal.map(|(rule, reason)| Refusal {
            rule,
            message: format!(
                "{subject} refused by the {} interlock: {reason}. Nothing was changed. In an emergency, override it with {}",
                rule.name(),
                g.override_hint()
            ),
            subject,
            reason,
        }))
    }

    /// Refuses `g` unless its interlock allows it or `force` overrides it.
    async fn enforce(&self, g: &Guarded<'_>, force: bool) -> OpResult<()> {
        if force {
            return Ok(());
        }
        match self.interlock(g).await? {
            Some(r) => Err(OpError::Refused(r)),
            None => Ok(()),
        }
    }

    /// Drains or undrains a node. A drain is refused when it would leave too few members serving
    /// (unless `force`).
    pub async fn drain(&self, id: &str, drain: bool, force: bool) -> OpResult<()> {
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

    /// A one-node wait's probe got no answer: a refusal may be the node restarting, or the whole
    /// cluster gone; `silence` tells them apart.
    async fn unanswered(
        &self,
        e: &AdminError,
        silence: &mut Silence,
        waiting_for: &str,
        poll: &Poll,
        report: Report<'_>,
    ) -> OpResult<()> {
        if !e.refused() {
            silence.heard();
        } else if self.silence(silence, waiting_for, poll).await? {
            report("no node answers: every one refuses connections");
        }
        Ok(())
    }

    /// One probe of a wait: the node's answer or why it gave none, which the wait keeps trying past;
    /// `Err` only for what waiting cannot fix (the node at its address is another node).
    async fn poll_health(&self, id: &str, poll: &Poll) -> OpResult<Result<NodeHealth, AdminError>> {
        match self
            .admin
            .node_health_within(id, poll.probe_timeout())
            .await
        {
            Err(e) if e.wrong_node() => Err(e.into()),
            answer => Ok(answer),
        }
    }

    pub async fn wait_drained(
        &self,
        id: &str,
        timeout: Duration,
        report: Report<'_>,
    ) -> OpResult<()> {
        self.node(id)?;
        let mut poll = Poll::one_node(timeout);
        let mut silence = Silence::default();
        let mut last;
        loop {
            let probe = self.poll_health(id, &poll).await?;
            if probe.is_ok() {
                silence.heard();
            }
            last = match probe {
                Ok(h) if !h.draining => {
                    return Err(OpError::Failed(format!(
                        "{id}: wait_drained: the node is not draining (call node::drain first)"
                    )));
                }
                Ok(h) if h.in_flight == 0 => return Ok(()),
                Ok(h) => {
                    report(&format!("{} in flight", h.in_flight));
                    format!("{} requests still in flight", h.in_flight)
                }
                Err(e) => {
                    self.unanswered(&e, &mut silence, &format!("{id} to drain"), &poll, report)
                        .await?;
                    e.to_string()
                }
            };
            if !poll.next().await {
                return Err(OpError::Failed(format!(
                    "{id}: not drained after {}: {last}",
                    poll.spent()
                )));
            }
        }
    }

    /// Runs a host operation; for service control and installs a non-zero exit is an error. Stop,
    /// restart and installs are refused first when their interlock says so (unless `force`).
    pub async fn host(&self, id: &str, op: HostOp, force: bool) -> OpResult<ExecOutput> {
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

    pub async fn install(&self, id: &str, version: &Version, force: bool) -> OpResult<()> {
        self.host(id, HostOp::Install(version.clone()), force)
            .await
            .map(|_| ())
    }

    pub async fn wait_rejoined(
        &self,
        id: &str,
        timeout: Duration,
        report: Report<'_>,
    ) -> OpResult<Member> {
        let spec = self.node(id)?;
        let mut poll = Poll::one_node(timeout);
        let mut silence = Silence::default();
        let mut last;
        loop {
            let probe = self.poll_health(id, &poll).await?;
            if probe.is_ok() {
                silence.heard();
            }
            last = match probe {
                Ok(h) if h.joined && h.status == "healthy" => {
                    return Ok(h.to_member(&spec.admin_url))
                }
                // A node that refused to join will not change its mind by waiting.
                Ok(h) if !h.joined && h.error.is_some() => {
                    return Err(OpError::Failed(format!(
                        "{id}: did not rejoin: {}",
                        h.error.unwrap_or_default()
                    )));
                }
                Ok(h) => {
                    let why = h
                        .error
                        .clone()
                        .unwrap_or_else(|| format!("status {}", h.status));
                    report(&why);
                    why
                }
                Err(e) => {
                    report(if e.unreachable() {
                        "not answering yet"
                    } else {
                        "answering with errors"
                    });
                    self.unanswered(&e, &mut silence, &format!("{id} to rejoin"), &poll, report)
                        .await?;
                    e.to_string()
                }
            };
            if !poll.next().await {
                return Err(OpError::Failed(format!(
                    "{id}: did not rejoin in {}: last seen: {last}",
                    poll.spent()
                )));
            }
        }
    }

    pub async fn wait_caught_up(
        &self,
        id: &str,
        max_lag_ms: i64,
        timeout: Duration,
        report: Report<'_>,
    ) -> OpResult<Member> {
        let spec = self.node(id)?;
        let mut poll = Poll::one_node(timeout);
        let mut silence = Silence::default();
        let mut last;
        loop {
            let probe = self.poll_health(id, &poll).await?;
            if probe.is_ok() {
                silence.heard();
            }
            last = match probe {
                Ok(h) if h.joined && h.replication_lag_ms <= max_lag_ms => {
                    return Ok(h.to_member(&spec.admin_url))
                }
                Ok(h) => {
                    report(&format!("lag {} ms", h.replication_lag_ms));
                    format!(
                        "replication lag {} ms (limit {max_lag_ms} ms)",
                        h.replication_lag_ms
                    )
                }
                Err(e) => {
                    self.unanswered(
                        &e,
                        &mut silence,
                        &format!("{id} to catch up"),
                        &poll,
                        report,
                    )
                    .await?;
                    e.to_string()
                }
            };
            if !poll.next().await {
                return Err(OpError::Failed(format!(
                    "{id}: not caught up after {}: {last}",
                    poll.spent()
                )));
            }
        }
    }

    pub async fn raft_status(&self) -> OpResult<RaftStatus> {
        Ok(self.admin.raft_status().await?)
    }

    /// Asks the leader to hand over to `to` and waits until `to` leads. An older or lagging `to` is
    /// refused before the cluster is asked (unless `force`).
    pub async fn transfer_leadership(
        &self,
        to: &str,
        timeout: Duration,
        force: bool,
        report: Report<'_>,
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
        let mut poll = Poll::new(timeout);
        let mut silence = Silence::default();
        loop {
            let status = self.raft_status().await;
            if status.is_ok() {
                silence.heard();
            }
            match status {
                Ok(s) if s.leader.as_deref() == Some(to) => {
                    self.admin.prefer(to);
                    return Ok(s);
                }
                Ok(s) => report(&format!("leader {}", s.leader.as_deref().unwrap_or("none"))),
                Err(e @ OpError::Usage(_)) => return Err(e),
                Err(e) => {
                    report(&e.to_string());
                    let waiting_for = format!("{to} to become leader");
                    if self.silence(&mut silence, &waiting_for, &poll).await? {
                        report("no node answers: every one refuses connections");
                    }
                }
            }
            if !poll.next().await {
                return Err(OpError::Failed(format!(
                    "{to}: did not become leader in {} after {leader} accepted the transfer",
                    poll.spent()
                )));
            }
        }
    }

    pub async fn backup_status(&self) -> OpResult<Value> {
        Ok(self.admin.backup_status().await?)
    }

    pub async fn snapshot(&self) -> OpResult<Value> {
        let leader = self.leader().await?;
        Ok(self.admin.snapshot(&leader).await?)
    }

    pub async fn scrape(&self, id: &str) -> OpResult<Scrape> {
        self.node(id)?;
        let text = self.admin.metrics_text(id).await?;
        Scrape::parse(&text).map_err(|e| {
            OpError::Failed(format!(
                "{id}: scrape failed: /metrics is not Prometheus text: {e}"
            ))
        })
    }

    /// Scrapes several nodes at once (at most `FAN_OUT` in flight), in the order given.
    pub async fn scrape_many(&self, ids: &[String]) -> OpResult<Vec<Scrape>> {
        use futures_util::StreamExt;
        let results: Vec<OpResult<Scrape>> = futures_util::stream::iter(ids.iter())
            .map(|id| self.scrape(id))
            .buffered(crate::transport::admin::FAN_OUT)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// The canary figures of a group of nodes pooled (transactions and latency buckets summed, gauges
    /// and throughput averaged per node) over `window`: every node scraped at its start and its end.
    pub async fn sample_pooled(&self, ids: &[String], window: Duration) -> OpResult<Figures> {
        for id in ids {
            self.node(id)?;
        }
        let before = self.scrape_many(ids).await?;
        let started = self.unix_now().await?;
        self.sleep(window).await?;
        let after = self.scrape_many(ids).await?;
        let secs = (self.unix_now().await? - started).max(0.001);
        let pairs: Vec<(&Scrape, &Scrape)> = before.iter().zip(after.iter()).collect();
        Ok(figures(&pairs, secs))
    }

    /// The canary figures of `group[0]` and, when more ids are given, of the rest as one baseline: every
    /// node scraped at the start and at the end of `window`, all at once.
    pub async fn sample(
        &self,
        canary: &str,
        baseline: &[String],
        window: Duration,
    ) -> OpResult<(Figures, Option<Figures>)> {
        let mut ids = vec![canary.to_string()];
        ids.extend(baseline.iter().cloned());
        for id in &ids {
            self.node(id)?;
        }
        if baseline.iter().any(|b| b == canary) {
            return Err(OpError::Usage(format!(
                "metrics: the canary `{canary}` cannot be part of its own baseline"
            )));
        }
        let before = self.scrape_many(&ids).await?;
        let started = self.unix_now().await?;
        self.sleep(window).await?;
        let after = self.scrape_many(&ids).await?;
        // On the cluster's clock: a simulated cluster's counters move in simulated seconds.
        let secs = (self.unix_now().await? - started).max(0.001);
        let pairs: Vec<(&Scrape, &Scrape)> = before.iter().zip(after.iter()).collect();
        let canary_figures = figures(&pairs[..1], secs);
        let baseline_figures = (pairs.len() > 1).then(|| figures(&pairs[1..], secs));
        Ok((canary_figures, baseline_figures))
    }

    fn prometheus(&self) -> OpResult<&PromClient> {
        self.prometheus.as_ref().ok_or_else(|| {
            OpError::Usage(format!(
                "metrics: the inventory `{}` names no Prometheus: add `prometheus_url = \"http://HOST:9090\"` under [cluster]",
                self.inventory.source.display()
            ))
        })
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

    /// An instant PromQL query against the inventory's Prometheus.
    pub async fn query(&self, promql: &str) -> OpResult<PromValue> {
        self.prometheus()?
            .query(promql)
            .await
            .map_err(OpError::from)
    }

    /// The canary figures of a group of nodes over the last `window`, from Prometheus: no waiting, and
    /// windows longer than this run. The five queries go out at once.
    pub async fn figures_past(&self, ids: &[String], window: Duration) -> OpResult<Figures> {
        self.figures_recorded(ids, window, None).await
    }

    /// Whether the inventory names a Prometheus.
    pub fn has_prometheus(&self) -> bool {
        self.prometheus.is_some()
    }

    /// The canary figures of a group of nodes over the `window` that ends at `until` (unix seconds on the
    /// wall clock Prometheus keeps; `None`: now), from Prometheus. Windows are kept to the millisecond.
    pub async fn figures_recorded(
        &self,
        ids: &[String],
        window: Duration,
        until: Option<f64>,
    ) -> OpResult<Figures> {
        let prom = self.prometheus()?;
        let mut instances = Vec::with_capacity(ids.len());
        for id in ids {
            instances.push(self.node(id)?.prometheus_instance.as_str());
        }
        let q = match until {
            None => group_figure_queries(&instances, window.as_secs().max(1)),
            Some(_) => group_figure_queries_ms(&instances, window.as_millis() as u64),
        };
        let when = match until {
            None => format!("in the last {}", human_duration(window)),
            Some(t) => format!(
                "in the {} before {}",
                human_duration(window),
                crate::journal::rfc3339(t)
            ),
        };
        let ask = |query: String| {
            let when = when.clone();
            async move {
                match prom.query_at(&query, until).await {
                    Ok(v) => v.single().ok_or_else(|| {
                        OpError::Failed(format!(
                            "metrics: Prometheus has no data for {} {when} (query `{query}`)",
                            ids.join(", "),
                        ))
                    }),
                    Err(e) => Err(OpError::from(e)),
                }
            }
        };
        let (error_rate, p99, lag, memory, tps) = tokio::join!(
            ask(q.error_rate.clone()),
            ask(q.latency_p99_seconds.clone()),
            ask(q.replication_lag_seconds.clone()),
            ask(q.memory_bytes.clone()),
            ask(q.tx_per_sec.clone())
        );
        let error_rate = error_rate?;
        Ok(Figures {
            // No transactions in the window is no errors, as in the scrape-based figures.
            error_rate: if error_rate.is_nan() { 0.0 } else { error_rate },
            latency_p99_ms: p99? * 1000.0,
            replication_lag_ms: lag? * 1000.0,
            memory_bytes: memory?,
            tx_per_sec: tps?,
        })
    }
}

/// The quorum interlock: taking `id` out must leave a quorum of members up, healthy, joined and caught
/// up. An operation that does not change that count (the node is already down; a drain of a node that
/// does not count) is not refused for it.
fn take_down(members: &[Member], id: &str, op: &str) -> Option<(Rule, String)> {
    let target = members.iter().find(|m| m.id == id)?;
    let changes = match op {
        "drain" => crate::model::policy::counts_for_quorum(target),
        _ => target.state != "down",
    };
    let q = quorum_after(members, id);
    if !changes || q.holds() {
        return None;
    }
    let counted = if q.counted.is_empty() {
        "none".to_string()
    } else {
        q.counted.join(", ")
    };
    let others: String = q
        .not_counted
        .iter()
        .map(|(id, why)| format!("; {id} {why}"))
        .collect();
    Some((
        Rule::Quorum,
        format!(
            "afterwards only {} of {} members would be up, healthy, joined and caught up ({counted}{others}), and the cluster needs {} for quorum",
            q.counted.len(),
            q.members,
            q.quorum
        ),
    ))
}

/// The skew interlock: after the install every running member is within one minor version.
fn version_skew(members: &[Member], id: &str, v: &Version) -> Option<(Rule, String)> {
    let far = skew_conflicts(members, id, v);
    if far.is_empty() {
        return None;
    }
    let named: Vec<String> = far.iter().map(|(id, v)| format!("{id} runs {v}")).collect();
    Some((
        Rule::Skew,
        format!(
            "{}, more than one minor version from {v}; the skew policy allows at most one minor version between running members",
            named.join(", ")
        ),
    ))
}

/// The transfer interlock: the target is not older than the leader, and it is caught up. A target that
/// is down is left to the cluster to refuse.
fn transfer_target(members: &[Member], to: &str) -> Option<(Rule, String)> {
    let target = members.iter().find(|m| m.id == to)?;
    if target.state == "down" {
        return None;
    }
    let leader = members
        .iter()
        .find(|m| m.role == "leader" && m.state != "down" && m.id != to)?;
    let refuse = |why: String| Some((Rule::TransferTarget, why));
    if let (Ok(t), Ok(l)) = (
        parse_version(&target.version),
        parse_version(&leader.version),
    ) {
        if t < l {
            return refuse(format!(
                "{to} runs {t}, older than the leader {}'s {l}: the older version may not read what the leader wrote",
                leader.id
            ));
        }
    }
    if target.replication_lag_ms > CAUGHT_UP_MS {
        return refuse(format!(
            "{to} is catching up, lag {} ms (limit {CAUGHT_UP_MS} ms): it would lead with an old log",
            target.replication_lag_ms
        ));
    }
    None
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

    fn member(id: &str, role: &str, state: &str, lag: i64, version: &str) -> Member {
        Member {
            id: id.into(),
            address: String::new(),
            role: role.into(),
            state: state.into(),
            healthy: state != "down",
            version: version.into(),
            commit_index: 0,
            applied_index: 0,
            replication_lag_ms: lag,
        }
    }

    #[test]
    fn taking_down_is_refused_only_when_it_changes_the_count_below_quorum() {
        let ms = [
            member("node1", "leader", "up", 0, "0.10.4"),
            member("node2", "follower", "down", 0, "0.10.4"),
            member("node3", "follower", "drained", 0, "0.10.4"),
        ];
        // node2 is already down: stopping it again changes nothing.
        assert_eq!(take_down(&ms, "node2", "stop"), None);
        // node3 is drained, so it does not count, but it still votes: stopping it is refused.
        let (rule, why) = take_down(&ms, "node3", "stop").unwrap();
        assert_eq!(rule, Rule::Quorum);
        assert!(
            why.contains("only 1 of 3") && why.contains("node2 down"),
            "{why}"
        );
        // Draining it again does not change the count.
        assert_eq!(take_down(&ms, "node3", "drain"), None);
        assert!(take_down(&ms, "node1", "drain").is_some());
    }

    #[test]
    fn a_transfer_target_must_be_as_new_and_caught_up() {
        let ms = [
            member("node1", "leader", "up", 0, "0.11.0"),
            member("node2", "follower", "up", 0, "0.10.4"),
            member("node3", "follower", "up", 900, "0.11.0"),
            member("node4", "follower", "down", 0, "0.10.4"),
            member("node5", "follower", "up", 0, "0.11.0"),
        ];
        assert!(transfer_target(&ms, "node2")
            .unwrap()
            .1
            .contains("older than the leader node1's"));
        assert!(transfer_target(&ms, "node3")
            .unwrap()
            .1
            .contains("lag 900 ms"));
        // Down: left to the cluster to refuse.
        assert_eq!(transfer_target(&ms, "node4"), None);
        assert_eq!(transfer_target(&ms, "node5"), None);
        assert_eq!(transfer_target(&ms, "node1"), None);
    }

    #[tokio::test]
    async fn polling_stops_at_the_deadline() {
        // About six probes in a second (50, 75, 112, 168, 250, 250 ms); two leave room for a loaded
        // machine's late wake-ups.
        let mut p = Poll::new(Duration::from_secs(1));
        let start = Instant::now();
        let mut probes = 0;
        while p.next().await {
            probes += 1;
        }
        assert!(probes >= 2, "{probes}");
        assert!(start.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_wait_on_one_node_polls_at_most_100_ms_apart() {
        // 50, 75, 112 ms, then held at 100: about half a second of real sleeping.
        let mut p = Poll::one_node(Duration::from_secs(60));
        for _ in 0..5 {
            assert!(p.next().await);
        }
        assert_eq!(p.interval, Duration::from_millis(100));
        assert_eq!(
            Poll::new(Duration::from_secs(60)).cap,
            Duration::from_millis(250)
        );
    }

    /// A cluster whose nodes listen at these addresses (none, for a refusing one), on real time.
    fn cluster_at(addrs: &[String]) -> Cluster {
        let mut toml = String::new();
        for (i, a) in addrs.iter().enumerate() {
            toml.push_str(&format!(
                "[[nodes]]\nid = \"node{}\"\nadmin_url = \"http://{a}\"\n",
                i + 1
            ));
        }
        let mut c =
            Cluster::new(Inventory::parse(&toml, std::path::Path::new("c.toml")).unwrap()).unwrap();
        c.silent_for = Duration::from_secs(1);
        c
    }

    /// An address nothing listens on: connections to it are refused.
    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    #[tokio::test]
    async fn a_wait_gives_up_once_every_node_has_refused_connections_for_a_while() {
        let c = cluster_at(&[closed_port(), closed_port()]);
        let started = Instant::now();
        let mut seen = Vec::new();
        let e = c
            .wait_rejoined("node1", Duration::from_secs(120), &mut |f| {
                seen.push(f.to_string())
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "every node (node1, node2) stopped answering: connections refused on every admin URL for "
            ) && e.contains("gave up waiting for node1 to rejoin"),
            "{e}"
        );
        // Its bound (1 s here), not the wait's two minutes; the live line said so before.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        assert!(seen
            .iter()
            .any(|f| f == "no node answers: every one refuses connections"));
        let e = c
            .wait_healthy(Duration::from_secs(120), &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("gave up waiting for the cluster to be healthy"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_node_that_accepts_connections_keeps_the_wait_going() {
        // node2 accepts connections (the kernel's backlog) and never answers: it is not refusing, so the
        // wait runs to its own timeout and says what it saw.
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = cluster_at(&[closed_port(), hung.local_addr().unwrap().to_string()]);
        let e = c
            .wait_rejoined("node1", Duration::from_secs(3), &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("node1: did not rejoin in "), "{e}");
        assert!(e.contains("connection refused"), "{e}");
    }
}
