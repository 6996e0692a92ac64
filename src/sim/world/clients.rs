//! The clients: a steady write load spread by a load balancer over the nodes in service, each write
//! retried until its deadline, forwarded to the leader, acknowledged once committed; and the history of
//! acknowledged writes, against which lost writes are judged.

use std::collections::{BTreeMap, VecDeque};

use super::node::{Batch, Entry, Node, Probe, ProbeOutcome, Role};
use super::{ms, World, SLICE};

/// Client writes per simulated second, spread over the nodes in service.
const CLIENT_RATE: f64 = 300.0;
/// How long a client keeps retrying a write before it counts as failed.
const CLIENT_DEADLINE: f64 = 2.0;
/// How long the load balancer's health check takes to notice an undrained node is gone.
const LB_DOWN_DETECT: f64 = 3.0;
/// How long a healthy node waits before the load balancer routes to it again.
const LB_UP_DELAY: f64 = 1.0;
/// A staging compile shares the host's CPU with the serving process: its writes are this much slower.
const STAGING_LATENCY_FACTOR: f64 = 1.3;
const FAILED_EVENT_INTERVAL: f64 = 1.0;
const BAD_ABORT_RATE: f64 = 0.05;
const BAD_LATENCY_FACTOR: f64 = 4.0;
/// A healthy commit takes one to two slices; only waits beyond that show in the latency.
const NORMAL_COMMIT_DELAY: f64 = 2.0 * SLICE;

impl World {
    pub(super) fn update_load_balancer(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let partitioned = self.partitioned(i);
            let n = &mut self.nodes[i];
            let good = n.is_running() && n.joined && !n.draining && !n.faults.hang && !partitioned;
            if n.clients.in_service {
                if n.draining {
                    n.clients.in_service = false;
                    n.clients.bad_since = None;
                    n.clients.good_since = None;
                } else if good {
                    n.clients.bad_since = None;
                } else if now - *n.clients.bad_since.get_or_insert(now) >= LB_DOWN_DETECT {
                    n.clients.in_service = false;
                    n.clients.bad_since = None;
                    n.clients.good_since = None;
                }
            } else if !good {
                n.clients.good_since = None;
            } else if now - *n.clients.good_since.get_or_insert(now) >= LB_UP_DELAY {
                n.clients.in_service = true;
                n.clients.good_since = None;
            }
        }
    }

    pub(super) fn route_new_writes(&mut self, h: f64) {
        self.load_acc += CLIENT_RATE * h;
        let fresh = self.load_acc.floor();
        self.load_acc -= fresh;
        let deadline = self.now + CLIENT_DEADLINE;
        if fresh > 0.0 {
            self.lb_waiting.push_back(Batch {
                arrived: self.now,
                deadline,
                count: fresh as u64,
                entry: None,
                probe: None,
            });
        }
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].clients.in_service)
            .collect();
        if targets.is_empty() {
            let now = self.now;
            let mut expired = 0;
            self.lb_waiting.retain(|b| {
                let keep = b.deadline > now;
                if !keep {
                    expired += b.count;
                }
                keep
            });
            self.lb_failed_pending += expired;
            self.stats.client_writes_failed += expired;
            return;
        }
        let k = targets.len();
        let batches: Vec<Batch> = self.lb_waiting.drain(..).collect();
        for b in batches {
            let base = b.count / k as u64;
            let extra = (b.count % k as u64) as usize;
            for (j, &i) in targets.iter().enumerate() {
                let share = base + u64::from((j + k - self.rr % k) % k < extra);
                if share > 0 {
                    self.accept(i, Batch { count: share, ..b });
                }
            }
            self.rr = (self.rr + extra) % k;
        }
    }

    fn accept(&mut self, i: usize, batch: Batch) {
        let n = &mut self.nodes[i];
        if n.is_running() && !n.faults.hang {
            push_by_deadline(&mut n.clients.waiting, batch);
        } else {
            push_by_deadline(&mut n.clients.stuck, batch);
        }
    }

    pub(super) fn write_latency_secs(&mut self, i: usize, forwarded: bool) -> f64 {
        let mut ms = self.uniform((2.0, 8.0)) + if forwarded { 1.0 } else { 0.0 };
        if self.is_bad(&self.nodes[i].host.running) {
            ms *= BAD_LATENCY_FACTOR;
        }
        if self.nodes[i].host.staging.is_some() {
            ms *= STAGING_LATENCY_FACTOR;
        }
        ms / 1000.0
    }

    /// The leader node `i` can hand new writes to now, if any: a leader not in a hand-over
    /// (Raft drops proposals during one) that `i` can reach.
    fn route(&self, i: usize) -> Option<usize> {
        if self.paused || !self.nodes[i].is_running() {
            return None;
        }
        let l = self.known_leader(i)?;
        self.nodes[l].raft.transfer.is_none().then_some(l)
    }

    pub(super) fn process_writes(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            if self.nodes[i].faults.hang {
                let n = &mut self.nodes[i];
                let moved: Vec<Batch> = n
                    .clients
                    .inflight
                    .drain(..)
                    .chain(n.clients.waiting.drain(..))
                    .collect();
                for b in moved {
                    push_by_deadline(&mut n.clients.stuck, Batch { entry: None, ..b });
                }
            }
            let alive = self.nodes[i].alive();
            let group = self.nodes[i].group;
            let fate = |nodes: &[Node], b: &Batch| write_fate(nodes, i, alive, group, b);
            if self.nodes[i]
                .clients
                .inflight
                .iter()
                .any(|b| fate(&self.nodes, b).is_some())
            {
                let mut acks = Vec::new();
                let mut retry = Vec::new();
                let mut inflight = std::mem::take(&mut self.nodes[i].clients.inflight);
                let nodes = &self.nodes;
                inflight.retain(|b| match fate(nodes, b) {
                    None => true,
                    Some(true) => {
                        acks.push(*b);
                        false
                    }
                    Some(false) => {
                        retry.push(Batch { entry: None, ..*b });
                        false
                    }
                });
                self.nodes[i].clients.inflight = inflight;
                for b in retry {
                    push_by_deadline(&mut self.nodes[i].clients.waiting, b);
                }
                for b in acks {
                    if let Some(e) = b.entry {
                        self.acknowledge(i, b, e);
                    }
                }
            }
            if let Some(l) = self.route(i) {
                let waiting = std::mem::take(&mut self.nodes[i].clients.waiting);
                for b in waiting {
                    let leader = &mut self.nodes[l];
                    let lo = leader.raft.log.last() + 1;
                    let term = leader.raft.term;
                    leader.raft.log.append(b.count, term);
                    let entry = Entry {
                        leader: l,
                        term,
                        lo,
                        hi: lo + b.count - 1,
                    };
                    push_by_deadline(
                        &mut self.nodes[i].clients.inflight,
                        Batch {
                            entry: Some(entry),
                            ..b
                        },
                    );
                }
            }
            let mut expired = 0;
            let n = &mut self.nodes[i];
            let dropped = std::mem::take(&mut n.clients.dropped_probes);
            let mut timed_out = Vec::new();
            for q in [
                &mut n.clients.waiting,
                &mut n.clients.stuck,
                &mut n.clients.inflight,
            ] {
                while let Some(b) = q.pop_front_if(|b| b.deadline <= now) {
                    expired += b.count;
                    timed_out.extend(b.probe);
                }
            }
            self.fail_writes(Some(i), expired);
            for id in dropped {
                let why = format!("{} went down before it was committed", self.nodes[i].id);
                self.probe_failed(i, id, format!("test transaction lost: {why}"));
            }
            for id in timed_out {
                let why = self.why_not_committed(i);
                let message = format!(
                    "test transaction not committed within its {CLIENT_DEADLINE} s deadline: {why}"
                );
                self.probe_failed(i, id, message);
            }
        }
    }

    /// The leader committed the batch and node `i` answers its clients.
    fn acknowledge(&mut self, i: usize, b: Batch, e: Entry) {
        let bad = self.is_bad(&self.nodes[i].host.running);
        let aborted = if bad {
            (0..b.count)
                .filter(|_| self.rng.f64() < BAD_ABORT_RATE)
                .count() as u64
        } else {
            0
        };
        let ok = b.count - aborted;
        let forwarded = e.leader != i;
        let queued = (self.now - b.arrived - NORMAL_COMMIT_DELAY).max(0.0);
        for _ in 0..ok {
            let secs = self.write_latency_secs(i, forwarded) + queued;
            self.nodes[i].metrics.latency.observe(secs);
        }
        let n = &mut self.nodes[i];
        n.metrics.tx_commits += ok;
        n.metrics.tx_aborts += aborted;
        if aborted > 0 {
            // The client retries aborted transactions; they fail only at their deadline.
            push_by_deadline(
                &mut n.clients.waiting,
                Batch {
                    count: aborted,
                    entry: None,
                    ..b
                },
            );
        }
        if ok > 0 {
            self.stats.client_writes_ok += ok;
            let gap = ms(self.now - std::mem::replace(&mut self.last_ack_at, self.now));
            self.stats.max_ack_gap_ms = self.stats.max_ack_gap_ms.max(gap);
            let by = self.nodes[e.leader]
                .raft
                .log
                .by_at(e.lo)
                .unwrap_or_default();
            self.record_ack(e.lo, e.lo + ok - 1, (e.term, by));
            if let Some(id) = b.probe {
                let latency = self.write_latency_secs(i, forwarded) + queued;
                self.probe_committed(i, id, e, latency);
            }
        }
    }

    /// The admin API's test transaction, sent through node `via` as one client write: queued, forwarded
    /// to the leader, appended, acknowledged once committed, retried and failed at its deadline like
    /// the clients' own, and kept in the history of acknowledged writes. Returns its id.
    pub(super) fn submit_probe(&mut self, via: usize) -> u64 {
        let id = self.next_probe;
        self.next_probe += 1;
        // Answers nobody collected (its node went down mid-request) are dropped after a while.
        let old = self.now - 60.0;
        self.probes
            .retain(|_, p| p.settled.as_ref().is_none_or(|(at, _)| *at > old));
        self.probes.insert(id, Probe::default());
        self.accept(
            via,
            Batch {
                arrived: self.now,
                deadline: self.now + CLIENT_DEADLINE,
                count: 1,
                entry: None,
                probe: Some(id),
            },
        );
        id
    }

    /// The test transaction's outcome once it has one (committed or failed), taken.
    pub(super) fn take_probe(&mut self, id: u64) -> Option<ProbeOutcome> {
        self.probes.get(&id)?.settled.as_ref()?;
        self.probes.remove(&id)?.settled.map(|(_, r)| r)
    }

    pub(super) fn probe_settled(&self, id: u64) -> bool {
        self.probes.get(&id).is_none_or(|p| p.settled.is_some())
    }

    fn probe_committed(&mut self, via: usize, id: u64, e: Entry, latency: f64) {
        let leader = self.nodes[e.leader].id.clone();
        self.event(
            Some(via),
            "probe",
            format!(
                "test transaction committed at index {} (term {}) through {leader}",
                e.lo, e.term
            ),
        );
        let outcome = ProbeOutcome::Committed {
            latency_secs: latency,
            leader: e.leader,
        };
        self.settle_probe(id, outcome);
    }

    /// Why a write through node `via` is still not committed, as far as that node can tell.
    fn why_not_committed(&self, via: usize) -> String {
        let n = &self.nodes[via];
        if n.faults.hang {
            return format!("{} stopped responding", n.id);
        }
        if !n.is_running() {
            return format!("{} is not running", n.id);
        }
        if self.partitioned(via) {
            return "partitioned: cannot reach peers".to_string();
        }
        if self.paused {
            return "the cluster is paused".to_string();
        }
        match self.known_leader(via) {
            None => "no leader".to_string(),
            Some(l) if self.nodes[l].raft.transfer.is_some() => {
                "a leadership transfer is in progress".to_string()
            }
            Some(_) => format!(
                "no quorum: a majority of the {} members does not hold the log",
                self.nodes.len()
            ),
        }
    }

    fn probe_failed(&mut self, via: usize, id: u64, message: String) {
        self.event(Some(via), "probe", format!("failed: {message}"));
        self.settle_probe(id, ProbeOutcome::Failed(message));
    }

    fn settle_probe(&mut self, id: u64, result: ProbeOutcome) {
        let now = self.now;
        if let Some(p) = self.probes.get_mut(&id) {
            p.settled = Some((now, result));
        }
    }

    /// `writer` is the entries' term and the leadership that wrote them (see `Log`).
    fn record_ack(&mut self, lo: u64, hi: u64, writer: (u64, u64)) {
        if let Some(last) = self.acked.last_mut() {
            if last.2 == writer && last.1 + 1 == lo {
                last.1 = hi;
                return;
            }
        }
        self.acked.push((lo, hi, writer));
        if self.acked.len() >= 4096 && self.acked.len().is_power_of_two() {
            self.acked.sort_unstable_by_key(|r| (r.2, r.0));
            let mut merged: Vec<(u64, u64, (u64, u64))> = Vec::with_capacity(self.acked.len());
            for r in self.acked.drain(..) {
                match merged.last_mut() {
                    Some(m) if m.2 == r.2 && m.1 + 1 >= r.0 => m.1 = m.1.max(r.1),
                    _ => merged.push(r),
                }
            }
            self.acked = merged;
        }
    }

    /// Acknowledged writes whose entries are missing from the most up-to-date log (Raft's
    /// order: last term, then length). Raft guarantees that log holds every committed entry, so
    /// it is the cluster's final committed log whether or not a leader is in office right now.
    /// An entry is the same only if the same leadership wrote it: after a member lost its data a
    /// term can have two leaders, and their entries at one index share a term.
    pub(super) fn lost_acknowledged_writes(&self) -> u64 {
        let Some(reference) = self
            .nodes
            .iter()
            .max_by_key(|n| (n.raft.log.last_term(), n.raft.log.last()))
        else {
            return 0;
        };
        let mut spans: BTreeMap<(u64, u64), Option<(u64, u64)>> = BTreeMap::new();
        let mut lost = 0;
        for &(lo, hi, (term, by)) in &self.acked {
            let span = *spans
                .entry((term, by))
                .or_insert_with(|| reference.raft.log.span_of(term, by));
            let kept = match span {
                Some((a, b)) if b.min(hi) >= a.max(lo) => b.min(hi) - a.max(lo) + 1,
                _ => 0,
            };
            lost += hi - lo + 1 - kept;
        }
        lost
    }

    pub(super) fn fail_writes(&mut self, node: Option<usize>, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.client_writes_failed += count;
        match node {
            Some(i) => self.nodes[i].clients.failed_pending += count,
            None => self.lb_failed_pending += count,
        }
    }

    /// One `write_failed` event per node per second at most: at a 10 ms tick, one per tick would
    /// still be one event per write.
    pub(super) fn flush_failed_events(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            let n = &mut self.nodes[i];
            if n.clients.failed_pending > 0
                && now - n.clients.failed_reported_at >= FAILED_EVENT_INTERVAL
            {
                let count = std::mem::take(&mut n.clients.failed_pending);
                n.clients.failed_reported_at = now;
                self.event(
                    Some(i),
                    "write_failed",
                    format!("{count} client writes failed"),
                );
            }
        }
        if self.lb_failed_pending > 0 && now - self.lb_failed_reported_at >= FAILED_EVENT_INTERVAL {
            let count = std::mem::take(&mut self.lb_failed_pending);
            self.lb_failed_reported_at = now;
            self.event(
                None,
                "write_failed",
                format!("{count} client writes failed: no node in service"),
            );
        }
    }

    /// A stall: client writes are waiting and none is acknowledged. Writes sent to a node that is down
    /// are waiting too, and a commit index that moves without acknowledging anything (a follower
    /// holding it back ships entries older than any client still waits for) is no progress. A
    /// deliberate pause (`cluster::pause`) is a stall too: the clients wait all the same.
    pub(super) fn observe_stall(&mut self, h: f64) {
        let waiting = !self.lb_waiting.is_empty()
            || self.nodes.iter().any(|n| {
                !n.clients.waiting.is_empty()
                    || !n.clients.inflight.is_empty()
                    || !n.clients.stuck.is_empty()
            });
        let acknowledged = self.stats.client_writes_ok > self.last_ok_seen;
        if waiting && !acknowledged {
            let since = *self.stall_since.get_or_insert(self.now - h);
            let stall = ms(self.now - since);
            self.stats.max_commit_stall_ms = self.stats.max_commit_stall_ms.max(stall);
        } else {
            self.stall_since = None;
        }
        self.last_ok_seen = self.stats.client_writes_ok;
    }
}

/// What becomes of a batch node `i` appended to a leader's log: acknowledged (`Some(true)`),
/// retried because that leader is gone or deposed (`Some(false)`), or still waiting (`None`).
fn write_fate(nodes: &[Node], i: usize, alive: bool, group: usize, b: &Batch) -> Option<bool> {
    let e = b.entry?;
    let l = &nodes[e.leader];
    let reply_path = alive && l.raft_active() && (e.leader == i || l.group == group);
    let committed = l.raft.commit >= e.hi && l.raft.log.term_at(e.hi) == Some(e.term);
    if reply_path && committed {
        Some(true)
    } else if l.raft_active() && l.raft.role == Role::Leader && l.raft.term == e.term {
        None
    } else {
        Some(false)
    }
}

/// Queues stay ordered by deadline, so expiry looks only at the front.
fn push_by_deadline(q: &mut VecDeque<Batch>, b: Batch) {
    if q.back().is_none_or(|last| last.deadline <= b.deadline) {
        q.push_back(b);
    } else {
        let k = q.partition_point(|x| x.deadline <= b.deadline);
        q.insert(k, b);
    }
}
