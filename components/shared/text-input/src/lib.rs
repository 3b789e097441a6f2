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
}
