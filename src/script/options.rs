//! The options a script takes, known before it runs (docs/SCRIPTING.md, "Options"): every
//! `option("NAME", ...)` whose name is in quotes, in the script and in every module it imports (followed
//! through the engine's own resolver, so a module beside the script wins over the stdlib as it does at run
//! time), and the names a file lists in a top-level `const OPTIONS = [...]`. A `--set` naming none of them
//! is refused before anything is opened. Where the scan cannot see every name (a computed name and no
//! declaration), the `--set` names it cannot judge are left to the end of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rhai::{ASTFlags, ASTNode, Engine, Expr, Position, Stmt, AST};

use super::diagnostics::{self, strip_shebang, Sources};
use super::resolver;
use crate::error::Error;
use crate::output::Output;

/// The top-level constant a file lists its option names in.
pub const DECLARATION: &str = "OPTIONS";

/// The options one script takes, as far as its text shows them.
#[derive(Debug, Default, PartialEq)]
pub struct ScriptOptions {
    /// Every option name read in quotes or declared.
    pub names: BTreeSet<String>,
    /// The places the scan could not see through (`file:line: what`), when no declaration speaks for
    /// them; empty when `names` is the whole list.
    pub blind: Vec<String>,
}

/// One file's findings.
#[derive(Default)]
struct FileScan {
    declared: bool,
    /// `option(...)` calls whose name is computed.
    computed: Vec<String>,
    /// Imports that could not be followed.
    unfollowed: Vec<String>,
}

/// Reads the options of the script `ast` (named `name`) and of every module it imports, without running
/// anything. Fails only on a `const OPTIONS` that is not a list of names in quotes.
pub fn scan(
    engine: &Engine,
    name: &str,
    ast: &AST,
    script_dir: Option<&Path>,
    sources: &Sources,
) -> Result<ScriptOptions, Error> {
    let mut names = BTreeSet::new();
    let mut seen: BTreeSet<String> = BTreeSet::from([name.to_string()]);
    let mut queue: Vec<(String, AST)> = vec![(name.to_string(), ast.clone())];
    let mut blind = Vec::new();
    let mut script_declares = false;
    while let Some((file, ast)) = queue.pop() {
        let mut found = FileScan::default();
        declaration(&file, &ast, sources, &mut names, &mut found)?;
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, pos)))
                | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                    if call.namespace.is_empty() && call.name == "option" =>
                {
                    match call.args.first().and_then(literal) {
                        Some(n) => {
                            names.insert(n);
                        }
                        None => found.computed.push(format!(
                            "{}: `option` with a computed name",
                            at(&file, *pos)
                        )),
                    }
                }
                Some(ASTNode::Stmt(Stmt::Import(x, pos))) => {
                    let Some(path) = literal(&x.0) else {
                        found
                            .unfollowed
                            .push(format!("{}: `import` of a computed path", at(&file, *pos)));
                        return true;
                    };
                    match resolver::module_source(Some(&file), &path, script_dir) {
                        Ok(Some((key, text))) => {
                            if seen.insert(key.clone()) {
                                match engine.compile(strip_shebang(&text)) {
                                    Ok(module) => {
                                        sources.add(&key, &text);
                                        queue.push((key, module));
                                    }
                                    Err(_) => found.unfollowed.push(format!(
                                        "{}: module `{key}` does not compile",
                                        at(&file, *pos)
                                    )),
                                }
                            }
                        }
                        Ok(None) => found
                            .unfollowed
                            .push(format!("{}: no module `{path}`", at(&file, *pos))),
                        Err((f, e)) => found.unfollowed.push(format!(
                            "{}: module `{}`: {e}",
                            at(&file, *pos),
                            f.display()
                        )),
                    }
                }
                _ => {}
            }
            true
        });
        if file == name {
            script_declares = found.declared;
        }
        // A module's declaration speaks for its own computed names; the script's, below, for everything.
        if !found.declared {
            blind.extend(found.computed);
        }
        blind.extend(found.unfollowed);
    }
    if script_declares {
        blind.clear();
    }
    blind.sort();
    Ok(ScriptOptions { names, blind })
}

/// A string the text spells out: in quotes, or folded from constants by the compiler.
fn literal(e: &Expr) -> Option<String> {
    e.get_literal_value(None)?
        .into_immutable_string()
        .ok()
        .map(|s| s.to_string())
}

fn at(file: &str, pos: Position) -> String {
    format!("{file}:{}", pos.line().unwrap_or(0))
}

/// A top-level `const OPTIONS = ["name", ...]` of this file, added to `names`.
fn declaration(
    file: &str,
    ast: &AST,
    sources: &Sources,
    names: &mut BTreeSet<String>,
    found: &mut FileScan,
) -> Result<(), Error> {
    for stmt in ast.statements() {
        let Stmt::Var(x, flags, pos) = stmt else {
            continue;
        };
        if !flags.contains(ASTFlags::CONSTANT) || x.0.name != DECLARATION {
            continue;
        }
        let listed: Option<Vec<String>> =
            x.1.get_literal_value(None)
                .and_then(|v| v.try_cast::<rhai::Array>())
                .and_then(|items| {
                    items
                        .into_iter()
                        .map(|i| i.into_immutable_string().ok().map(|s| s.to_string()))
                        .collect()
                });
        match listed {
            Some(listed) if listed.iter().all(|n| !n.trim().is_empty()) => {
                names.extend(listed);
                found.declared = true;
            }
            _ => {
                return Err(Error::Script(format!(
                    "error: `const {DECLARATION}` must list the script's option names in quotes, such as `const {DECLARATION} = [\"soak_secs\", \"only\"];`\n{}",
                    diagnostics::locate(file, *pos, sources)
                )))
            }
        }
    }
    Ok(())
}

/// How a script is named in messages: as the operator named it.
fn shown(script: &str) -> String {
    match script {
        "<-e>" => "the -e snippet".into(),
        s => format!("`{}`", s.strip_prefix("<stock>/").unwrap_or(s)),
    }
}

impl ScriptOptions {
    /// Refuses (exit 2) every `--set` the script does not take, when the scan saw all it takes. When it
    /// could not, says so now and gives the names it could not judge, for the end of the run.
    pub fn check_sets(
        &self,
        script: &str,
        sets: &BTreeMap<String, String>,
    ) -> Result<Unchecked, Error> {
        let unknown: Vec<(&String, &String)> = sets
            .iter()
            .filter(|(k, _)| !self.names.contains(*k))
            .collect();
        if unknown.is_empty() {
            return Ok(Unchecked::default());
        }
        if !self.blind.is_empty() {
            let list = unknown
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Output::new().warn(&format!(
                "--set {list}: cannot be checked before the run: {} asks for options whose names are known only as it runs ({}) and lists no `const {DECLARATION}`; one the run never asks for is reported at its end",
                shown(script),
                self.blind.join("; ")
            ));
            return Ok(Unchecked(
                unknown
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ));
        }
        let mut lines: Vec<String> = unknown
            .iter()
            .map(|(k, v)| {
                format!(
                    "--set {k}={v}: {} takes no option `{k}`{}",
                    shown(script),
                    diagnostics::suggest(k, self.names.iter().map(String::as_str))
                )
            })
            .collect();
        lines.push(if self.names.is_empty() {
            format!("{} takes no options; nothing was run", shown(script))
        } else {
            format!(
                "its options: {}; nothing was run",
                self.names.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        });
        Err(Error::Usage(lines.join("\n")))
    }

    /// For `check`: the options, and what the scan could not see.
    pub fn describe(&self) -> String {
        let mut text = if self.names.is_empty() {
            "options: none".to_string()
        } else {
            format!(
                "options: {}",
                self.names.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        if !self.blind.is_empty() {
            text.push_str(&format!(
                "\n  and names known only as it runs ({}): list them in `const {DECLARATION} = [...]` to have --set checked before a run",
                self.blind.join("; ")
            ));
        }
        text
    }
}

/// `--set` names the up-front check could not judge (name, value): the run must ask for each, or it is
/// reported at the end.
#[derive(Debug, Default)]
pub struct Unchecked(BTreeMap<String, String>);

impl Unchecked {
    /// Every `--set`: the REPL's entries are not known before they are typed.
    pub fn all(sets: &BTreeMap<String, String>) -> Unchecked {
        Unchecked(sets.clone())
    }

    /// After the run, last so it is not lost above the run's output: each of these the run never asked
    /// for had no effect.
    pub fn warn_never_asked(&self, asked: &BTreeSet<String>) {
        let asked_list = if asked.is_empty() {
            "it asked for none".to_string()
        } else {
            format!(
                "it asked for {}",
                asked
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for (name, value) in self.0.iter().filter(|(k, _)| !asked.contains(*k)) {
            Output::new().warn(&format!(
                "--set {name}={value} had no effect: the run never asked for an option named `{name}` ({asked_list})"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_set_is_refused_with_the_nearest_name_and_a_blind_scan_leaves_it_for_later() {
        let known = ScriptOptions {
            names: ["soak_secs".to_string(), "only".to_string()].into(),
            blind: Vec::new(),
        };
        let sets: BTreeMap<String, String> = [("soak_sec".to_string(), "600".to_string())].into();
        let Err(Error::Usage(m)) = known.check_sets("<stock>/rolling_upgrade.rhai", &sets) else {
            panic!("not refused")
        };
        assert_eq!(
            m,
            "--set soak_sec=600: `rolling_upgrade.rhai` takes no option `soak_sec` (did you mean `soak_secs`?)\nits options: only, soak_secs; nothing was run"
        );
        let blind = ScriptOptions {
            blind: vec!["s.rhai:3: `option` with a computed name".into()],
            ..known
        };
        let left = blind.check_sets("s.rhai", &sets).unwrap();
        assert_eq!(left.0, sets);
    }
}
