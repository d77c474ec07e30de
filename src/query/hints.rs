//! Short, specific messages for the SQL mistakes people make with the
//! audit schema: a misspelt column or struct field gets the closest schema
//! path (`usr.username` → `user.username`), a wrongly cased one the
//! spelling to write, in place of DataFusion's list of every column.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use regex::Regex;

use crate::schema::audit_schema;
use crate::suggest::closest;

static NO_STRUCT_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Field (\S+) not found in struct").expect("valid regex"));

/// The audit schema's struct columns, each with its fields' names.
fn structs() -> Vec<(String, Vec<String>)> {
    audit_schema()
        .fields()
        .iter()
        .filter_map(|f| match f.data_type() {
            DataType::Struct(children) => Some((
                f.name().clone(),
                children.iter().map(|c| c.name().clone()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Every column and struct field of the audit schema as written in SQL
/// (`verb`, `user.username`, `objectRef.namespace`).
fn schema_paths() -> Vec<String> {
    let mut out = Vec::new();
    for f in audit_schema().fields() {
        out.push(f.name().clone());
        if let DataType::Struct(children) = f.data_type() {
            out.extend(
                children
                    .iter()
                    .map(|c| format!("{}.{}", f.name(), c.name())),
            );
        }
    }
    out
}

/// A clearer message for `e`, when it is one of the mistakes above.
pub fn friendly(e: &DataFusionError) -> Option<String> {
    match e.find_root() {
        DataFusionError::SchemaError(se, _) => match se.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => Some(no_column(&field.flat_name(), valid_fields)),
            _ => None,
        },
        other => {
            let text = other.to_string();
            let name = NO_STRUCT_FIELD.captures(&text)?.get(1)?.as_str();
            // A field the schema has (read from a file whose struct lacks
            // it, say) is not a typo: DataFusion's message stands.
            let known = structs()
                .iter()
                .any(|(_, fields)| fields.iter().any(|f| f == name));
            (!known).then(|| no_struct_field(name))
        }
    }
}

fn no_column(written: &str, valid: &[datafusion::common::Column]) -> String {
    let schema = audit_schema();
    let over_audit = valid
        .iter()
        .all(|c| schema.field_with_name(c.name()).is_ok());
    let paths: Vec<String> = if over_audit {
        schema_paths()
    } else {
        valid.iter().map(|c| c.name().to_string()).collect()
    };
    if let Some(p) = paths.iter().find(|p| p.eq_ignore_ascii_case(written)) {
        return format!("no column {written}: names are case-sensitive, write {p}");
    }
    if let Some(p) = closest(written, paths.iter().map(String::as_str)) {
        return format!("no column {written}; did you mean {p}?");
    }
    let top: Vec<&str> = if over_audit {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    } else {
        paths.iter().map(String::as_str).collect()
    };
    format!("no column {written} (the columns: {})", top.join(", "))
}

fn no_struct_field(name: &str) -> String {
    let structs = structs();
    // (struct, field) for every field of every struct.
    let pairs = || {
        structs
            .iter()
            .flat_map(|(s, fields)| fields.iter().map(move |f| (s, f)))
    };
    if let Some((s, f)) = pairs().find(|(_, f)| f.eq_ignore_ascii_case(name)) {
        return format!("{s} has no field {name}: names are case-sensitive, write {s}.{f}");
    }
    let best = closest(name, pairs().map(|(_, f)| f.as_str()));
    match pairs().find(|(_, f)| Some(f.as_str()) == best) {
        Some((s, f)) => {
            let fields = structs
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, f)| f.join(", "));
            format!(
                "no struct field {name}; did you mean {s}.{f}? ({s} has {})",
                fields.unwrap_or_default()
            )
        }
        None => {
            let list: Vec<String> = structs
                .iter()
                .map(|(s, fields)| format!("{s}: {}", fields.join(", ")))
                .collect();
            format!("no struct field {name} (the structs: {})", list.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_into_structs() {
        let paths = schema_paths();
        for p in [
            "verb",
            "user.username",
            "objectRef.namespace",
            "responseStatus.code",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p}");
        }
    }

    #[test]
    fn struct_fields_suggested() {
        assert_eq!(
            no_struct_field("usrname"),
            "no struct field usrname; did you mean user.username? (user has username, uid, groups, extra)"
        );
        assert!(no_struct_field("Namespace").contains("write objectRef.namespace"));
    }

    #[test]
    fn a_field_the_schema_has_is_not_called_a_typo() {
        let err = |f: &str| DataFusionError::Execution(format!("Field {f} not found in struct"));
        assert_eq!(friendly(&err("extra")), None);
        assert!(friendly(&err("usrname")).is_some_and(|m| m.contains("user.username")));
    }
}
