//! Checking Spin variables up front: each service lists what is wrong with
//! its settings as sentences an operator can act on, and `/health` reports
//! them (not ready) instead of requests failing, or silently falling back
//! to a default, later. `get` reads a variable (empty when unset).

/// A duration written as a number and a unit (`30d`, `12h`, `90m`, `45s`),
/// in seconds; `None` for anything else (a bare number, zero, a fraction).
pub fn duration_secs(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let (num, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// The settings' problems, collected.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// A whole number in `range` (`unit` names it), if set.
    pub fn whole_number(&mut self, get: &dyn Fn(&str) -> String, name: &str, range: std::ops::RangeInclusive<i64>, unit: &str) {
        let raw = get(name);
        if !raw.is_empty() && !raw.parse::<i64>().is_ok_and(|v| range.contains(&v)) {
            self.0.push(format!("{name} is {raw:?}; it must be a whole number of {unit} from {} to {}", range.start(), range.end()));
        }
    }

    /// One of `allowed`, if set.
    pub fn one_of(&mut self, get: &dyn Fn(&str) -> String, name: &str, allowed: &[&str]) {
        let raw = get(name);
        if !raw.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&raw)) {
            self.0.push(format!("{name} is {raw:?}; it must be one of {}", allowed.join(", ")));
        }
    }

    /// An `http://` or `https://` URL, if set.
    pub fn http_url(&mut self, get: &dyn Fn(&str) -> String, name: &str) {
        let raw = get(name);
        if !raw.is_empty() && !(raw.starts_with("http://") || raw.starts_with("https://")) {
            // Not quoted: an address may carry credentials, and the health
            // answer that reports this is public.
            self.0.push(format!("{name} has no http:// or https:// scheme; it must be an http:// or https:// URL"));
        }
    }

    /// A duration such as `30d` (see [`duration_secs`]), if set.
    pub fn duration(&mut self, get: &dyn Fn(&str) -> String, name: &str) {
        let raw = get(name);
        if !raw.is_empty() && duration_secs(&raw).is_none() {
            self.0.push(format!("{name} is {raw:?}; it must be a number with s, m, h or d (e.g. 30d)"));
        }
    }

    /// A problem of its own.
    pub fn add(&mut self, problem: String) {
        self.0.push(problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("30d"), Some(2_592_000));
        assert_eq!(duration_secs(" 8s "), Some(8));
        assert_eq!(duration_secs("90m"), Some(5400));
        for bad in ["", "d", "10", "0s", "-5s", "1.5h", "10y"] {
            assert_eq!(duration_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn each_kind_of_setting_is_checked_only_when_set() {
        let vars = [("n", "0"), ("ok", "5"), ("mode", "Fast"), ("url", "ftp://x"), ("good_url", "https://x")];
        let get = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).unwrap_or_default();
        let mut p = Problems::default();
        p.whole_number(&get, "n", 1..=10, "seconds");
        p.whole_number(&get, "ok", 1..=10, "seconds");
        p.whole_number(&get, "unset", 1..=10, "seconds");
        p.one_of(&get, "mode", &["full", "normal"]);
        p.http_url(&get, "url");
        p.http_url(&get, "good_url");
        assert_eq!(p.0.len(), 3, "{:?}", p.0);
        assert!(p.0[0].starts_with("n is \"0\"") && p.0[1].contains("full, normal") && p.0[2].starts_with("url"));
    }
}
