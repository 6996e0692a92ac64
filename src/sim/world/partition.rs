//! The network between the nodes: Raft messages pass between two nodes that are both up and in the
//! same partition group (group 0 is the whole network).

use super::World;

impl World {
    /// Raft messages pass between `a` and `b`.
    pub(super) fn connected(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        x.raft_active() && y.raft_active() && x.group == y.group
    }

    /// In a partition group too small to hold a quorum: it cannot reach enough peers.
    pub fn partitioned(&self, i: usize) -> bool {
        if !self.split {
            return false;
        }
        let g = self.nodes[i].group;
        self.nodes.iter().filter(|n| n.group == g).count() < self.quorum()
    }

    pub(super) fn partition_groups(&mut self, groups: &[Vec<usize>]) {
        self.split = true;
        for n in &mut self.nodes {
            n.group = usize::MAX;
        }
        let mut names = Vec::new();
        for g in groups {
            let id = self.next_group;
            self.next_group += 1;
            for &i in g {
                self.nodes[i].group = id;
            }
            names.push(
                g.iter()
                    .map(|&i| self.nodes[i].id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].group == usize::MAX {
                self.nodes[i].group = self.next_group;
                self.next_group += 1;
                names.push(self.nodes[i].id.clone());
            }
        }
        self.event(None, "partition", format!("groups [{}]", names.join("] [")));
    }

    pub(super) fn heal_network(&mut self) {
        self.split = false;
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    pub(super) fn healthy_count(&self) -> usize {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].raft_active() && !self.partitioned(i))
            .count()
    }
}
