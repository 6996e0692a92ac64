//! Deliberate stops and plain errors thrown into a script: a guard refusing to go on (exit 3), bad input
//! (exit 2), or a catchable failure.

use rhai::{Dynamic, EvalAltResult, Position};

/// A deliberate stop thrown by a script: a guard refusing to go on (exit 3) or bad input (exit 2).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStop {
    pub kind: StopKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Guard,
    Usage,
}

impl ScriptStop {
    pub fn guard(message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Guard,
            message: message.into(),
        }
        .into()
    }

    pub fn usage(message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Usage,
            message: message.into(),
        }
        .into()
    }
}

impl From<ScriptStop> for Box<EvalAltResult> {
    fn from(s: ScriptStop) -> Self {
        EvalAltResult::ErrorRuntime(Dynamic::from(s), Position::NONE).into()
    }
}

/// A plain runtime error carrying a message.
pub fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into().into(), Position::NONE).into()
}
