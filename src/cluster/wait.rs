//! Waits: one poll-until loop, and the waits built on it. Every wait probes, paces its probes, keeps the
//! live line current, gives up at once on what waiting cannot fix (a node answering as another node, an
//! inventory that does not match the cluster), gives up in bounded time when every node refuses
//! connections, and at its timeout says what it saw last.

use std::future::Future;
use std::time::{Duration, Instant};

use super::survey::Survey;
use super::{Cluster, OpError, OpResult, Progress};
use crate::model::{ClusterHealth, Member, NodeHealth, RaftStatus};
use crate::output::human_duration;
use crate::transport::admin::AdminError;

/// Paces a wait's probes until its deadline: 50 ms at first, growing to a cap (250 ms for the whole cluster, 100 ms for one
/// node), never past the deadline.
struct Pacer {
    started: Instant,
    deadline: Instant,
    interval: Duration,
    cap: Duration,
}

impl Pacer {
    /// For waits that survey every node: a probe is one request per member.
    fn new(timeout: Duration) -> Pacer {
        Pacer::capped(timeout, Duration::from_millis(250))
    }

    /// For waits on one node's `/health` (drained, rejoined, caught up). A wait ends up to one interval
    /// after its condition holds; ten requests a second to one node cost it nothing. Measured, this
    /// shortens in-window upgrades a little and leaves pre-staged ones as they were (docs/BENCHMARKS.md).
    fn one_node(timeout: Duration) -> Pacer {
        Pacer::capped(timeout, Duration::from_millis(100))
    }

    fn capped(timeout: Duration, cap: Duration) -> Pacer {
        let started = Instant::now();
        Pacer {
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

/// How many checks in a row must find every node refusing before a wait gives up, and the least time
/// between two: one refusal is no verdict. How long it must last is `Cluster::silent_for`.
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

/// The live line while every node refuses connections.
const NO_NODE_ANSWERS: &str = "no node answers: every one refuses connections";

/// What one probe of a wait saw.
enum Seen<T> {
    /// The condition holds: the wait returns this.
    Done(T),
    /// An answer, not yet the one awaited: the figure for the live line, and what a timeout names.
    Pending { live: String, last: String },
    /// No answer: what the live line says, the error a timeout names, and whether this may be the whole
    /// cluster gone quiet (a refused connection, or no node answering), so every node is checked.
    NoAnswer {
        live: Option<String>,
        last: String,
        maybe_silent: bool,
    },
}

impl<T> Seen<T> {
    /// One node's probe got no answer: only a refused connection may be the cluster's silence.
    fn unanswered(e: &AdminError, live: Option<&str>) -> Seen<T> {
        Seen::NoAnswer {
            live: live.map(str::to_string),
            last: e.to_string(),
            maybe_silent: e.refused(),
        }
    }
}

impl Cluster {
    /// Probes until `probe` sees its condition (or fails: what waiting cannot fix), at `pacer`'s pace,
    /// each probe given `Pacer::probe_timeout`. Each figure goes to `progress`; a probe that got no
    /// answer has every node checked (`silence`); at the deadline the error is
    /// `timed_out(time spent, what was last seen)`. `waiting_for` ("node3 to rejoin") names the wait.
    async fn poll_until<T, F>(
        &self,
        mut pacer: Pacer,
        waiting_for: &str,
        progress: Progress<'_>,
        mut probe: impl FnMut(Duration) -> F,
        timed_out: impl FnOnce(&str, &str) -> String,
    ) -> OpResult<T>
    where
        F: Future<Output = OpResult<Seen<T>>>,
    {
        let mut silence = Silence::default();
        loop {
            let last = match probe(pacer.probe_timeout()).await? {
                Seen::Done(v) => return Ok(v),
                Seen::Pending { live, last } => {
                    silence.heard();
                    progress(&live);
                    last
                }
                Seen::NoAnswer {
                    live,
                    last,
                    maybe_silent,
                } => {
                    if let Some(live) = live {
                        progress(&live);
                    }
                    if !maybe_silent {
                        silence.heard();
                    } else if self.silence(&mut silence, waiting_for, &pacer).await? {
                        progress(NO_NODE_ANSWERS);
                    }
                    last
                }
            };
            if !pacer.next().await {
                return Err(OpError::Failed(timed_out(&pacer.spent(), &last)));
            }
        }
    }

    /// For a wait whose last probe got no answer: every `SILENCE_CHECK_EVERY` at most, asks every node
    /// (and a simulator's control API) at once. `Ok(true)` while every node refuses connections, and an
    /// error naming them once that has lasted `silent_for` (`SILENT_FOR`), or `SILENT_CHECKS` checks when a simulator's
    /// control API refuses too: then the simulator is gone, and waiting longer cannot help. A node that
    /// answers, or is merely slow, clears it.
    async fn silence(&self, s: &mut Silence, waiting_for: &str, pacer: &Pacer) -> OpResult<bool> {
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
            pacer.spent()
        )))
    }

    /// One probe of a one-node wait: the node's answer or why it gave none, which the wait keeps trying
    /// past; `Err` only for what waiting cannot fix (the node at its address is another node).
    async fn poll_health(
        &self,
        id: &str,
        within: Duration,
    ) -> OpResult<Result<NodeHealth, AdminError>> {
        match self.admin.node_health_within(id, within).await {
            Err(e) if e.wrong_node() => Err(e.into()),
            answer => Ok(answer),
        }
    }

    pub async fn wait_healthy(
        &self,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> OpResult<ClusterHealth> {
        let probe = |_| async move {
            Ok(match self.survey().await {
                // A member list that disagrees with the inventory does not change by waiting.
                Ok(Survey {
                    mismatch: Some(m), ..
                }) => return Err(OpError::Failed(m)),
                Ok(s) => match ClusterHealth::assess(s.members, &s.view, &s.notes) {
                    h if h.healthy => Seen::Done(h),
                    h => Seen::Pending {
                        live: format!("{}/{} healthy", h.healthy_members, h.members.len()),
                        last: h.problems.join("; "),
                    },
                },
                // Neither does an inventory that names the wrong node.
                Err(e @ OpError::Usage(_)) => return Err(e),
                Err(e) => Seen::NoAnswer {
                    live: None,
                    last: e.to_string(),
                    maybe_silent: true,
                },
            })
        };
        self.poll_until(
            Pacer::new(timeout),
            "the cluster to be healthy",
            progress,
            probe,
            |spent, last| format!("cluster: not healthy after {spent}: {last}"),
        )
        .await
    }

    pub async fn wait_drained(
        &self,
        id: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> OpResult<()> {
        self.node(id)?;
        let probe = |within| async move {
            Ok(match self.poll_health(id, within).await? {
                Ok(h) if !h.draining => {
                    return Err(OpError::Failed(format!(
                        "{id}: wait_drained: the node is not draining (call node::drain first)"
                    )));
                }
                Ok(h) if h.in_flight == 0 => Seen::Done(()),
                Ok(h) => Seen::Pending {
                    live: format!("{} in flight", h.in_flight),
                    last: format!("{} requests still in flight", h.in_flight),
                },
                Err(e) => Seen::unanswered(&e, None),
            })
        };
        self.poll_until(
            Pacer::one_node(timeout),
            &format!("{id} to drain"),
            progress,
            probe,
            |spent, last| format!("{id}: not drained after {spent}: {last}"),
        )
        .await
    }

    pub async fn wait_rejoined(
        &self,
        id: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> OpResult<Member> {
        let spec = self.node(id)?;
        let probe = |within| async move {
            Ok(match self.poll_health(id, within).await? {
                Ok(h) if h.joined && h.status == "healthy" => {
                    Seen::Done(h.to_member(&spec.admin_url))
                }
                // A node that refused to join will not change its mind by waiting.
                Ok(h) if !h.joined && h.error.is_some() => {
                    return Err(OpError::Failed(format!(
                        "{id}: did not rejoin: {}",
                        h.error.unwrap_or_default()
                    )));
                }
                Ok(h) => {
                    let why = h.error.unwrap_or_else(|| format!("status {}", h.status));
                    Seen::Pending {
                        live: why.clone(),
                        last: why,
                    }
                }
                Err(e) => Seen::unanswered(
                    &e,
                    Some(if e.unreachable() {
                        "not answering yet"
                    } else {
                        "answering with errors"
                    }),
                ),
            })
        };
        self.poll_until(
            Pacer::one_node(timeout),
            &format!("{id} to rejoin"),
            progress,
            probe,
            |spent, last| format!("{id}: did not rejoin in {spent}: last seen: {last}"),
        )
        .await
    }

    pub async fn wait_caught_up(
        &self,
        id: &str,
        max_lag_ms: i64,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> OpResult<Member> {
        let spec = self.node(id)?;
        let probe = |within| async move {
            Ok(match self.poll_health(id, within).await? {
                Ok(h) if h.joined && h.replication_lag_ms <= max_lag_ms => {
                    Seen::Done(h.to_member(&spec.admin_url))
                }
                Ok(h) => Seen::Pending {
                    live: format!("lag {} ms", h.replication_lag_ms),
                    last: format!(
                        "replication lag {} ms (limit {max_lag_ms} ms)",
                        h.replication_lag_ms
                    ),
                },
                Err(e) => Seen::unanswered(&e, None),
            })
        };
        self.poll_until(
            Pacer::one_node(timeout),
            &format!("{id} to catch up"),
            progress,
            probe,
            |spent, last| format!("{id}: not caught up after {spent}: {last}"),
        )
        .await
    }

    /// After `from` accepted a leadership transfer: waits until `to` leads, and sends admin calls to it
    /// from then on.
    pub(super) async fn wait_leader(
        &self,
        to: &str,
        from: &str,
        timeout: Duration,
        progress: Progress<'_>,
    ) -> OpResult<RaftStatus> {
        let probe = |_| async move {
            Ok(match self.raft_status().await {
                Ok(s) if s.leader.as_deref() == Some(to) => Seen::Done(s),
                Ok(s) => {
                    let live = format!("leader {}", s.leader.as_deref().unwrap_or("none"));
                    Seen::Pending {
                        live: live.clone(),
                        last: live,
                    }
                }
                Err(e @ OpError::Usage(_)) => return Err(e),
                Err(e) => Seen::NoAnswer {
                    live: Some(e.to_string()),
                    last: e.to_string(),
                    maybe_silent: true,
                },
            })
        };
        let status = self
            .poll_until(
                Pacer::new(timeout),
                &format!("{to} to become leader"),
                progress,
                probe,
                |spent, _| {
                    format!(
                        "{to}: did not become leader in {spent} after {from} accepted the transfer"
                    )
                },
            )
            .await?;
        self.admin.prefer(to);
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    #[tokio::test]
    async fn polling_stops_at_the_deadline() {
        // About six probes in a second (50, 75, 112, 168, 250, 250 ms); two leave room for a loaded
        // machine's late wake-ups.
        let mut p = Pacer::new(Duration::from_secs(1));
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
        let mut p = Pacer::one_node(Duration::from_secs(60));
        for _ in 0..5 {
            assert!(p.next().await);
        }
        assert_eq!(p.interval, Duration::from_millis(100));
        assert_eq!(
            Pacer::new(Duration::from_secs(60)).cap,
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

    #[tokio::test]
    async fn a_wait_reports_each_figure_and_returns_what_it_waited_for() {
        let c = cluster_at(&[closed_port()]);
        let mut n = 0;
        let mut seen = Vec::new();
        let got = c
            .poll_until(
                Pacer::one_node(Duration::from_secs(60)),
                "three probes",
                &mut |f| seen.push(f.to_string()),
                |_| {
                    n += 1;
                    let probe = n;
                    async move {
                        Ok(match probe {
                            3 => Seen::Done(probe),
                            _ => Seen::Pending {
                                live: format!("probe {probe}"),
                                last: String::new(),
                            },
                        })
                    }
                },
                |_, _| unreachable!("it does not time out"),
            )
            .await
            .unwrap();
        assert_eq!(got, 3);
        assert_eq!(seen, ["probe 1", "probe 2"]);
    }

    #[tokio::test]
    async fn a_wait_stops_at_once_on_what_waiting_cannot_fix() {
        let c = cluster_at(&[closed_port()]);
        let mut probes = 0;
        let e = c
            .poll_until(
                Pacer::new(Duration::from_secs(60)),
                "nothing",
                &mut |_| {},
                |_| {
                    probes += 1;
                    async { Err::<Seen<()>, _>(OpError::Usage("node1 answers as node2".into())) }
                },
                |_, _| unreachable!("it does not time out"),
            )
            .await
            .unwrap_err();
        assert_eq!(e, OpError::Usage("node1 answers as node2".into()));
        assert_eq!(probes, 1);
    }

    #[tokio::test]
    async fn a_timeout_names_the_time_spent_and_what_was_last_seen() {
        let c = cluster_at(&[closed_port()]);
        let mut n = 0;
        let e = c
            .poll_until(
                Pacer::one_node(Duration::from_millis(300)),
                "the last figure",
                &mut |_| {},
                |_| {
                    n += 1;
                    let last = format!("figure {n}");
                    async move {
                        Ok(Seen::<()>::Pending {
                            live: String::new(),
                            last,
                        })
                    }
                },
                |spent, last| format!("gave up after {spent}: {last}"),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("gave up after ") && e.ends_with(&format!(": figure {n}")),
            "{e}"
        );
        assert!(n >= 2, "{n}");
    }

    #[tokio::test]
    async fn only_an_answer_that_may_be_silence_has_every_node_checked() {
        // Every node refuses, for longer than the cluster's bound (1 s here). Probes that say so give up
        // on the silence; probes that say the error was something else run to the wait's own timeout.
        async fn wait(c: &Cluster, maybe_silent: bool, timeout: Duration) -> String {
            c.poll_until(
                Pacer::one_node(timeout),
                "the test",
                &mut |_| {},
                |_| async move {
                    Ok(Seen::<()>::NoAnswer {
                        live: None,
                        last: "an error".into(),
                        maybe_silent,
                    })
                },
                |spent, last| format!("timed out after {spent}: {last}"),
            )
            .await
            .unwrap_err()
            .to_string()
        }
        let c = cluster_at(&[closed_port(), closed_port()]);
        let e = wait(&c, true, Duration::from_secs(60)).await;
        assert!(
            e.starts_with("every node (node1, node2) stopped answering: ")
                && e.contains("gave up waiting for the test after "),
            "{e}"
        );
        let e = wait(&c, false, Duration::from_secs(3)).await;
        assert!(
            e.starts_with("timed out after ") && e.ends_with(": an error"),
            "{e}"
        );
    }
}
