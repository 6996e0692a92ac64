//! Log compaction and snapshot install, as etcd does them: each node snapshots its state every
//! `SNAPSHOT_EVERY` applied entries and drops its log up to `KEEP_ENTRIES` before that snapshot; a
//! follower whose next entry the leader no longer holds gets the leader's latest snapshot, which
//! takes `SNAPSHOT_SECS` to send and install, and then the entries after it.

use super::World;

/// Applied entries between two snapshots of a node's state (etcd's `--snapshot-count`; the
/// calibration runs etcd with the same).
pub(super) const SNAPSHOT_EVERY: u64 = 1_000;
/// Entries a node keeps before its latest snapshot for followers that lag (etcd's
/// `SnapshotCatchUpEntries`): a follower further behind gets a snapshot.
pub(super) const KEEP_ENTRIES: u64 = 5_000;
/// Sending a snapshot and installing it: etcd 3.4 catches a member up through one in 44-134 ms on a
/// 2-core machine (docs/SIMULATOR.md, calibration).
pub(super) const SNAPSHOT_SECS: f64 = 0.1;

impl World {
    /// Each node that runs snapshots its applied state every `SNAPSHOT_EVERY` entries and compacts
    /// its log to `KEEP_ENTRIES` before the snapshot.
    pub(super) fn compact_logs(&mut self) {
        for n in &mut self.nodes {
            if !n.raft_active() {
                continue;
            }
            let applied = n.applied_index();
            if applied >= n.raft.snapshot_index + SNAPSHOT_EVERY {
                n.raft.snapshot_index = applied;
                n.raft.compacted = n.raft.compacted.max(applied.saturating_sub(KEEP_ENTRIES));
            }
        }
    }

    /// Leader `l`'s snapshot traffic to follower `f`, reachable this slice. Installs a snapshot
    /// whose time has come, or starts one when `f` needs an entry `l` has compacted away. True
    /// while a snapshot is on its way: no entries go to `f` meanwhile, only heartbeats.
    pub(super) fn send_snapshot(&mut self, l: usize, f: usize) -> bool {
        let now = self.now;
        self.nodes[l].raft.progress[f].last_ack = now;
        if let Some((index, done)) = self.nodes[l].raft.progress[f].snapshot {
            if now < done {
                return true;
            }
            let log = self.nodes[l].raft.log.prefix(index);
            let from = self.nodes[l].id.clone();
            let r = &mut self.nodes[f].raft;
            // The snapshot replaces the follower's whole log: it lacked an entry before `index`,
            // so whatever it held after that point is not the leader's.
            r.log = log;
            r.snapshot_index = index;
            r.compacted = index;
            r.commit = r.commit.max(index);
            r.applied = r.applied.max(index as f64);
            let p = &mut self.nodes[l].raft.progress[f];
            p.snapshot = None;
            p.match_idx = index;
            p.credit = 0.0;
            self.event(
                Some(f),
                "snapshot_installed",
                format!("index {index} from {from}"),
            );
            return false;
        }
        let leader = &self.nodes[l].raft;
        let matched = leader.log.common_prefix(&self.nodes[f].raft.log);
        if matched >= leader.compacted {
            return false;
        }
        let index = leader.snapshot_index;
        self.nodes[l].raft.progress[f].snapshot = Some((index, now + SNAPSHOT_SECS));
        let from = self.nodes[l].id.clone();
        self.event(
            Some(f),
            "snapshot_transfer",
            format!("index {index} from {from}: its log ends at {matched}, the leader's starts after {}",
                self.nodes[l].raft.compacted),
        );
        true
    }
}
