//! Text as the page spells it: HTML escaping, durations and dates.

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds as the page shows them: `12.3 s`, `4 min 05 s`.
pub fn secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        if whole < 3600 {
            format!("{} min {:02} s", whole / 60, whole % 60)
        } else {
            format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
        }
    }
}

/// Unix seconds as a UTC date and time (`2026-11-25 15:27:37 UTC`): the journal's date, spelled for a page.
pub fn utc(unix: f64) -> String {
    let iso = crate::journal::rfc3339(unix);
    format!("{} UTC", iso.trim_end_matches('Z').replacen('T', " ", 1))
}
