//! Result column names as users wrote them. DataFusion names an unaliased
//! `user.username` `audit.user[username]` and `sourceIPs[1]`
//! `audit.sourceIPs[Int64(1)]`; a CSV header or a table should say
//! `user.username` and `sourceIPs[1]`, as the JSON and Logs Insights do.
//! Only names that are exactly a path into an audit column are changed.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use regex::Regex;

use crate::schema::audit_schema;

static PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^audit\.([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]*\])+)$").expect("valid regex")
});
static SEGMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\[\]]*)\]").expect("valid regex"));
static INDEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Int64\((-?\d+)\)$").expect("valid regex"));

/// The name to show for a result column, when it differs from DataFusion's.
pub fn display_name(name: &str) -> Option<String> {
    let caps = PATH.captures(name)?;
    let column = caps.get(1)?.as_str();
    let schema = audit_schema();
    let mut ty = schema.field_with_name(column).ok()?.data_type().clone();
    let mut out = column.to_string();
    for seg in SEGMENT.captures_iter(caps.get(2)?.as_str()) {
        let key = seg.get(1)?.as_str();
        ty = match ty {
            DataType::Struct(fields) => {
                let f = fields.iter().find(|f| f.name() == key)?;
                out.push('.');
                out.push_str(key);
                f.data_type().clone()
            }
            DataType::List(item) => {
                let i = INDEX.captures(key)?.get(1)?.as_str();
                out.push_str(&format!("[{i}]"));
                item.data_type().clone()
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return None;
                };
                out.push_str(&format!("['{key}']"));
                kv.get(1)?.data_type().clone()
            }
            _ => return None,
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn paths_read_as_typed() {
        let cases = [
            ("audit.user[username]", "user.username"),
            ("audit.sourceIPs[Int64(1)]", "sourceIPs[1]"),
            (
                "audit.annotations[authorization.k8s.io/decision]",
                "annotations['authorization.k8s.io/decision']",
            ),
            ("audit.user[extra][arn][Int64(1)]", "user.extra['arn'][1]"),
            ("audit.objectRef[name]", "objectRef.name"),
        ];
        for (df, want) in cases {
            assert_eq!(display_name(df).as_deref(), Some(want), "{df}");
        }
        assert_eq!(display_name("audit.responseStatus[code] + Int64(1)"), None);
        assert_eq!(display_name("count(*)"), None);
        assert_eq!(display_name("audit.user[nosuchfield]"), None);
    }
}
