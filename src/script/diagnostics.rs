//! Turns Rhai's errors into the program's: the message first, then `file:line:col`, the offending source
//! line with a caret, and the chain of calls that led there; thrown guard and usage stops map to their
//! exit codes. Also the static call check behind `neumann-script check`.

use std::collections::{BTreeSet, HashSet};

use rhai::{
    ASTNode, Engine, EvalAltResult, Expr, ParseError, ParseErrorType, Position, Scope, Stmt, AST,
};

use std::cell::RefCell;
use std::collections::HashMap;

use super::stop::{ScriptStop, StopKind};
use crate::error::Error;

/// Rhai rejects a `#!` line; blank it so line numbers stay true.
pub fn strip_shebang(text: &str) -> String {
    if text.starts_with("#!") {
        match text.find('\n') {
            Some(i) => text[i..].to_string(),
            None => String::new(),
        }
    } else {
        text.to_string()
    }
}

/// Source texts by source name, for showing the offending line of an error.
#[derive(Default)]
pub struct Sources(RefCell<HashMap<String, String>>);

impl Sources {
    pub fn add(&self, name: &str, text: &str) {
        self.0
            .borrow_mut()
            .insert(name.to_string(), text.to_string());
    }

    pub fn line(&self, name: &str, line: usize) -> Option<String> {
        self.0
            .borrow()
            .get(name)
            .and_then(|t| t.lines().nth(line.checked_sub(1)?).map(str::to_string))
    }
}

/// "file:line:col" followed by the source line and a caret, when the line is known.
pub(super) fn locate(source: &str, pos: Position, sources: &Sources) -> String {
    let (Some(line), col) = (pos.line(), pos.position().unwrap_or(1)) else {
        return format!("  --> {source}");
    };
    let mut out = format!("  --> {source}:{line}:{col}");
    if let Some(text) = sources.line(source, line) {
        let gutter = " ".repeat(line.to_string().len());
        let caret_pad: String = text
            .chars()
            .take(col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!(
            "\n{gutter} |\n{line} | {text}\n{gutter} | {caret_pad}^"
        ));
    }
    out
}

/// A syntax error from compiling `source`.
pub fn parse_error(e: &ParseError, source: &str, sources: &Sources) -> String {
    format!(
        "error: {}\n{}",
        e.err_type(),
        locate(source, e.position(), sources)
    )
}

/// Rhai's message for an error, without the " (line 3, position 5)" suffix it appends.
fn bare_message(e: &EvalAltResult) -> String {
    if let EvalAltResult::ErrorRuntime(v, _) = e {
        return match v.read_lock::<ScriptStop>() {
            Some(stop) => stop.message.clone(),
            None => v.to_string(),
        };
    }
    let text = e.to_string();
    let pos = e.position();
    if pos.is_none() {
        return text;
    }
    text.strip_suffix(&format!(" ({pos})"))
        .map(str::to_string)
        .unwrap_or(text)
}

/// Maps an error from running `top` (the script's source name) to the program's error.
pub fn runtime_error(err: &EvalAltResult, top: &str, sources: &Sources) -> Error {
    let mut chain = Vec::new();
    let mut source = top.to_string();
    let mut cur = err;
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, fn_source, inner, pos) => {
                let shown = if name.starts_with("anon$") {
                    "a closure".to_string()
                } else {
                    format!("`{name}`")
                };
                chain.push(format!(
                    "in {shown}, called at {source}:{}",
                    pos.line().unwrap_or(0)
                ));
                if !fn_source.is_empty() {
                    source = fn_source.clone();
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                chain.push(format!(
                    "in module `{name}`, imported at {source}:{}",
                    pos.line().unwrap_or(0)
                ));
                source = name.clone();
                cur = inner;
            }
            _ => break,
        }
    }
    if let EvalAltResult::ErrorRuntime(v, pos) = cur {
        if let Some(stop) = v.clone().try_cast::<ScriptStop>() {
            let at = match &stop.at {
                Some(at) => format!(" ({at})"),
                None => pos
                    .line()
                    .map(|l| format!(" ({source}:{l})"))
                    .unwrap_or_default(),
            };
            return match stop.kind {
                StopKind::Guard => Error::Guard(format!("stopped safely: {}{at}", stop.message)),
                // `usage(msg)` speaks to the operator about the run's input, and says so in its own
                // words; anything else (an API call given an unknown node) names the line that made it.
                StopKind::Usage if stop.at.is_some() => Error::Usage(stop.message),
                StopKind::Usage => Error::Usage(format!("{}{at}", stop.message)),
            };
        }
    }
    if let EvalAltResult::ErrorTerminated(..) = cur {
        // SIGINT until the engine, which knows the run's signal, says which (`ScriptEngine::run`).
        return Error::Interrupted { signal: 2 };
    }
    let mut msg = format!(
        "error: {}\n{}",
        bare_message(cur),
        locate(&source, cur.position(), sources)
    );
    // Innermost call first reads like a stack trace.
    for c in chain.iter().rev() {
        msg.push_str(&format!("\n   = {c}"));
    }
    Error::Script(msg)
}

/// Keywords and engine-level functions that `gen_fn_signatures` does not list.
const KEYWORD_FNS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "eval",
    "throw",
];

/// Every function a script can call without a namespace, and every `module::function` with its arities.
fn known_functions(engine: &Engine) -> (HashSet<String>, HashSet<(String, usize)>) {
    let mut names: HashSet<String> = KEYWORD_FNS.iter().map(|s| s.to_string()).collect();
    let mut qualified = HashSet::new();
    for sig in engine.gen_fn_signatures(true) {
        let Some(open) = sig.find('(') else { continue };
        let name = &sig[..open];
        let params = sig[open + 1..].split(')').next().unwrap_or("");
        let arity = if params.trim().is_empty() {
            0
        } else {
            params.split(',').count()
        };
        if name.contains("::") {
            qualified.insert((name.to_string(), arity));
        } else {
            names.insert(name.to_string());
        }
    }
    (names, qualified)
}

/// " (did you mean `x`?)" for the candidate nearest `name` by edit distance, when one is near enough.
pub(super) fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len() / 4) && *c != name)
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// One problem `check` found: where, what, and a note that follows the source line.
pub struct Problem {
    pos: Position,
    message: String,
    note: Option<String>,
}

/// The most problems one file's check reports: past this, a file is more wrong than a list helps with.
const MOST_PROBLEMS: usize = 100;

/// Parses `text` as far as it can, collecting every unknown variable and module on the way, where Rhai
/// itself stops at the first: each one is noted at its first use, then declared (the variable in the
/// scope, the module as an empty module registered on `engine`) and the text parsed again. A syntax error
/// ends it: Rhai cannot read past one, and guessing where the broken statement ends (blanking its line)
/// would report errors that are not there (a `let` blanked makes its variable unknown further down).
/// The AST is returned when the text parsed.
pub fn parse_on(
    engine: &mut Engine,
    mut scope: Scope<'static>,
    text: &str,
) -> (Option<AST>, Vec<Problem>) {
    let (_, qualified) = known_functions(engine);
    let modules: BTreeSet<String> = qualified
        .iter()
        .filter_map(|(n, _)| n.split("::").next().map(str::to_string))
        .collect();
    let mut problems = Vec::new();
    loop {
        let e = match engine.compile_with_scope(&scope, text) {
            Ok(ast) => return (Some(ast), problems),
            Err(e) => e,
        };
        let more = problems.len() + 1 < MOST_PROBLEMS;
        let (message, note) = match e.err_type() {
            ParseErrorType::VariableUndefined(name) if more => {
                scope.push(name.clone(), ());
                (e.err_type().to_string(), None)
            }
            ParseErrorType::ModuleUndefined(name) if more => {
                engine.register_static_module(name.as_str(), rhai::Module::new().into());
                let hint = suggest(name, modules.iter().map(String::as_str));
                (format!("{}{hint}", e.err_type()), None)
            }
            ParseErrorType::VariableUndefined(_) | ParseErrorType::ModuleUndefined(_) => (
                e.err_type().to_string(),
                Some(format!(
                    "the check stops after {MOST_PROBLEMS} problems: fix these and check again"
                )),
            ),
            other => (
                other.to_string(),
                Some(
                    "Rhai cannot read past a syntax error: the lines after it were not checked, nor \
                     any line's calls (that needs the whole file read); fix it and check again"
                        .to_string(),
                ),
            ),
        };
        let last = note.is_some();
        problems.push(Problem {
            pos: e.position(),
            message,
            note,
        });
        if last {
            return (None, problems);
        }
    }
}

/// Finds calls to functions that do not exist, or exist with another number of arguments, among the
/// script API, the engine's functions and the script's own; calls into imported script modules are
/// left to run time because their contents are only known once imported.
pub fn call_problems(engine: &Engine, ast: &AST) -> Vec<Problem> {
    let (names, qualified) = known_functions(engine);
    let static_modules: BTreeSet<String> = qualified
        .iter()
        .filter_map(|(n, _)| n.split("::").next().map(str::to_string))
        .collect();
    let script_fns: HashSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let mut problems = Vec::new();
    let mut found = |pos: Position, message: String| {
        problems.push(Problem {
            pos,
            message,
            note: None,
        })
    };
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => Some((call, pos)),
            _ => None,
        };
        if let Some((call, pos)) = call {
            if call.op_token.is_some() {
                return true;
            }
            let name = call.name.as_str();
            if call.namespace.is_empty() {
                if !names.contains(name) && !script_fns.contains(name) {
                    let hint = suggest(
                        name,
                        names.iter().chain(script_fns.iter()).map(String::as_str),
                    );
                    found(*pos, format!("unknown function `{name}`{hint}"));
                }
            } else {
                let module = call.namespace.root();
                if static_modules.contains(module) {
                    let full = format!("{module}::{name}");
                    let arity = call.args.len();
                    if !qualified.contains(&(full.clone(), arity)) {
                        let arities: BTreeSet<usize> = qualified
                            .iter()
                            .filter(|(n, _)| *n == full)
                            .map(|(_, a)| *a)
                            .collect();
                        let msg = if arities.is_empty() {
                            let in_module = qualified
                                .iter()
                                .filter(|(n, _)| n.starts_with(&format!("{module}::")))
                                .map(|(n, _)| n.as_str());
                            format!("unknown function `{full}`{}", suggest(&full, in_module))
                        } else {
                            let takes: Vec<String> = arities.iter().map(usize::to_string).collect();
                            format!(
                                "`{full}` takes {} argument(s), not {arity}",
                                takes.join(" or ")
                            )
                        };
                        found(*pos, msg);
                    }
                }
            }
        }
        true
    });
    problems
}

/// Every problem of `source` in the order of its lines, each with its file:line:col and source line,
/// and how many there were; `Ok` when there were none.
pub fn report(mut problems: Vec<Problem>, source: &str, sources: &Sources) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by_key(|p| (p.pos.line(), p.pos.position()));
    let mut out: Vec<String> = problems
        .iter()
        .map(|p| {
            let mut one = format!("error: {}\n{}", p.message, locate(source, p.pos, sources));
            if let Some(note) = &p.note {
                one.push_str(&format!("\n  = note: {note}"));
            }
            one
        })
        .collect();
    if problems.len() > 1 {
        out.push(format!("{source}: {} errors", problems.len()));
    }
    Err(out.join("\n"))
}

/// The first line of an error's message, for one-line summaries such as a failed step.
pub fn short(e: &EvalAltResult) -> String {
    let mut cur = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = cur
    {
        cur = inner;
    }
    if let EvalAltResult::ErrorTerminated(..) = cur {
        return "interrupted".into();
    }
    bare_message(cur)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_suggests_near_names() {
        assert_eq!(
            suggest(
                "cluster::helth",
                ["cluster::health", "cluster::members"].into_iter()
            ),
            " (did you mean `cluster::health`?)"
        );
        assert_eq!(suggest("zzzzzz", ["cluster::health"].into_iter()), "");
    }

    #[test]
    fn a_parse_reads_on_past_unknown_names_up_to_a_bound() {
        let mut engine = Engine::new();
        engine.set_strict_variables(true);
        let (ast, problems) = parse_on(&mut engine, Scope::new(), "a + b;\nm::f(a);\nc;\n");
        assert!(ast.is_some());
        let found: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        assert_eq!(
            found,
            [
                "Undefined variable: a",
                "Undefined variable: b",
                "Undefined module: m",
                "Undefined variable: c"
            ]
        );
        let many: String = (0..150).map(|i| format!("v{i};\n")).collect();
        let (ast, problems) = parse_on(&mut Engine::new_raw(), Scope::new(), "let x = ;");
        assert!(ast.is_none() && problems.len() == 1 && problems[0].note.is_some());
        let (ast, problems) = parse_on(&mut engine, Scope::new(), &many);
        assert!(ast.is_none());
        assert_eq!(problems.len(), MOST_PROBLEMS);
        assert!(problems[MOST_PROBLEMS - 1]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("stops after 100 problems")));
        assert!(problems[..MOST_PROBLEMS - 1]
            .iter()
            .all(|p| p.note.is_none()));
    }
}
