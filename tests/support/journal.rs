//! Reading a run's journal back: one JSON record per line, the mutating calls' results (`op`, no
//! `event`) beside the run's course (`event`: run_start, op_begin, step_start, canary_check, ...).

use std::path::Path;

use serde_json::Value;

/// Every record of a journal the runs that wrote it have finished with, oldest first. Panics when the
/// file is missing or a line is not JSON: either is a defect of the run, not a state to wait out.
pub fn journal(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the journal {}: {e}", path.display()));
    records(path, &text)
}

/// The mutating calls' results, in order: the records that are not events. Each names its `op`.
pub fn journal_ops(path: &Path) -> Vec<Value> {
    journal(path)
        .into_iter()
        .filter(|r| r.get("event").is_none())
        .inspect(|r| assert!(r["op"].is_string(), "a journal record with no op: {r}"))
        .collect()
}

/// The events of `kind`, oldest first.
pub fn journal_events(path: &Path, kind: &str) -> Vec<Value> {
    journal(path)
        .into_iter()
        .filter(|r| r["event"] == kind)
        .collect()
}

/// The events of `kind` in a journal a run may be writing now: none while the file is not there yet,
/// and a last line still being written (no newline yet) is not read.
pub fn journal_events_so_far(path: &Path, kind: &str) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("the journal {}: {e}", path.display()),
    };
    let written = text.rfind('\n').map_or("", |end| &text[..end]);
    records(path, written)
        .into_iter()
        .filter(|r| r["event"] == kind)
        .collect()
}

fn records(path: &Path, text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON ({e}): {line}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"run_start","run_id":"r1"}"#;
    const STOP: &str = r#"{"op":"node::stop","node":"node2","result":"ok"}"#;
    const CHECK: &str = r#"{"event":"canary_check","verdict":"ok"}"#;

    fn written(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn records_are_read_in_order_and_sorted_into_calls_and_events() {
        let (_dir, path) = written(&format!("{START}\n{STOP}\n{CHECK}\n"));
        assert_eq!(journal(&path).len(), 3);
        let ops = journal_ops(&path);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0]["op"], "node::stop");
        assert_eq!(journal_events(&path, "canary_check")[0]["verdict"], "ok");
    }

    #[test]
    fn a_journal_being_written_is_read_up_to_its_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        assert!(journal_events_so_far(&path, "canary_check").is_empty());
        std::fs::write(&path, format!("{CHECK}\n{}", &CHECK[..10])).unwrap();
        assert_eq!(journal_events_so_far(&path, "canary_check").len(), 1);
    }

    #[test]
    #[should_panic(expected = "j.jsonl:2: not JSON")]
    fn a_line_that_is_not_json_fails_the_reader() {
        let (_dir, path) = written(&format!("{START}\n{{torn\n{STOP}\n"));
        journal(&path);
    }

    #[test]
    #[should_panic(expected = "a journal record with no op")]
    fn a_call_record_without_its_op_fails_the_reader() {
        let (_dir, path) = written("{\"node\":\"node2\"}\n");
        journal_ops(&path);
    }

    #[test]
    #[should_panic(expected = "the journal")]
    fn a_missing_journal_fails_the_reader() {
        journal(std::path::Path::new("/nonexistent/j.jsonl"));
    }
}
