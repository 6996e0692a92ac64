//! A node's data directory and the faults real upgrades meet there: wiped, restored from an old
//! backup, or on a disk that acknowledges writes before they are written.
//!
//! A member that lost its data is modelled as it would really come back: as itself, with no memory
//! of its term, its vote or its log. Raft's safety rests on those being durable, so such a member
//! can vote twice in a term and help elect a leader that lacks committed entries; nothing here
//! prevents that, and the invariants (`lost_committed_writes`, `max_leaders_in_a_term`) show it.

use super::node::{DataDir, Persisted};
use super::World;
use crate::sim::log::Log;

/// With `unsynced_disk`, how long a write sits in the disk's cache before it is really written.
const WRITE_BACK_SECS: f64 = 1.0;

impl World {
    /// The data directory is emptied. A running process keeps what it holds (its files stay open)
    /// and finds the directory empty at its next start.
    pub(super) fn wipe(&mut self, i: usize) {
        self.nodes[i].disk.replaced = Some(DataDir::Empty);
        self.nodes[i].disk.written.clear();
    }

    /// The data directory is replaced by the cluster's latest backup (`/admin/snapshot`, or the one
    /// it started with), found at the next start: the state, term and log as of the backup, no vote.
    pub(super) fn restore_backup(&mut self, i: usize) {
        let dir = match &self.snapshot {
            Some(b) => DataDir::Backup(Persisted {
                term: b.term,
                voted_for: None,
                log: b.log.clone(),
                commit: b.index,
                applied: b.index as f64,
                snapshot_index: b.index,
                compacted: b.index,
            }),
            None => DataDir::Empty,
        };
        self.nodes[i].disk.replaced = Some(dir);
        self.nodes[i].disk.written.clear();
    }

    /// The process starts on what its data directory holds: a replaced directory replaces its state.
    pub(super) fn load_data_dir(&mut self, i: usize) {
        let Some(dir) = self.nodes[i].disk.replaced.take() else {
            return;
        };
        let detail = match dir {
            DataDir::Empty => {
                self.nodes[i].load(Persisted {
                    term: 0,
                    voted_for: None,
                    log: Log::new(0, 0),
                    commit: 0,
                    applied: 0.0,
                    snapshot_index: 0,
                    compacted: 0,
                });
                "started on an empty data directory: term 0, no vote, no log".to_string()
            }
            DataDir::Backup(p) => {
                let detail = format!(
                    "started on a backup: term {}, no vote, state as of index {}",
                    p.term, p.commit
                );
                self.nodes[i].load(p);
                detail
            }
        };
        self.event(Some(i), "disk", detail);
    }

    /// Disks that acknowledge before writing keep, slice by slice, what they have really written.
    pub(super) fn write_disks(&mut self) {
        let now = self.now;
        for n in &mut self.nodes {
            if !n.faults.unsynced_disk {
                n.disk.written.clear();
                continue;
            }
            if !n.alive() {
                continue;
            }
            let state = n.persisted();
            let w = &mut n.disk.written;
            w.push_back((now, state));
            // Keep the newest state old enough to be on the platter, and everything after it.
            while w.len() > 1 && w[1].0 <= now - WRITE_BACK_SECS {
                w.pop_front();
            }
        }
    }

    /// A crash on a disk that acknowledged before writing: the machine went down with the disk's
    /// cache, so the node comes back with what was really written, about a second ago.
    pub(super) fn lose_unwritten(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if !n.faults.unsynced_disk {
            return;
        }
        let Some((_, written)) = n.disk.written.pop_front() else {
            return;
        };
        n.disk.written.clear();
        let detail = format!(
            "the disk had not written its last {WRITE_BACK_SECS} s: log back from {} to {}, term {} to {}",
            n.raft.log.last(),
            written.log.last(),
            n.raft.term,
            written.term
        );
        n.load(written);
        self.event(Some(i), "disk", detail);
    }
}
