//! "Did you mean": the closest of the valid names to a misspelt one, for
//! errors that name what was not found and list what would have been.

use datafusion::common::utils::datafusion_strsim::levenshtein;

/// The candidate closest to `name` (case-insensitively), if close enough to
/// be a likely typo: at most a third of its letters differ (at least 2).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean "x"? valid: a, b, c` for an error about `name` (the
/// list shortened past a dozen), or `; there are none` for no candidates.
pub fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let all: Vec<&str> = candidates.clone().into_iter().collect();
    if all.is_empty() {
        return "; there are none".to_string();
    }
    let mut out = String::new();
    if let Some(c) = closest(name, candidates) {
        out.push_str(&format!("; did you mean {c:?}?"));
    }
    const SHOWN: usize = 12;
    out.push_str("; valid: ");
    out.push_str(&all[..all.len().min(SHOWN)].join(", "));
    if all.len() > SHOWN {
        out.push_str(&format!(", ... ({} more)", all.len() - SHOWN));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{closest, hint};

    #[test]
    fn typos_find_their_name() {
        let names = ["user", "namespace", "trusted_cidrs"];
        assert_eq!(closest("usr", names), Some("user"));
        assert_eq!(closest("Namespce", names), Some("namespace"));
        assert_eq!(closest("trusted_cidr", names), Some("trusted_cidrs"));
        assert_eq!(closest("verb", names), None);
        assert_eq!(
            hint("usr", ["user", "ns"]),
            "; did you mean \"user\"?; valid: user, ns"
        );
        assert_eq!(hint("x", []), "; there are none");
    }
}
