//! Line editing for the REPL: completion of modules, functions, properties of typed values in scope,
//! node ids inside string arguments and REPL commands; hints from history; and a Rhai-aware validator
//! that lets an unfinished block or call continue on the next line.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Engine, ParseErrorType};
use rustyline::completion::{Completer, Pair};
use rustyline::hint::HistoryHinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper, Highlighter, Hinter};

/// The REPL's own commands, completed at the start of a line.
pub const COMMANDS: &[&str] = &["help", "functions", "load", "nodes", "history", "exit"];

/// What the completer knows, refreshed after every entry.
#[derive(Default)]
pub struct Known {
    /// `module` -> its function names.
    pub modules: BTreeMap<String, Vec<String>>,
    /// Functions callable without a module.
    pub globals: Vec<String>,
    /// Variables in scope and the type name of their value.
    pub vars: Vec<(String, String)>,
    /// Property names by type name (`Member` -> id, role, ...).
    pub fields: BTreeMap<String, Vec<String>>,
    /// Node ids from the inventory.
    pub nodes: Vec<String>,
}

#[derive(Helper, Hinter, Highlighter)]
pub struct ReplHelper {
    pub known: Rc<RefCell<Known>>,
    #[rustyline(Hinter)]
    hinter: HistoryHinter,
    /// A bare engine: enough to tell complete input from unfinished input, with no functions to resolve.
    parser: Engine,
}

impl ReplHelper {
    pub fn new(known: Rc<RefCell<Known>>) -> ReplHelper {
        ReplHelper {
            known,
            hinter: HistoryHinter::new(),
            parser: Engine::new_raw(),
        }
    }

    /// Completions for the text before the cursor: (start of the replaced word, candidates).
    pub fn candidates(&self, before: &str) -> (usize, Vec<String>) {
        let k = self.known.borrow();
        // Inside a string literal: node ids.
        if before.chars().filter(|c| *c == '"').count() % 2 == 1 {
            let start = before.rfind('"').map_or(0, |i| i + 1);
            let typed = &before[start..];
            return (
                start,
                k.nodes
                    .iter()
                    .filter(|n| n.starts_with(typed))
                    .cloned()
                    .collect(),
            );
        }
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '.'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        if let Some((var, prop)) = word.rsplit_once('.') {
            let Some((_, ty)) = k.vars.iter().find(|(v, _)| v == var) else {
                return (start, vec![]);
            };
            let fields = k.fields.get(ty).cloned().unwrap_or_default();
            let at = start + var.len() + 1;
            return (
                at,
                fields.into_iter().filter(|f| f.starts_with(prop)).collect(),
            );
        }
        if let Some((module, func)) = word.split_once("::") {
            let fns = k.modules.get(module).cloned().unwrap_or_default();
            return (
                start,
                fns.into_iter()
                    .filter(|f| f.starts_with(func))
                    .map(|f| format!("{module}::{f}("))
                    .collect(),
            );
        }
        let mut out: Vec<String> = Vec::new();
        if before.trim_start().len() == word.len() {
            out.extend(
                COMMANDS
                    .iter()
                    .filter(|c| c.starts_with(word))
                    .map(|c| c.to_string()),
            );
        }
        out.extend(
            k.modules
                .keys()
                .filter(|m| m.starts_with(word))
                .map(|m| format!("{m}::")),
        );
        out.extend(
            k.vars
                .iter()
                .filter(|(v, _)| v.starts_with(word))
                .map(|(v, _)| v.clone()),
        );
        out.extend(
            k.globals
                .iter()
                .filter(|g| g.starts_with(word))
                .map(|g| format!("{g}(")),
        );
        out.sort();
        out.dedup();
        (start, out)
    }

    /// Whether `input` is a complete entry, still open, or a REPL command.
    pub fn judge(&self, input: &str) -> ValidationResult {
        let t = input.trim();
        let first = t.split_whitespace().next().unwrap_or("");
        if t.is_empty() || COMMANDS.contains(&first) || t == "quit" {
            return ValidationResult::Valid(None);
        }
        if t.ends_with('\\') {
            return ValidationResult::Incomplete;
        }
        match self.parser.compile(input) {
            Ok(_) => ValidationResult::Valid(None),
            Err(e) => {
                let open = matches!(e.err_type(), ParseErrorType::UnexpectedEOF)
                    || e.err_type().to_string().contains("not terminated")
                    || (matches!(e.err_type(), ParseErrorType::MissingToken(..))
                        && at_end(input, e.position()));
                if open {
                    ValidationResult::Incomplete
                } else {
                    // Let the runtime report it with the line and a caret.
                    ValidationResult::Valid(None)
                }
            }
        }
    }
}

/// True when `pos` is past the last non-blank character of `input`: the parser ran out of input.
fn at_end(input: &str, pos: rhai::Position) -> bool {
    let Some(line) = pos.line() else { return true };
    let lines: Vec<&str> = input.trim_end().lines().collect();
    line > lines.len()
        || (line == lines.len() && pos.position().unwrap_or(0) > lines[line - 1].len())
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, list) = self.candidates(&line[..pos]);
        Ok((
            start,
            list.into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(self.judge(ctx.input()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ReplHelper {
        let mut k = Known::default();
        k.modules.insert(
            "cluster".into(),
            vec!["health".into(), "members".into(), "leader".into()],
        );
        k.modules
            .insert("node".into(), vec!["drain".into(), "status".into()]);
        k.globals = vec!["info".into(), "option".into()];
        k.vars = vec![
            ("h".into(), "ClusterHealth".into()),
            ("health_now".into(), "ClusterHealth".into()),
        ];
        k.fields.insert(
            "ClusterHealth".into(),
            vec!["healthy".into(), "leader".into(), "members".into()],
        );
        k.nodes = vec!["node1".into(), "node10".into(), "node2".into()];
        ReplHelper::new(Rc::new(RefCell::new(k)))
    }

    #[test]
    fn completes_module_functions_with_an_open_paren() {
        assert_eq!(
            helper().candidates("cluster::hea"),
            (0, vec!["cluster::health(".to_string()])
        );
        assert_eq!(
            helper().candidates("let x = cluster::l").1,
            vec!["cluster::leader("]
        );
        assert_eq!(
            helper().candidates("clu"),
            (0, vec!["cluster::".to_string()])
        );
    }

    #[test]
    fn completes_properties_of_typed_values_in_scope() {
        assert_eq!(
            helper().candidates("h.he"),
            (2, vec!["healthy".to_string()])
        );
        assert_eq!(
            helper().candidates("print(h.l"),
            (8, vec!["leader".to_string()])
        );
        assert_eq!(helper().candidates("nope.x").1, Vec::<String>::new());
    }

    #[test]
    fn completes_node_ids_inside_strings() {
        assert_eq!(
            helper().candidates("node::drain(\"node1"),
            (13, vec!["node1".to_string(), "node10".to_string()])
        );
        assert_eq!(helper().candidates("node::status(\"").1.len(), 3);
    }

    #[test]
    fn completes_commands_only_at_the_start() {
        assert_eq!(
            helper().candidates("he"),
            (0, vec!["health_now".to_string(), "help".to_string()])
        );
        assert!(!helper()
            .candidates("x + he")
            .1
            .contains(&"help".to_string()));
    }

    #[test]
    fn unfinished_input_continues() {
        let h = helper();
        let incomplete = |s: &str| matches!(h.judge(s), ValidationResult::Incomplete);
        assert!(incomplete("fn double(x) {"));
        assert!(incomplete("fn double(x) {\n  x * 2"));
        assert!(!incomplete("fn double(x) {\n  x * 2\n}"));
        assert!(incomplete("node::drain("));
        assert!(incomplete("let s = \"abc"));
        assert!(incomplete("let a = [1, 2,"));
        assert!(incomplete("1 + \\"));
        assert!(!incomplete("cluster::health()"));
        assert!(!incomplete("help cluster::health"));
        // A plain mistake is not "unfinished": it runs and reports the error.
        assert!(!incomplete("let = 5;"));
    }
}
