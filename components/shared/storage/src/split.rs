//! Splitting a migration file into single statements.
//!
//! Spin's SQLite `execute` runs exactly one statement per call, so a migration
//! file is split here. The splitter understands quotes, `--` and `/* */`
//! comments, and `CREATE TRIGGER ... BEGIN ...; ...; END;` bodies (whose inner
//! semicolons do not end the statement). Limitation, documented for migration
//! authors: inside a trigger body, do not end an inner statement with a
//! `CASE ... END` expression immediately followed by `;`.

/// Split SQL text into trimmed statements without their trailing `;`.
/// Comment-only fragments are dropped.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    // Words seen so far in this statement (outside strings and comments), upper-cased.
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut has_code = false;

    let flush_word = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(word.to_ascii_uppercase());
            word.clear();
        }
    };

    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                flush_word(&mut word, &mut words);
                has_code = true;
                current.push(c);
                // Copy the quoted text; a doubled quote is an escaped quote.
                while let Some(q) = chars.next() {
                    current.push(q);
                    if q == c {
                        if chars.peek() == Some(&c) {
                            current.push(chars.next().unwrap_or(c));
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                flush_word(&mut word, &mut words);
                // Line comment: skip to end of line, keep the newline.
                for n in chars.by_ref() {
                    if n == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                flush_word(&mut word, &mut words);
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                current.push(' ');
            }
            ';' => {
                flush_word(&mut word, &mut words);
                if in_trigger_body(&words) && words.last().map(String::as_str) != Some("END") {
                    current.push(';');
                    continue;
                }
                let stmt = current.trim();
                if has_code && !stmt.is_empty() {
                    out.push(stmt.to_string());
                }
                current.clear();
                words.clear();
                has_code = false;
            }
            c if c.is_alphanumeric() || c == '_' => {
                has_code = true;
                word.push(c);
                current.push(c);
            }
            c => {
                flush_word(&mut word, &mut words);
                if !c.is_whitespace() {
                    has_code = true;
                }
                current.push(c);
            }
        }
    }
    flush_word(&mut word, &mut words);
    let stmt = current.trim();
    if has_code && !stmt.is_empty() {
        out.push(stmt.to_string());
    }
    out
}

/// True while inside the `BEGIN ... END` body of a `CREATE TRIGGER`.
fn in_trigger_body(words: &[String]) -> bool {
    let is_trigger = match words {
        [c, t, ..] if c == "CREATE" && t == "TRIGGER" => true,
        [c, tmp, t, ..] if c == "CREATE" && (tmp == "TEMP" || tmp == "TEMPORARY") && t == "TRIGGER" => true,
        _ => false,
    };
    is_trigger && words.iter().any(|w| w == "BEGIN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_statements_and_drops_comments() {
        let s = statements("-- header\nCREATE TABLE a (x TEXT); /* note; */ INSERT INTO a VALUES ('x;y''z');\n-- trailing\n");
        assert_eq!(s, vec!["CREATE TABLE a (x TEXT)", "INSERT INTO a VALUES ('x;y''z')"]);
    }

    #[test]
    fn keeps_trigger_bodies_whole() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (new.x);\n  DELETE FROM c;\nEND;\nSELECT 1;";
        let s = statements(sql);
        assert_eq!(s.len(), 2);
        assert!(s[0].starts_with("CREATE TRIGGER") && s[0].ends_with("END"));
        assert_eq!(s[1], "SELECT 1");
    }

    #[test]
    fn last_statement_needs_no_semicolon() {
        assert_eq!(statements("SELECT 1"), vec!["SELECT 1"]);
        assert!(statements("  -- nothing\n").is_empty());
    }

    #[test]
    fn comment_markers_inside_strings_are_text() {
        assert_eq!(statements("SELECT '--not a comment'; SELECT 2"), vec!["SELECT '--not a comment'", "SELECT 2"]);
    }
}
