//! The password policy for new passwords.

/// A password that satisfies the policy: 10 to 256 characters, not one of
/// the most common passwords (compared case-insensitively), and not the
/// account's own email address. Existing passwords are never re-checked
/// against the policy; only new ones (registration, change) are parsed here.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 256;

/// Widely leaked passwords long enough to pass the length rule. A short list
/// on purpose: it stops the guesses attackers try first without shipping a
/// breach corpus in every instance.
const COMMON: &[&str] = &[
    "1234567890", "12345678910", "123456789a", "0123456789", "0987654321", "1111111111",
    "1234512345", "1q2w3e4r5t", "1qaz2wsx3edc", "password12", "password123",
    "password1234", "passw0rd123", "p@ssw0rd123", "qwertyuiop", "qwerty12345", "qwerty123456",
    "asdfghjkl1", "zxcvbnm123", "iloveyou12", "iloveyou123", "letmein123", "welcome123",
    "welcome1234", "admin12345", "administrator", "changeme123", "football123", "baseball123",
    "princess123", "sunshine123", "superman123", "starwars123", "monkey12345", "dragon12345",
    "trustno1234", "abc1234567", "abcdefghij", "aaaaaaaaaa", "qazwsxedcrfv", "1q2w3e4r5t6y",
    "zaq12wsxcde3", "computer123", "internet123", "whatever123", "michael123", "jennifer123",
    "charlie123", "shadow12345", "master12345", "myspace123", "mustang123", "samsung123",
    "google12345", "facebook123", "passwordpassword", "1234567890a", "a1234567890", "qwertyuiop123",
];

impl NewPassword {
    pub fn parse(raw: &str, email: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters"));
        }
        if chars > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters"));
        }
        let lower = raw.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err("is one of the most common passwords; choose another".into());
        }
        if lower.trim() == email.trim().to_lowercase() {
            return Err("must not be your email address".into());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits_count_characters() {
        assert!(NewPassword::parse("short9char", "a@b.co").is_ok());
        assert!(NewPassword::parse("ninechars", "a@b.co").is_err());
        assert!(NewPassword::parse(&"é".repeat(10), "a@b.co").is_ok());
        assert!(NewPassword::parse(&"x".repeat(256), "a@b.co").is_ok());
        assert!(NewPassword::parse(&"x".repeat(257), "a@b.co").is_err());
    }

    #[test]
    fn common_passwords_are_rejected_in_any_case() {
        for p in ["password123", "PASSWORD123", "1234567890", "QwertyUiop"] {
            let e = NewPassword::parse(p, "a@b.co").unwrap_err();
            assert!(e.contains("common"), "{p}: {e}");
        }
    }

    #[test]
    fn the_email_is_not_a_password() {
        assert!(NewPassword::parse("Ann@Example.com", "ann@example.com").is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = NewPassword::parse("correct horse battery", "a@b.co").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn every_listed_password_passes_the_length_rule() {
        // A listed password shorter than the minimum would be dead weight.
        for p in COMMON {
            assert!(p.chars().count() >= MIN_CHARS, "{p}");
        }
    }
}
