//! A node's Raft log, kept as runs of consecutive entries that share a term. Entries carry no
//! payload: what the invariants need is which term wrote which index, so that a log can be
//! compared with another (Log Matching) and with the client's record of acknowledged writes.
//!
//! Each run also names the leadership that wrote it (`by`), which Raft itself never looks at: in a
//! correct cluster a term has one leader, so (index, term) names an entry. A member that lost its
//! data (a wiped disk, an old backup) can vote twice in a term and elect a second leader in it;
//! the invariant that judges lost writes then still tells the two leaders' entries apart.

/// One run: entries from `first` on, written in `term` by leadership `by`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    first: u64,
    term: u64,
    by: u64,
}

/// Runs ascending in index and term; the last run ends at `last`. Index 0 is the empty prefix
/// every log shares (term 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    runs: Vec<Run>,
    last: u64,
    /// The leadership this node's own appends are written by (set when it becomes leader).
    writer: u64,
}

impl Log {
    /// A log holding entries 1..=last, all written in `term` (by leadership 0).
    pub fn new(last: u64, term: u64) -> Log {
        let runs = if last == 0 {
            Vec::new()
        } else {
            vec![Run {
                first: 1,
                term,
                by: 0,
            }]
        };
        Log {
            runs,
            last,
            writer: 0,
        }
    }

    /// Names the leadership this log's own appends belong to from now on.
    pub fn set_writer(&mut self, by: u64) {
        self.writer = by;
    }

    /// The entries up to `upto` (at most the whole log), as a snapshot of this log holds them.
    pub fn prefix(&self, upto: u64) -> Log {
        let mut l = self.clone();
        l.truncate(upto);
        l
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    pub fn last_term(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.term)
    }

    /// The term of entry `idx`, None past the end; 0 for index 0.
    pub fn term_at(&self, idx: u64) -> Option<u64> {
        if idx == 0 {
            return Some(0);
        }
        if idx > self.last {
            return None;
        }
        Some(self.run_at(idx)?.term)
    }

    /// The leadership that wrote entry `idx`, None past the end or at index 0.
    pub fn by_at(&self, idx: u64) -> Option<u64> {
        (idx > 0).then(|| self.run_at(idx)).flatten().map(|r| r.by)
    }

    fn run_at(&self, idx: u64) -> Option<&Run> {
        if idx == 0 || idx > self.last {
            return None;
        }
        let k = self.runs.partition_point(|r| r.first <= idx);
        self.runs.get(k - 1)
    }

    /// Appends `count` entries of `term`, written by this log's writer.
    pub fn append(&mut self, count: u64, term: u64) {
        self.push(count, term, self.writer);
    }

    fn push(&mut self, count: u64, term: u64, by: u64) {
        if count == 0 {
            return;
        }
        if self
            .runs
            .last()
            .is_none_or(|r| r.term != term || r.by != by)
        {
            self.runs.push(Run {
                first: self.last + 1,
                term,
                by,
            });
        }
        self.last += count;
    }

    /// Drops every entry after `last`.
    pub fn truncate(&mut self, last: u64) {
        if last >= self.last {
            return;
        }
        self.runs.retain(|r| r.first <= last);
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
            let k = source.runs.partition_point(|r| r.first <= next);
            let run = source.runs[k - 1];
            let run_end = source.runs.get(k).map_or(source.last, |r| r.first - 1);
            self.push(run_end.min(upto) - self.last, run.term, run.by);
        }
    }

    /// The indices this log holds that leadership `by` wrote in `term`, as an inclusive range
    /// (one leadership writes one stretch of the log).
    pub fn span_of(&self, term: u64, by: u64) -> Option<(u64, u64)> {
        let k = self
            .runs
            .iter()
            .position(|r| r.term == term && r.by == by)?;
        let end = self.runs[k + 1..]
            .iter()
            .find(|r| r.term != term || r.by != by)
            .map_or(self.last, |r| r.first - 1);
        Some((self.runs[k].first, end))
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
        assert_eq!(l.span_of(2, 0), Some((11, 18)));
        l.truncate(12);
        l.append(1, 4);
        assert_eq!(l.span_of(2, 0), Some((11, 12)));
        assert_eq!(l.term_at(13), Some(4));
        l.truncate(9);
        assert_eq!((l.last(), l.last_term(), l.span_of(2, 0)), (9, 1, None));
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

    #[test]
    fn two_leaderships_in_one_term_stay_apart() {
        // Raft compares terms only, so these logs match; the judge of lost writes does not.
        let mut a = Log::new(10, 1);
        a.set_writer(1);
        a.append(5, 2);
        let mut b = Log::new(10, 1);
        b.set_writer(2);
        b.append(5, 2);
        assert_eq!(a.common_prefix(&b), 15);
        assert_eq!(
            (a.by_at(12), b.by_at(12), a.by_at(16)),
            (Some(1), Some(2), None)
        );
        assert_eq!((a.span_of(2, 1), a.span_of(2, 2)), (Some((11, 15)), None));
        let mut c = Log::new(0, 0);
        c.extend_from(&b, 13);
        assert_eq!(
            (c.span_of(1, 0), c.span_of(2, 2)),
            (Some((1, 10)), Some((11, 13)))
        );
        assert_eq!(b.prefix(12).last(), 12);
    }
}
