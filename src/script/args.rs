//! Script arguments as the API takes them: numbers as int or float, seconds within sane bounds.

use std::time::Duration;

use rhai::Dynamic;

use super::stop::fail;
use crate::model::RhaiResult;

/// An int or a float as a float: a script writes `100` or `100.0` and means the same.
pub fn number(v: &Dynamic, what: &str) -> RhaiResult<f64> {
    if let Ok(i) = v.as_int() {
        Ok(i as f64)
    } else if let Ok(f) = v.as_float() {
        Ok(f)
    } else {
        Err(fail(format!(
            "{what} must be a number, not {}",
            v.type_name()
        )))
    }
}

pub fn secs(v: &Dynamic, what: &str) -> RhaiResult<Duration> {
    let s = number(v, &format!("{what} (seconds)"))?;
    if s.is_finite() && (0.0..=31_536_000.0).contains(&s) {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(fail(format!(
            "{what} must be a number of seconds between 0 and a year, not {s}"
        )))
    }
}
