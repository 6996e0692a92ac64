//! Deliberate stops and plain errors thrown into a script: a guard refusing to go on (exit 3), bad input
//! (exit 2), or a catchable failure.

use std::fmt;

use rhai::{CustomType, Dynamic, EvalAltResult, Position};
use serde::Serialize;

use crate::model::types::printable;

/// A deliberate stop thrown by a script: a guard refusing to go on (exit 3) or bad input (exit 2).
/// A caught stop reads `e.kind` and `e.message`, prints and serializes as its message.
#[derive(Debug, Clone, PartialEq, Serialize, CustomType)]
#[serde(transparent)]
#[rhai_type(name = "Stop", extra = printable)]
pub struct ScriptStop {
    #[serde(skip)]
    #[rhai_type(readonly, get = Self::kind_name)]
    pub kind: StopKind,
    #[rhai_type(readonly)]
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Guard,
    Usage,
}

impl ScriptStop {
    fn kind_name(&self) -> String {
        match self.kind {
            StopKind::Guard => "guard".into(),
            StopKind::Usage => "usage".into(),
        }
    }

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

impl fmt::Display for ScriptStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
