//! Events CloudWatch cut short. CloudWatch Logs truncates a message over
//! 256 KB and appends `[Truncated...]`; the text left is an unfinished JSON
//! object. Dropping it would hide exactly the large writes (big ConfigMaps,
//! CRDs, Secrets) an auditor may care about, so the decoder keeps the
//! top-level members that arrived whole and flags the row `truncated`.
//!
//! Audit events put the small identifying fields (`auditID`, `verb`,
//! `user`, `objectRef`, ...) before `requestObject`/`responseObject`, which
//! are what make an event large; so the cut nearly always falls after them.

/// What CloudWatch appends to a message it truncated.
pub const MARKER: &str = "[Truncated...]";

/// The text without the marker, if `text` is a truncated message.
pub fn strip_marker(text: &str) -> Option<&str> {
    text.trim_end().strip_suffix(MARKER)
}

/// The members of the unfinished object `body` that arrived whole, closed
/// into a valid object (`None` when the cut fell inside the first member).
///
/// A member is whole when a comma follows it at depth 1 outside strings;
/// the text up to the last such comma, plus `}`, is an object. Whether
/// those members are valid JSON is left to the parser that reads the result.
pub fn salvage(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    if bytes[start] != b'{' {
        return None;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut last_member_end = None;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            // A closing bracket at depth 1 would end the object: then it
            // was not cut, and the parser's error stands.
            b'}' | b']' if depth <= 1 => return None,
            b'}' | b']' => depth -= 1,
            b',' if depth == 1 => last_member_end = Some(i),
            _ => {}
        }
    }
    let end = last_member_end?;
    let mut closed = String::with_capacity(end + 1);
    closed.push_str(&body[..end]);
    closed.push('}');
    Some(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_whole_members_before_the_cut() {
        let text = r#"{"kind":"Event","verb":"update","requestObject":{"data":{"a":"x,}"#;
        let t = format!("{text}{MARKER}\n");
        let body = strip_marker(&t).expect("marker found");
        assert_eq!(
            salvage(body).as_deref(),
            Some(r#"{"kind":"Event","verb":"update"}"#)
        );
    }

    #[test]
    fn commas_inside_strings_and_nested_values_are_not_member_ends() {
        let body = r#"{"a":"x\",y","b":[1,2],"c":{"d":1,"e":"#;
        assert_eq!(salvage(body).as_deref(), Some(r#"{"a":"x\",y","b":[1,2]}"#));
    }

    fn json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z,{}\\[\\]\"\\\\:é]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z,\"]{1,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Cut anywhere, an object salvages to a valid object whose members
        /// are the first members of the original, whole and unchanged.
        #[test]
        fn salvage_keeps_whole_leading_members(
            members in proptest::collection::btree_map("[a-z,:\"{}]{1,5}", json(), 1..6),
            cut in 0.0f64..1.0,
        ) {
            let object = serde_json::Value::Object(members.into_iter().collect());
            let text = object.to_string();
            let mut at = ((text.len() - 1) as f64 * cut) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if let Some(kept) = salvage(&text[..at]) {
                let kept: serde_json::Value = serde_json::from_str(&kept).expect("salvage gives JSON");
                let (kept, all) = (kept.as_object().expect("an object"), object.as_object().expect("an object"));
                proptest::prop_assert!(kept.len() < all.len());
                for ((k1, v1), (k2, v2)) in kept.iter().zip(all.iter()) {
                    proptest::prop_assert_eq!((k1, v1), (k2, v2));
                }
            }
        }
    }

    #[test]
    fn nothing_to_keep() {
        assert_eq!(salvage(r#"{"kind":"Ev"#), None);
        assert_eq!(salvage("[1,2"), None);
        assert_eq!(salvage(r#"{"a":1,"b":2}"#), None, "not cut");
        assert_eq!(strip_marker(r#"{"a":1}"#), None);
    }
}
