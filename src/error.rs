//! The program's one error type and the single mapping from error kind to exit code.
//!
//! Exit codes are a contract with operators and automation: 0 done, 1 the script failed,
//! 2 usage or inventory error, 3 stopped safely by a guard, 128 + the signal's number when a signal
//! interrupted the run (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).

use std::path::PathBuf;

/// What ended a run early. Every message reads like a sentence and names the thing that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line, a script argument or a `--set` value was wrong.
    #[error("{0}")]
    Usage(String),

    /// The inventory could not be found, read or understood.
    #[error("inventory `{}`: {message}", path.display())]
    Inventory { path: PathBuf, message: String },

    /// A script failed; the message is already formatted with file:line and cause.
    #[error("{0}")]
    Script(String),

    /// A guard stopped the run before it could make things worse.
    #[error("{0}")]
    Guard(String),

    /// A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the run; `signal` is its number.
    #[error("interrupted")]
    Interrupted { signal: i32 },

    /// Anything else that stops the tool itself (the simulator failed to bind, a file could not be written).
    #[error("{0}")]
    Tool(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Inventory { .. } => 2,
            Error::Script(_) | Error::Tool(_) => 1,
            Error::Guard(_) => 3,
            Error::Interrupted { signal } => 128 + signal,
        }
    }
}

/// An error and its sources, outermost first.
pub fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// The innermost error's message: libraries wrap the words that say what happened ("connection refused",
/// "Host key verification failed.") in generic ones ("error sending request").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).last().map(|e| e.to_string()).unwrap_or_default()
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_documented_exit_code() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        let inv = Error::Inventory {
            path: "c.toml".into(),
            message: "no nodes".into(),
        };
        assert_eq!(inv.exit_code(), 2);
        assert_eq!(inv.to_string(), "inventory `c.toml`: no nodes");
        assert_eq!(Error::Script("boom".into()).exit_code(), 1);
        assert_eq!(Error::Guard("stop".into()).exit_code(), 3);
        assert_eq!(Error::Interrupted { signal: 2 }.exit_code(), 130);
        assert_eq!(Error::Interrupted { signal: 15 }.exit_code(), 143);
        assert_eq!(Error::Interrupted { signal: 1 }.exit_code(), 129);
    }
}
