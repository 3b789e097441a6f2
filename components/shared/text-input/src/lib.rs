//! Short free-text input, cleaned by one rule everywhere: surrounding
//! whitespace trimmed, not empty, at most `max_chars` characters (not bytes,
//! so every script gets the same room), and no control characters, which
//! have no place in a name or a search and break logs and emails.

/// Clean `raw` or say what is wrong with it.
pub fn bounded(raw: &str, max_chars: usize) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(t.to_string())
}

/// A SQL `LIKE` pattern that matches `text` anywhere, literally: `%`, `_`
/// and the escape character are escaped (use with `ESCAPE '\'`). The
/// pattern is always bound as a parameter; escaping only stops user text
/// acting as a wildcard.
pub fn like_contains(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Field problems of one request, collected so a client sees all of them
/// at once (`{"email": "must contain @", "password": "..."}`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldProblems(serde_json::Map<String, serde_json::Value>);

impl FieldProblems {
    /// Keep the value, or record why `field` is wrong.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(problem) => {
                self.0.insert(field.to_string(), serde_json::Value::String(problem));
                None
            }
        }
    }

    /// Record a problem directly.
    pub fn add(&mut self, field: &str, problem: &str) {
        self.0.insert(field.to_string(), serde_json::Value::String(problem.to_string()));
    }

    /// `Ok` when nothing was recorded, else every problem by field.
    pub fn finish(self) -> Result<(), serde_json::Map<String, serde_json::Value>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(bounded("  Zoë ", 10).unwrap(), "Zoë");
        assert_eq!(bounded(&"é".repeat(10), 10).unwrap().chars().count(), 10);
        assert!(bounded(&"é".repeat(11), 10).is_err());
        assert!(bounded(" \t ", 10).is_err());
        assert!(bounded("a\u{0}b", 10).is_err());
        assert!(bounded("a\nb", 10).is_err());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
