//! How script values are shown: as JSON for `--format json`, as readable text otherwise.
//! Typed values (`Member`, `ClusterHealth`, ...) are shown as `script::custom_types` says: serde's JSON, or
//! what `print` shows.

use rhai::Dynamic;
use serde_json::{Map as JsonMap, Number, Value};

use super::custom_types;
use crate::model::{ClusterHealth, Member};

/// JSON for any script value.
pub fn to_json(d: &Dynamic) -> Value {
    if let Some(v) = custom_types::to_json(d) {
        return v;
    }
    if d.is_unit() {
        Value::Null
    } else if let Ok(b) = d.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = d.as_int() {
        Value::Number(i.into())
    } else if let Ok(f) = d.as_float() {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if d.is_string() || d.is_char() {
        Value::String(d.to_string())
    } else if let Some(arr) = d.read_lock::<rhai::Array>() {
        Value::Array(arr.iter().map(to_json).collect())
    } else if let Some(map) = d.read_lock::<rhai::Map>() {
        Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect::<JsonMap<_, _>>(),
        )
    } else {
        Value::String(d.to_string())
    }
}

/// Text for a result printed by `-e`: nothing for `()`, strings as they are, typed values by their
/// own display, collections as indented JSON.
pub fn to_text(d: &Dynamic) -> Option<String> {
    if d.is_unit() {
        return None;
    }
    if d.is_string() {
        return Some(d.to_string());
    }
    if let Some(h) = d.read_lock::<ClusterHealth>() {
        // The summary line, the members as a table, then the problems.
        let summary = h.to_string();
        let mut lines = summary.lines();
        let mut out = format!(
            "{}\n{}",
            lines.next().unwrap_or(""),
            member_table(&h.members)
        );
        for problem in lines {
            out.push('\n');
            out.push_str(problem.trim_start());
        }
        return Some(out);
    }
    if let Some(text) = custom_types::to_text(d) {
        return Some(text);
    }
    if let Some(arr) = d.read_lock::<rhai::Array>() {
        if !arr.is_empty() && arr.iter().all(|x| x.is::<Member>()) {
            let members: Vec<Member> = arr
                .iter()
                .filter_map(|x| x.read_lock::<Member>().map(|m| m.clone()))
                .collect();
            return Some(member_table(&members));
        }
    }
    if d.is_array() || d.is_map() {
        return Some(serde_json::to_string_pretty(&to_json(d)).unwrap_or_else(|_| d.to_string()));
    }
    Some(d.to_string())
}

/// Members as aligned columns, for people.
pub fn member_table(members: &[Member]) -> String {
    let header = [
        "ID", "ROLE", "STATE", "HEALTHY", "VERSION", "COMMIT", "APPLIED", "LAG_MS",
    ];
    let rows: Vec<[String; 8]> = members
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                m.role.clone(),
                m.state.clone(),
                if m.healthy { "yes".into() } else { "NO".into() },
                m.version.clone(),
                m.commit_index.to_string(),
                m.applied_index.to_string(),
                m.replication_lag_ms.to_string(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(&header.map(String::from))];
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n")
}

/// A value as a message shows it: strings bare, arrays as `a, b`, maps as `k=v, k=v`, `none` for `()` or
/// nothing; inside another array or map, arrays and maps keep brackets so their items stay apart.
pub fn plain(v: &Dynamic) -> String {
    shown(v, false)
}

fn shown(v: &Dynamic, nested: bool) -> String {
    let (open, close) = if nested { ("[", "]") } else { ("", "") };
    if let Some(a) = v.read_lock::<rhai::Array>() {
        if a.is_empty() {
            return if nested { "[]".into() } else { "none".into() };
        }
        let items: Vec<String> = a.iter().map(|x| shown(x, true)).collect();
        return format!("{open}{}{close}", items.join(", "));
    }
    if let Some(m) = v.read_lock::<rhai::Map>() {
        if m.is_empty() {
            return if nested { "[]".into() } else { "none".into() };
        }
        let items: Vec<String> = m
            .iter()
            .map(|(k, x)| format!("{k}={}", shown(x, true)))
            .collect();
        return format!("{open}{}{close}", items.join(", "));
    }
    if v.is_unit() {
        return "none".into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_print_as_aligned_columns() {
        let m = |id: &str, lag: i64| Member {
            id: id.into(),
            address: String::new(),
            role: "follower".into(),
            state: "up".into(),
            healthy: true,
            version: "0.10.4".into(),
            commit_index: 1200,
            applied_index: 1200,
            replication_lag_ms: lag,
        };
        let t = member_table(&[m("node1", 0), m("node10", 1500)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "ID      ROLE      STATE  HEALTHY  VERSION  COMMIT  APPLIED  LAG_MS"
        );
        assert_eq!(
            lines[2],
            "node10  follower  up     yes      0.10.4   1200    1200     1500"
        );
    }

    #[test]
    fn plain_values_become_json() {
        let mut map = rhai::Map::new();
        map.insert("node1".into(), Dynamic::from("0.10.4".to_string()));
        map.insert("n".into(), Dynamic::from(3_i64));
        map.insert("nan".into(), Dynamic::from(f64::NAN));
        let v = to_json(&Dynamic::from_map(map));
        assert_eq!(
            v,
            serde_json::json!({"node1": "0.10.4", "n": 3, "nan": null})
        );
        assert_eq!(to_json(&Dynamic::UNIT), Value::Null);
        assert_eq!(to_text(&Dynamic::UNIT), None);
        assert_eq!(
            to_text(&Dynamic::from("hi".to_string())).as_deref(),
            Some("hi")
        );
    }
}
