//! Raft, node by node: election timers and campaigns, votes, leaders replicating to the followers they
//! reach, commit and apply, check-quorum, and leadership hand-over (TimeoutNow).

use super::admin::{ApiError, TransferReply};
use super::node::{Node, Progress, Role, Transfer};
use super::World;

/// Entries per second a leader ships to a follower that is behind: etcd 3.4 catches a restarted member
/// up by 3000 entries in 37-56 ms on a 2-core machine (docs/SIMULATOR.md, calibration).
pub(super) const REPLICATION_RATE: f64 = 50_000.0;
/// `slow_catchup`: a follower behind a slow link or disk, slower than the clients write.
const SLOW_REPLICATION_RATE: f64 = 300.0;
/// Entries per second a node applies to its state machine once they are committed.
const APPLY_RATE: f64 = 20_000.0;

impl World {
    /// Makes `l` the leader of `term` as the cluster starts (or a twin copies one): every node
    /// already agrees, so no election is counted.
    pub(super) fn install_leader(&mut self, l: usize, term: u64) {
        let count = self.nodes.len();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.raft.term = term;
            n.raft.voted_for = Some(l);
            n.raft.leader = Some(l);
            n.raft.role = if i == l { Role::Leader } else { Role::Follower };
            n.raft.transfer = None;
            if i == l {
                self.leaderships += 1;
                n.raft.log.set_writer(self.leaderships);
            }
            n.raft.progress = if i == l {
                vec![
                    Progress {
                        match_idx: n.raft.log.last(),
                        credit: 0.0,
                        last_ack: self.now,
                        snapshot: None,
                    };
                    count
                ]
            } else {
                Vec::new()
            };
        }
        self.leaders_by_term.entry(term).or_default().insert(l);
        self.refresh_view();
    }

    /// Recomputes the whole-cluster view fields from the nodes.
    pub(super) fn refresh_view(&mut self) {
        self.term = self.nodes.iter().map(|n| n.raft.term).max().unwrap_or(0);
        self.commit_index = self.nodes.iter().map(|n| n.raft.commit).max().unwrap_or(0);
        self.leader = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft_active() && self.nodes[i].raft.role == Role::Leader)
            .max_by_key(|&i| self.nodes[i].raft.term);
    }

    /// The leader node `i` follows and can reach (itself when it leads), if any.
    pub(super) fn known_leader(&self, i: usize) -> Option<usize> {
        let n = &self.nodes[i];
        if !n.raft_active() {
            return None;
        }
        if n.raft.role == Role::Leader {
            return Some(i);
        }
        let l = n.raft.leader?;
        let ln = &self.nodes[l];
        (ln.raft.role == Role::Leader && ln.raft.term == n.raft.term && self.connected(i, l))
            .then_some(l)
    }

    /// Role as this node itself believes it; a process that is not up reports nothing, and the
    /// others see a follower.
    pub fn role(&self, i: usize) -> Role {
        let n = &self.nodes[i];
        if n.raft_active() {
            n.raft.role
        } else {
            Role::Follower
        }
    }

    fn reset_timer(&mut self, i: usize) {
        self.nodes[i].raft.election_due = self.now + self.uniform(self.election);
    }

    /// Nodes whose election timer ran out become candidates. Candidates that time out in the
    /// same slice all stand before any vote is cast, which is how votes split.
    pub(super) fn run_timers(&mut self) {
        let firing: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                let n = &self.nodes[i];
                n.raft_active() && n.raft.role != Role::Leader && self.now >= n.raft.election_due
            })
            .collect();
        let mut standing = Vec::new();
        for &c in &firing {
            standing.push((c, self.stand(c)));
        }
        for (c, term) in standing {
            if self.nodes[c].raft.role == Role::Candidate && self.nodes[c].raft.term == term {
                self.request_votes(c, false);
            }
        }
    }

    /// Starts a campaign: a new term, a vote for itself, a fresh timer for a retry.
    fn stand(&mut self, c: usize) -> u64 {
        self.reset_timer(c);
        let n = &mut self.nodes[c];
        n.raft.term += 1;
        n.raft.voted_for = Some(c);
        n.raft.role = Role::Candidate;
        n.raft.leader = None;
        n.raft.term
    }

    /// Asks every reachable peer for its vote; wins with a majority. `transfer` is Raft's
    /// TimeoutNow campaign, which peers honour even while they still hear from a leader.
    fn request_votes(&mut self, c: usize, transfer: bool) {
        let term = self.nodes[c].raft.term;
        let mut votes = 1;
        for p in 0..self.nodes.len() {
            if p == c || !self.connected(c, p) {
                continue;
            }
            let peer = &self.nodes[p];
            // Check-quorum's lease: a follower that heard from its leader within the minimum
            // election timeout ignores a candidate, so a node returning from a partition cannot
            // win this way (it can still unseat the leader through its higher term; see
            // `run_leaders`).
            let in_lease = peer.raft.role == Role::Follower
                && peer.raft.leader.is_some()
                && self.now - peer.raft.last_heard < self.election.0;
            if !transfer && in_lease {
                continue;
            }
            if term > peer.raft.term {
                let counted = !(transfer && self.nodes[p].raft.transfer.is_some_and(|t| t.to == c));
                self.become_follower(p, term, None, counted);
            }
            if term < self.nodes[p].raft.term {
                continue;
            }
            let peer = &self.nodes[p];
            let free = match peer.raft.voted_for {
                None => true,
                Some(v) => v == c || self.bug_vote_twice(),
            };
            let log_ok = self.bug_vote_ignores_log()
                || self.nodes[c].raft.log.up_to_date_with(&peer.raft.log);
            if free && log_ok {
                self.nodes[p].raft.voted_for = Some(c);
                self.reset_timer(p);
                votes += 1;
            }
        }
        if votes >= self.quorum() {
            self.become_leader(c);
        }
    }

    #[cfg(test)]
    fn bug_vote_twice(&self) -> bool {
        self.bugs.vote_twice
    }
    #[cfg(not(test))]
    fn bug_vote_twice(&self) -> bool {
        false
    }

    #[cfg(test)]
    fn bug_vote_ignores_log(&self) -> bool {
        self.bugs.vote_ignores_log
    }
    #[cfg(not(test))]
    fn bug_vote_ignores_log(&self) -> bool {
        false
    }

    fn become_leader(&mut self, c: usize) {
        let count = self.nodes.len();
        let now = self.now;
        let n = &mut self.nodes[c];
        n.raft.role = Role::Leader;
        n.raft.leader = Some(c);
        n.raft.transfer = None;
        n.raft.loss_counted = false;
        self.leaderships += 1;
        n.raft.log.set_writer(self.leaderships);
        // Raft's no-op: a new leader can only count replicas for entries of its own term.
        let term = n.raft.term;
        n.raft.log.append(1, term);
        let last = n.raft.log.last();
        n.raft.progress = vec![
            Progress {
                match_idx: 0,
                credit: 0.0,
                last_ack: now,
                snapshot: None,
            };
            count
        ];
        n.raft.progress[c].match_idx = last;
        self.stats.elections += 1;
        let leaders = self.leaders_by_term.entry(term).or_default();
        leaders.insert(c);
        self.stats.max_leaders_in_a_term =
            self.stats.max_leaders_in_a_term.max(leaders.len() as u64);
        for n in self.nodes.iter_mut().filter(|n| n.is_running()) {
            n.metrics.elections_seen += 1;
        }
        self.event(Some(c), "elected", format!("term {term}"));
    }

    /// Node `i` follows `term` (and `leader` when known). A leader leaving office is a leader
    /// lost unless `counted` is false (a hand-over completing) or it was counted when it hung.
    fn become_follower(&mut self, i: usize, term: u64, leader: Option<usize>, counted: bool) {
        if self.nodes[i].raft.role == Role::Leader {
            let why = if term > self.nodes[i].raft.term {
                format!("saw term {term}")
            } else {
                "stepped down".to_string()
            };
            self.leave_office(i, &why, counted);
        }
        let n = &mut self.nodes[i];
        // Raft restarts the election timer of a node that turns follower or learns a later term:
        // a leader deposed by a higher term waits a timeout before it stands, as etcd's does.
        let restart_timer = term > n.raft.term || n.raft.role != Role::Follower;
        if term > n.raft.term {
            n.raft.term = term;
            n.raft.voted_for = None;
        }
        n.raft.role = Role::Follower;
        n.raft.leader = leader;
        if restart_timer {
            self.reset_timer(i);
        }
    }

    pub(super) fn leave_office(&mut self, i: usize, why: &str, counted: bool) {
        let n = &mut self.nodes[i];
        let term = n.raft.term;
        n.raft.role = Role::Follower;
        n.raft.leader = None;
        n.raft.progress.clear();
        n.raft.transfer = None;
        let first = !std::mem::replace(&mut n.raft.loss_counted, true);
        if counted && first {
            self.stats.leader_losses += 1;
            self.event(Some(i), "leader_lost", format!("term {term}: {why}"));
        }
    }

    /// Each leader replicates to the followers it reaches, advances its commit index, hands
    /// over when a transfer's target is caught up, and steps down without a quorum.
    pub(super) fn run_leaders(&mut self, h: f64) {
        for l in 0..self.nodes.len() {
            if self.nodes[l].raft.role == Role::Leader && self.nodes[l].raft_active() {
                self.lead(l, h);
            }
        }
    }

    fn lead(&mut self, l: usize, h: f64) {
        let term = self.nodes[l].raft.term;
        for f in 0..self.nodes.len() {
            if f == l {
                continue;
            }
            if !self.connected(l, f) {
                // A snapshot on its way is cut off with the connection.
                self.nodes[l].raft.progress[f].snapshot = None;
                continue;
            }
            if self.nodes[f].raft.term > term {
                // The reply carries a higher term (a node back from a partition, without
                // pre-vote): the leader steps down.
                let t = self.nodes[f].raft.term;
                self.become_follower(l, t, None, true);
                return;
            }
            self.replicate(l, f, h);
        }
        let quorum = self.quorum();
        let n = &mut self.nodes[l];
        n.raft.progress[l] = Progress {
            match_idx: n.raft.log.last(),
            credit: 0.0,
            last_ack: self.now,
            snapshot: None,
        };
        // Commit: the highest index a majority (the leader included) holds, of this term.
        let mut matched: Vec<u64> = n.raft.progress.iter().map(|p| p.match_idx).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let majority = matched[quorum - 1];
        if majority > n.raft.commit && n.raft.log.term_at(majority) == Some(term) {
            n.raft.commit = majority;
        }
        // Check-quorum.
        let now = self.now;
        let window = self.election.0;
        let recent = n
            .raft
            .progress
            .iter()
            .filter(|p| now - p.last_ack < window)
            .count();
        if recent < quorum {
            self.leave_office(l, "lost contact with a quorum", true);
            self.reset_timer(l);
            return;
        }
        let Some(t) = self.nodes[l].raft.transfer else {
            return;
        };
        if self.nodes[l].raft.progress[t.to].match_idx == self.nodes[l].raft.log.last()
            && self.connected(l, t.to)
            && self.nodes[t.to].raft.term == term
        {
            self.timeout_now(l, t.to);
        } else if now >= t.deadline {
            self.nodes[l].raft.transfer = None;
            let to = self.nodes[t.to].id.clone();
            self.event(
                Some(l),
                "transfer_failed",
                format!("{to} did not catch up within the election timeout"),
            );
        }
    }

    /// One AppendEntries round trip from leader `l` to follower `f`.
    fn replicate(&mut self, l: usize, f: usize, h: f64) {
        let term = self.nodes[l].raft.term;
        self.become_follower(f, term, Some(l), true);
        self.nodes[f].raft.last_heard = self.now;
        self.reset_timer(f);
        if self.send_snapshot(l, f) {
            return;
        }
        let rate = if self.nodes[f].faults.slow_catchup {
            SLOW_REPLICATION_RATE
        } else {
            REPLICATION_RATE
        };
        let now = self.now;
        let (leader, follower) = pair(&mut self.nodes, l, f);
        let p = leader.raft.log.common_prefix(&follower.raft.log);
        follower.raft.log.truncate(p);
        // Only a member that lost its data can lead a log that conflicts with what this one committed
        // (etcd panics there). What was cut is no longer committed, applied or in a snapshot here, so
        // this node can neither count it as committed later nor wait for ever on a snapshot beyond it.
        let f_raft = &mut follower.raft;
        f_raft.commit = f_raft.commit.min(p);
        f_raft.applied = f_raft.applied.min(p as f64);
        f_raft.snapshot_index = f_raft.snapshot_index.min(p);
        f_raft.compacted = f_raft.compacted.min(p);
        let missing = leader.raft.log.last() - p;
        let prog = &mut leader.raft.progress[f];
        prog.credit += rate * h;
        let send = missing.min(prog.credit.floor() as u64);
        prog.credit -= send as f64;
        if send == missing {
            prog.credit = prog.credit.min(rate * h);
        }
        follower.raft.log.extend_from(&leader.raft.log, p + send);
        prog.match_idx = p + send;
        prog.last_ack = now;
        follower.raft.commit = follower
            .raft
            .commit
            .max(leader.raft.commit.min(prog.match_idx));
    }

    /// Raft's TimeoutNow: the caught-up target campaigns at once, and peers vote even though
    /// they still hear from the leader.
    fn timeout_now(&mut self, l: usize, to: usize) {
        let from_id = self.nodes[l].id.clone();
        self.stand(to);
        self.request_votes(to, true);
        if self.nodes[to].raft.role == Role::Leader {
            let detail = format!(
                "{from_id} -> {}, term {}",
                self.nodes[to].id, self.nodes[to].raft.term
            );
            self.event(Some(l), "transfer", detail);
        } else if self.nodes[l].raft.role == Role::Leader {
            self.nodes[l].raft.transfer = None;
        } else {
            let n = &mut self.nodes[l];
            n.raft.loss_counted = true;
            self.stats.leader_losses += 1;
            self.event(
                Some(l),
                "leader_lost",
                "hand-over failed: the target did not win its election",
            );
        }
    }

    /// Nodes apply what they know committed, snapshot and compact their logs; disks write.
    pub(super) fn apply(&mut self, h: f64) {
        for n in &mut self.nodes {
            if n.raft_active() {
                n.raft.applied = (n.raft.applied + APPLY_RATE * h).min(n.raft.commit as f64);
            }
        }
        self.compact_logs();
        self.write_disks();
    }

    /// Neumann's own refusals. A lagging target is not refused here: Raft catches it up before
    /// sending TimeoutNow, and aborts the hand-over if that takes longer than an election
    /// timeout (the tool refuses lagging targets before asking).
    fn transfer_target_ok(&self, l: usize, to: usize) -> Result<(), ApiError> {
        let n = &self.nodes[to];
        let id = &n.id;
        let refuse = |why: String| Err(ApiError::new(409, why));
        if !n.is_running() {
            return refuse(format!("{id} is down"));
        }
        if n.faults.hang {
            return refuse(format!("{id} is not responding"));
        }
        if !n.joined {
            return refuse(format!("{id} has not joined the cluster"));
        }
        if n.draining {
            return refuse(format!("{id} is draining"));
        }
        if !self.connected(l, to) {
            return refuse(format!("{id} is partitioned from its peers"));
        }
        let lv = &self.nodes[l].host.running;
        if n.host.running < *lv {
            return refuse(format!(
                "{id} runs {}, older than the leader's {lv}",
                n.host.running
            ));
        }
        Ok(())
    }

    /// A leader told to stop hands over to its most caught-up follower among those a transfer may go
    /// to (the lowest index among equals); false when there is none. One already in progress runs on.
    pub(super) fn hand_over_on_stop(&mut self, l: usize) -> bool {
        if self.nodes[l].raft.transfer.is_some() {
            return true;
        }
        let best = (0..self.nodes.len())
            .filter(|&t| t != l && self.transfer_target_ok(l, t).is_ok())
            .max_by_key(|&t| {
                let matched = self.nodes[l]
                    .raft
                    .progress
                    .get(t)
                    .map_or(0, |p| p.match_idx);
                (matched, std::cmp::Reverse(t))
            });
        let Some(to) = best else {
            return false;
        };
        let id = self.nodes[to].id.clone();
        self.event(Some(l), "transfer_requested", format!("to {id}: stopping"));
        self.nodes[l].raft.transfer = Some(Transfer {
            to,
            deadline: self.now + self.election.0,
        });
        true
    }

    pub fn request_transfer(&mut self, via: usize, to: &str) -> Result<TransferReply, ApiError> {
        self.require_peers(via)?;
        let t = self
            .index_of(to)
            .ok_or_else(|| ApiError::new(404, format!("unknown node `{to}`")))?;
        let l = self
            .known_leader(via)
            .ok_or_else(|| ApiError::new(409, "no leader: the cluster is electing one"))?;
        if t == l {
            return Ok(TransferReply {
                from: self.nodes[l].id.clone(),
                to: self.nodes[t].id.clone(),
                term: self.nodes[l].raft.term,
            });
        }
        if self.nodes[l].raft.transfer.is_some() {
            return Err(ApiError::new(
                409,
                "a leadership transfer is already in progress",
            ));
        }
        self.transfer_target_ok(l, t)?;
        self.event(Some(l), "transfer_requested", format!("to {to}"));
        self.nodes[l].raft.transfer = Some(Transfer {
            to: t,
            deadline: self.now + self.election.0,
        });
        Ok(TransferReply {
            from: self.nodes[l].id.clone(),
            to: self.nodes[t].id.clone(),
            term: self.nodes[l].raft.term + 1,
        })
    }
}

/// Two distinct nodes borrowed mutably at once.
fn pair(nodes: &mut [Node], a: usize, b: usize) -> (&mut Node, &mut Node) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = nodes.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = nodes.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
