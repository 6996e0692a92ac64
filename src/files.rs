//! Reading the files an operator names (inventories, scripts, modules, token files, the journal, an
//! existing report, the REPL history): regular files only, and bounded, so a directory, a FIFO or a
//! device is a clear refusal instead of "no such file", a hang waiting for a writer, or a read that never
//! ends (`--cluster /dev/zero`). A file that may grow without limit (the journal) is read a line at a
//! time, each line bounded, so memory stays bounded whatever its size. And writing the files others read
//! while this process runs (the report, a simulator's inventory) in one piece.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest inventory or script read: far above any real one, far below what would exhaust memory.
pub const MAX_TEXT: u64 = 4 << 20;

/// The longest journal record read back: a record is a few hundred bytes; a longer line is skipped.
pub const MAX_RECORD: usize = 1 << 20;

/// Why a named file could not be read; the message completes "`path`: ...".
#[derive(Debug)]
pub enum ReadError {
    /// Nothing at that path.
    NotFound,
    /// Something that is not a regular file, or too big, or unreadable; the message says which.
    Refused(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ReadError {}

/// What a path names when it is not a regular file, in words, or `None` for a regular file.
fn not_regular(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

fn refused_kind(what: &str) -> ReadError {
    ReadError::Refused(format!("is {what}, not a regular file"))
}

/// Opens `path` as `options` say, if it is a regular file. The open cannot hang: it is non-blocking
/// (`O_NONBLOCK`, which a regular file ignores), where a FIFO would block it until its other end opens.
/// The type is read from the opened file, so nothing swapped in after a check gets through.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> Result<File, ReadError> {
    let file = options
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            // A FIFO opened for writing with no reader fails (ENXIO), a directory for writing too
            // (EISDIR): say what the path is, not the errno.
            _ => match std::fs::metadata(path)
                .ok()
                .and_then(|m| not_regular(m.file_type()))
            {
                Some(what) => refused_kind(what),
                None => ReadError::Refused(format!("cannot open it: {e}")),
            },
        })?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Refused(format!("cannot read it: {e}")))?;
    match not_regular(meta.file_type()) {
        Some(what) => Err(refused_kind(what)),
        None => Ok(file),
    }
}

/// Refuses `path` when something other than a regular file is there; nothing there is fine. For a file
/// named now and opened later (a journal a rehearsal reads at its end), so the refusal comes first.
pub fn check_regular_or_missing(path: &Path) -> Result<(), ReadError> {
    match std::fs::metadata(path) {
        Ok(m) => not_regular(m.file_type()).map_or(Ok(()), |what| Err(refused_kind(what))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ReadError::Refused(format!("cannot read it: {e}"))),
    }
}

/// Reads a UTF-8 text file of at most `max` bytes, if it is a regular file.
pub fn read_text(path: &Path, max: u64) -> Result<String, ReadError> {
    let file = open_regular(path, OpenOptions::new().read(true))?;
    let too_big = |size: u64| {
        ReadError::Refused(format!("is {size} bytes; the limit is {}", human_size(max)))
    };
    let size = file
        .metadata()
        .map_err(|e| ReadError::Refused(format!("cannot read it: {e}")))?
        .len();
    if size > max {
        return Err(too_big(size));
    }
    // Bounded even if the file grows after the check.
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Refused(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Refused(format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// One line of a file read a line at a time, without its newline.
#[derive(Debug, PartialEq)]
pub enum Line {
    Text(Vec<u8>),
    /// Longer than the reader's bound: skipped, never held in memory.
    TooLong,
}

/// The lines of `reader` from first to last, each held only up to `max` bytes.
pub struct Lines<R> {
    reader: R,
    max: usize,
    done: bool,
}

/// Reads `reader` a line at a time; a line over `max` bytes comes as `Line::TooLong`.
pub fn lines<R: BufRead>(reader: R, max: usize) -> Lines<R> {
    Lines {
        reader,
        max,
        done: false,
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        let mut len = 0usize;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if buf.is_empty() {
                self.done = true;
                if len == 0 {
                    return None;
                }
                break;
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let part = &buf[..newline.unwrap_or(buf.len())];
            len = len.saturating_add(part.len());
            if len <= self.max {
                line.extend_from_slice(part);
            } else {
                line = Vec::new();
            }
            let used = part.len() + usize::from(newline.is_some());
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        Some(Ok(if len > self.max {
            Line::TooLong
        } else {
            Line::Text(line)
        }))
    }
}

/// The lines of a file from its last back to its first, each held only up to `max` bytes: the newest
/// record of a file that only grows is found without reading what comes before it, or holding any of it.
pub struct LinesBackwards {
    file: File,
    /// Where the part not read yet ends.
    pos: u64,
    /// The end of the line being read backwards, when it starts before `pos`.
    tail: Vec<u8>,
    /// That line is already over the bound.
    tail_long: bool,
    /// Lines found in the last chunk, newest first.
    ready: VecDeque<Line>,
    max: usize,
    started: bool,
}

/// How much of the file one step back reads.
const CHUNK: u64 = 64 << 10;

/// Reads `file` (a regular file from `open_regular`) from its end back; see `LinesBackwards`.
pub fn lines_backwards(mut file: File, max: usize) -> std::io::Result<LinesBackwards> {
    let pos = file.seek(SeekFrom::End(0))?;
    Ok(LinesBackwards {
        file,
        pos,
        tail: Vec::new(),
        tail_long: false,
        ready: VecDeque::new(),
        max,
        started: false,
    })
}

impl LinesBackwards {
    /// The line being read ends here (its start was found): hand it out.
    fn finish_tail(&mut self, head: &[u8]) {
        let line = if self.tail_long || head.len() + self.tail.len() > self.max {
            Line::TooLong
        } else {
            let mut l = head.to_vec();
            l.extend_from_slice(&self.tail);
            Line::Text(l)
        };
        // The end of a file that ends with a newline is not a line of its own.
        let trailing = !self.started && matches!(&line, Line::Text(l) if l.is_empty());
        self.started = true;
        if !trailing {
            self.ready.push_back(line);
        }
        self.tail.clear();
        self.tail_long = false;
    }

    fn step(&mut self) -> std::io::Result<()> {
        let start = self.pos.saturating_sub(CHUNK);
        let mut chunk = vec![0; (self.pos - start) as usize];
        self.file.seek(SeekFrom::Start(start))?;
        self.file.read_exact(&mut chunk)?;
        self.pos = start;
        let mut end = chunk.len();
        while let Some(i) = chunk[..end].iter().rposition(|&b| b == b'\n') {
            self.finish_tail(&chunk[i + 1..end]);
            end = i;
        }
        let head = &chunk[..end];
        if self.tail_long || head.len() + self.tail.len() > self.max {
            self.tail_long = true;
            self.tail.clear();
        } else {
            let mut t = head.to_vec();
            t.extend_from_slice(&self.tail);
            self.tail = t;
        }
        if self.pos == 0 {
            // The file's first line, empty or not.
            self.finish_tail(&[]);
        }
        Ok(())
    }
}

impl Iterator for LinesBackwards {
    type Item = std::io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() {
            if self.pos == 0 {
                return None;
            }
            if let Err(e) = self.step() {
                self.pos = 0;
                self.ready.clear();
                return Some(Err(e));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

/// Writes `bytes` to `path` in one piece: written beside it under a temporary name, then renamed over it,
/// so a reader (a browser, another terminal waiting for an inventory) never sees half a file. Its mode is
/// what a plain write would leave: a file it replaces keeps its mode, a new one gets 0666 less the umask
/// (0644 under the usual 022, 0600 under 077), not the temporary file's private 0600 whatever the umask.
/// `prefix` names the temporary file should one be left behind.
pub fn write_whole(path: &Path, bytes: &[u8], prefix: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let replaced = std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.permissions().mode() & 0o777);
    // Created with 0666, the kernel applies the umask, as it would to a plain write's new file.
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if let Some(mode) = replaced {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.rhai");
        std::fs::write(&f, "print(1)").unwrap();
        assert_eq!(read_text(&f, 100).unwrap(), "print(1)");
        let e = read_text(&f, 4).unwrap_err().to_string();
        assert_eq!(e, "is 8 bytes; the limit is 4 bytes");
        assert_eq!(
            read_text(dir.path(), 100).unwrap_err().to_string(),
            "is a directory, not a regular file"
        );
        assert_eq!(
            read_text(Path::new("/dev/zero"), 100)
                .unwrap_err()
                .to_string(),
            "is a character device, not a regular file"
        );
        assert!(matches!(
            read_text(&dir.path().join("none"), 100),
            Err(ReadError::NotFound)
        ));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, 100)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        assert_eq!(human_size(MAX_TEXT), "4 MiB");
    }

    #[test]
    fn a_whole_write_leaves_the_mode_a_plain_write_would() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What this process's umask makes of a new file, whatever it is.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let path = dir.path().join("inventory.toml");
        write_whole(&path, b"new", ".x-").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode(&path), mode(&plain));
        // A file it replaces keeps its mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_whole(&path, b"newer", ".x-").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "newer");
        assert_eq!(mode(&path), 0o640);
        // Nothing left behind beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    fn texts(lines: impl Iterator<Item = std::io::Result<Line>>) -> Vec<String> {
        lines
            .map(|l| match l.unwrap() {
                Line::Text(t) => String::from_utf8(t).unwrap(),
                Line::TooLong => "<too long>".into(),
            })
            .collect()
    }

    #[test]
    fn lines_longer_than_the_bound_are_skipped_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let long = "x".repeat(300);
        let cases = [
            (
                format!("a\nbb\n{long}\nccc\n"),
                vec!["a", "bb", "<too long>", "ccc"],
            ),
            (format!("{long}\n\nd"), vec!["<too long>", "", "d"]),
            ("one".to_string(), vec!["one"]),
            ("\n".to_string(), vec![""]),
            (String::new(), vec![]),
            (format!("a\n{long}"), vec!["a", "<too long>"]),
        ];
        for (text, want) in cases {
            std::fs::write(&path, &text).unwrap();
            let forward = texts(lines(
                std::io::BufReader::with_capacity(7, File::open(&path).unwrap()),
                100,
            ));
            assert_eq!(forward, want, "{text:?}");
            // Backwards, with a chunk smaller than a line: lines that span chunks come out whole.
            let back = lines_backwards(File::open(&path).unwrap(), 100).unwrap();
            let mut backward = texts(back);
            backward.reverse();
            assert_eq!(backward, want, "{text:?} backwards");
        }
    }

    #[test]
    fn backwards_a_big_file_is_read_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let text: String = (0..50_000).map(|i| format!("record {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut back = lines_backwards(File::open(&path).unwrap(), 100).unwrap();
        assert_eq!(
            back.next().unwrap().unwrap(),
            Line::Text(b"record 49999".to_vec())
        );
        // One chunk read, not the file.
        assert!(back.pos >= text.len() as u64 - CHUNK, "{}", back.pos);
        assert_eq!(back.count(), 49_999);
        // Lines that span several chunks: one over the bound, one under it.
        let (over, under) = ("o".repeat(150 << 10), "u".repeat(90 << 10));
        std::fs::write(&path, format!("first\n{over}\n{under}\nlast\n")).unwrap();
        let back = lines_backwards(File::open(&path).unwrap(), 100 << 10).unwrap();
        let got: Vec<Line> = back.map(Result::unwrap).collect();
        assert_eq!(
            got,
            vec![
                Line::Text(b"last".to_vec()),
                Line::Text(under.into_bytes()),
                Line::TooLong,
                Line::Text(b"first".to_vec()),
            ]
        );
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let fifo_err = "is a FIFO (named pipe), not a regular file";
        // Without a writer (reading) or a reader (appending), a blocking open would never return.
        for opts in [
            OpenOptions::new().read(true).clone(),
            OpenOptions::new().append(true).create(true).clone(),
        ] {
            let e = open_regular(&fifo, &mut opts.clone()).unwrap_err();
            assert_eq!(e.to_string(), fifo_err);
        }
        let e = open_regular(Path::new("/dev/full"), OpenOptions::new().append(true)).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = open_regular(dir.path(), OpenOptions::new().append(true)).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        assert!(matches!(
            open_regular(&dir.path().join("none"), OpenOptions::new().read(true)),
            Err(ReadError::NotFound)
        ));
        assert_eq!(
            check_regular_or_missing(&fifo).unwrap_err().to_string(),
            fifo_err
        );
        assert!(check_regular_or_missing(&dir.path().join("none")).is_ok());
        std::fs::write(dir.path().join("f"), "x").unwrap();
        assert!(check_regular_or_missing(&dir.path().join("f")).is_ok());
        assert!(open_regular(&dir.path().join("f"), OpenOptions::new().append(true)).is_ok());
    }
}
