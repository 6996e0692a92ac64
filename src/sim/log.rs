//! A node's Raft log, kept as runs of consecutive entries that share a term. Entries carry no
//! payload: what the invariants need is which term wrote which index, so that a log can be
//! compared with another (Log Matching) and with the client's record of acknowledged writes.

/// Runs as (first index, term), ascending in both; the last run ends at `last`. Index 0 is the
/// empty prefix every log shares (term 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    runs: Vec<(u64, u64)>,
    last: u64,
}

impl Log {
    /// A log holding entries 1..=last, all written in `term`.
    pub fn new(last: u64, term: u64) -> Log {
        let runs = if last == 0 {
            Vec::new()
        } else {
            vec![(1, term)]
        };
        Log { runs, last }
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    pub fn last_term(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.1)
    }

    /// The term of entry `idx`, None past the end; 0 for index 0.
    pub fn term_at(&self, idx: u64) -> Option<u64> {
        if idx == 0 {
            return Some(0);
        }
        if idx > self.last {
            return None;
        }
        let k = self.runs.partition_point(|r| r.0 <= idx);
        Some(self.runs[k - 1].1)
    }

    pub fn append(&mut self, count: u64, term: u64) {
        if count == 0 {
            return;
        }
        if self.last_term() != term || self.runs.is_empty() {
            self.runs.push((self.last + 1, term));
        }
        self.last += count;
    }

    /// Drops every entry after `last`.
    pub fn truncate(&mut self, last: u64) {
        if last >= self.last {
            return;
        }
        self.runs.retain(|r| r.0 <= last);
        self.last = last;
    }

    /// The highest index at which both logs hold an entry of the same term. By Log Matching the
    /// logs are identical up to there and differ after it, so a binary search finds it.
    pub fn common_prefix(&self, other: &Log) -> u64 {
        let (mut lo, mut hi) = (0, self.last.min(other.last));
        if self.term_at(hi) == other.term_at(hi) {
            return hi;
        }
        // Invariant: entries match at `lo` and differ at `hi`.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.term_at(mid) == other.term_at(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Copies `source`'s entries up to `upto` after this log's end; the logs must match up to
    /// this log's end (the caller truncated a conflicting suffix first).
    pub fn extend_from(&mut self, source: &Log, upto: u64) {
        let upto = upto.min(source.last);
        while self.last < upto {
            let next = self.last + 1;
            let k = source.runs.partition_point(|r| r.0 <= next);
            let (_, term) = source.runs[k - 1];
            let run_end = source.runs.get(k).map_or(source.last, |r| r.0 - 1);
            self.append(run_end.min(upto) - self.last, term);
        }
    }

    /// The indices this log holds in `term`, as an inclusive range.
    pub fn span_of_term(&self, term: u64) -> Option<(u64, u64)> {
        let k = self.runs.iter().position(|r| r.1 == term)?;
        let end = self.runs.get(k + 1).map_or(self.last, |r| r.0 - 1);
        Some((self.runs[k].0, end))
    }

    /// At least as up to date as `other`, by Raft's rule: the later last term wins; with equal
    /// last terms, the longer log.
    pub fn up_to_date_with(&self, other: &Log) -> bool {
        (self.last_term(), self.last) >= (other.last_term(), other.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_runs_and_truncation() {
        let mut l = Log::new(10, 1);
        l.append(5, 2);
        l.append(3, 2);
        assert_eq!((l.last(), l.last_term()), (18, 2));
        assert_eq!(l.term_at(10), Some(1));
        assert_eq!(l.term_at(11), Some(2));
        assert_eq!(l.term_at(19), None);
        assert_eq!(l.span_of_term(2), Some((11, 18)));
        l.truncate(12);
        l.append(1, 4);
        assert_eq!(l.span_of_term(2), Some((11, 12)));
        assert_eq!(l.term_at(13), Some(4));
        l.truncate(9);
        assert_eq!((l.last(), l.last_term(), l.span_of_term(2)), (9, 1, None));
    }

    #[test]
    fn common_prefix_and_copy_follow_log_matching() {
        let mut leader = Log::new(10, 1);
        leader.append(5, 3);
        leader.append(5, 4);
        let mut stale = Log::new(10, 1);
        stale.append(7, 2);
        assert_eq!(leader.common_prefix(&stale), 10);
        assert_eq!(stale.common_prefix(&leader), 10);
        stale.truncate(10);
        stale.extend_from(&leader, 17);
        assert_eq!(
            (stale.last(), stale.term_at(15), stale.term_at(16)),
            (17, Some(3), Some(4))
        );
        assert_eq!(leader.common_prefix(&stale), 17);
        assert!(leader.up_to_date_with(&stale));
        assert!(!stale.up_to_date_with(&leader));
        let short_newer = {
            let mut l = Log::new(3, 1);
            l.append(1, 5);
            l
        };
        assert!(short_newer.up_to_date_with(&leader));
        assert_eq!(Log::new(0, 1).common_prefix(&leader), 0);
    }
}
