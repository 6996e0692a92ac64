//! Reading the files an operator names (inventories, scripts, modules, token files): regular files only,
//! and bounded, so a directory, a FIFO or a device is a clear refusal instead of "no such file", a hang
//! waiting for a writer, or a read that never ends (`--cluster /dev/zero`). And writing the files others
//! read while this process runs (the report, a simulator's inventory) in one piece.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The largest inventory or script read: far above any real one, far below what would exhaust memory.
pub const MAX_TEXT: u64 = 4 << 20;

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

/// Reads a UTF-8 text file of at most `max` bytes. The type is checked before the file is opened: opening
/// a FIFO blocks until something writes to it.
pub fn read_text(path: &Path, max: u64) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Refused(format!("cannot read it: {e}")),
    })?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(ReadError::Refused(format!("is {what}, not a regular file")));
    }
    let too_big = |size: u64| {
        ReadError::Refused(format!("is {size} bytes; the limit is {}", human_size(max)))
    };
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| ReadError::Refused(format!("cannot read it: {e}")))?;
    // Bounded even if the file grows, or was swapped for something else, after the check.
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
}
