//! Kubernetes-valid names and label values for generated objects, even
//! for ARN usernames: DNS-1123 labels of at most 63 characters, with a
//! hash of the full username when the name had to change, so two
//! usernames never share an object.

use md5::{Digest, Md5};

const MAX: usize = 63;

/// `PREFIX-USERNAME` as a DNS-1123 label (lowercase letters, digits and
/// `-`, at most 63 characters, starting and ending with a letter or digit).
pub fn object_name(prefix: &str, username: &str) -> String {
    let wanted = format!("{prefix}-{username}");
    let clean = clean(&wanted);
    if clean == wanted && clean.len() <= MAX {
        return clean;
    }
    let hash = hex6(username);
    let room = MAX - hash.len() - 1;
    let head = clean[..clean.len().min(room)].trim_end_matches('-');
    format!("{head}-{hash}")
}

/// A label value for `username`: the same rules as [`object_name`].
pub fn label_value(username: &str) -> String {
    let clean = clean(username);
    if clean == username && !clean.is_empty() && clean.len() <= MAX {
        return clean;
    }
    let hash = hex6(username);
    let room = MAX - hash.len() - 1;
    let head = clean[..clean.len().min(room)].trim_end_matches('-');
    if head.is_empty() {
        hash
    } else {
        format!("{head}-{hash}")
    }
}

/// Lowercase, every run of other characters as one `-`, no `-` at the ends.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn hex6(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    digest[..3].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn names_are_valid_and_distinct() {
        assert_eq!(object_name("eksaudit", "user1"), "eksaudit-user1");
        let arn = "arn:aws:sts::111122223333:assumed-role/sso_admin/jane-example.com";
        let long = object_name("eksaudit", arn);
        assert!(valid(&long), "{long}");
        assert!(long.starts_with("eksaudit-arn-aws-sts-111122223333-assumed-role"));
        assert_ne!(
            object_name("eksaudit", "Jane"),
            object_name("eksaudit", "jane")
        );
        let sa = object_name("eksaudit", "system:serviceaccount:default:app");
        assert!(valid(&sa), "{sa}");
        for u in ["user1", arn, "x".repeat(300).as_str(), "@@@", "Ünïcode"] {
            assert!(valid(&label_value(u)), "{u}: {}", label_value(u));
            assert!(valid(&object_name("eksaudit", u)), "{u}");
        }
    }
}
