//! `version::` — semver parsing and the runbook's version policy; no cluster needed.

use std::cmp::Ordering;
use std::rc::Rc;

use rhai::{Dynamic, ImmutableString, Map, Module};

use super::builder::{Builder, FnDoc};
use crate::model::policy::{self, parse_version};
use crate::model::RhaiResult;
use crate::model::Version;
use crate::script::ctx::Ctx;
use crate::script::stop::fail;

/// What `neumann-script functions`, the REPL's help and the editor definitions say of each function.
mod doc {
    pub const PARSE: &str =
        "Parses a semantic version (`0.11.0`, `v0.11.0`); throws a clear error on \
        `X.Y.Z` or other junk.";
    pub const COMPARE: &str =
        "-1, 0 or 1 as `a` is older than, the same as, or newer than `b` (strings \
        or Versions).";
    pub const UPGRADE_PATH: &str =
        "#{rolling, strategy, reason}: strategy is \"rolling\" within one \
        minor version of the same major, \"blue-green\" beyond that, \"none\" when `to` is not \
        newer.";
    pub const SKEW_OK: &str = "True when every pair of versions is within one minor version (the \
        runbook's skew policy); takes an array of versions or a map id -> version.";
}

/// A version from a script value: a `Version` or a string that parses as one.
pub fn to_semver(v: &Dynamic) -> Result<semver::Version, String> {
    if let Some(v) = v.read_lock::<Version>() {
        return Ok(v.0.clone());
    }
    if v.is_string() {
        return parse_version(&v.to_string());
    }
    Err(format!(
        "expected a version string such as \"0.11.0\", not {}",
        v.type_name()
    ))
}

fn arg(v: &Dynamic) -> RhaiResult<semver::Version> {
    to_semver(v).map_err(fail)
}

pub fn module(ctx: &Rc<Ctx>, docs: &mut Vec<FnDoc>) -> Module {
    let mut b = Builder::module("version", ctx, docs);
    b.add_fn(
        "parse",
        &["s: String"],
        "Version",
        doc::PARSE,
        |s: ImmutableString| -> RhaiResult<Version> {
            parse_version(&s).map(Version).map_err(fail)
        },
    );
    b.add_fn(
        "compare",
        &["a: String", "b: String"],
        "int",
        doc::COMPARE,
        |a: Dynamic, b: Dynamic| -> RhaiResult<i64> {
            Ok(match arg(&a)?.cmp(&arg(&b)?) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })
        },
    );
    b.add_fn(
        "upgrade_path",
        &["from: String", "to: String"],
        "Map",
        doc::UPGRADE_PATH,
        |from: Dynamic, to: Dynamic| -> RhaiResult<Map> {
            let p = policy::upgrade_path(&arg(&from)?, &arg(&to)?);
            let mut m = Map::new();
            m.insert("rolling".into(), p.rolling.into());
            m.insert("strategy".into(), Dynamic::from(p.strategy.to_string()));
            m.insert("reason".into(), Dynamic::from(p.reason));
            Ok(m)
        },
    );
    b.add_fn(
        "skew_ok",
        &["versions: Array|Map"],
        "bool",
        doc::SKEW_OK,
        |versions: Dynamic| -> RhaiResult<bool> {
            let items: Vec<Dynamic> = if let Some(m) = versions.read_lock::<Map>() {
                m.values().cloned().collect()
            } else if let Some(a) = versions.read_lock::<rhai::Array>() {
                a.to_vec()
            } else {
                return Err(fail(format!(
                    "version::skew_ok: expected an array or a map of versions, not {}",
                    versions.type_name()
                )));
            };
            let parsed = items.iter().map(arg).collect::<RhaiResult<Vec<_>>>()?;
            Ok(policy::skew_ok(&parsed))
        },
    );
    b.build()
}
