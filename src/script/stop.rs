//! Deliberate stops and plain errors thrown into a script: a guard refusing to go on (exit 3), bad input
//! (exit 2), or a catchable failure.

use std::fmt;

use rhai::{CustomType, Dynamic, EvalAltResult, Position};
use serde::Serialize;

use crate::model::values::printable;

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
    /// The interlock that refused, when one did (`e.rule` in a script; `()` otherwise).
    #[serde(skip)]
    #[rhai_type(readonly, get = Self::rule_name)]
    pub rule: Option<&'static str>,
    /// Where `safe_stop` or `usage` was called (`upgrade.rhai:42`): kept when a script catches the
    /// stop and throws it on (the stock runbook does, to call its `on_stop` hook), so the message still
    /// names the place the stop came from rather than the rethrow.
    #[serde(skip)]
    #[rhai_type(skip)]
    pub at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    Guard,
    Usage,
}

impl ScriptStop {
    fn rule_name(&self) -> Dynamic {
        self.rule.map_or(Dynamic::UNIT, |r| r.into())
    }

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
            rule: None,
            at: None,
        }
        .into()
    }

    /// An interlock refused an operation: a guard stop naming its rule.
    pub fn refused(rule: &'static str, message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Guard,
            message: message.into(),
            rule: Some(rule),
            at: None,
        }
        .into()
    }

    pub fn usage(message: impl Into<String>) -> Box<EvalAltResult> {
        ScriptStop {
            kind: StopKind::Usage,
            message: message.into(),
            rule: None,
            at: None,
        }
        .into()
    }
}

impl fmt::Display for ScriptStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The rule of the interlock that refused, when `e` is such a refusal.
pub fn refused_rule(e: &EvalAltResult) -> Option<&'static str> {
    let mut cur = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = cur
    {
        cur = inner;
    }
    match cur {
        EvalAltResult::ErrorRuntime(v, _) => v.read_lock::<ScriptStop>().and_then(|s| s.rule),
        _ => None,
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
