//! Filters the `audit` table is handed (as `Inexact`: DataFusion still
//! applies them) turned into the decoder's literal pre-filter: equality,
//! `IN`, `LIKE` without wildcards inside, `array_has`, and their `AND`s
//! and `OR`s, over fields read straight from the event's JSON strings, and
//! integer equality on a named field (`responseStatus.code = 403`).
//! Anything else gives no condition, so the pre-filter only ever skips
//! lines that cannot match.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Like, Operator, expr::InList};

use crate::decode::prefilter::{Needle, Prefilter};
use crate::schema::{audit_schema, col as c};

/// Columns whose values are the event's own JSON strings and numbers, as
/// the decoder reads them (not `raw` or the JSON-text objects, not the
/// CloudWatch and file columns).
const JSON_COLUMNS: [&str; 14] = [
    c::KIND,
    c::API_VERSION,
    c::LEVEL,
    c::AUDIT_ID,
    c::STAGE,
    c::REQUEST_URI,
    c::VERB,
    c::USER,
    c::IMPERSONATED_USER,
    c::SOURCE_IPS,
    c::USER_AGENT,
    c::OBJECT_REF,
    c::RESPONSE_STATUS,
    c::ANNOTATIONS,
];

/// The pre-filter `filters` (all of which must hold) allow, if any.
pub fn prefilter(filters: &[Expr]) -> Option<Prefilter> {
    let schema = DFSchema::try_from_qualified_schema(super::TABLE, &audit_schema()).ok()?;
    let clauses: Vec<Vec<Needle>> = filters.iter().flat_map(|f| clauses(f, &schema)).collect();
    let p = Prefilter::new(clauses);
    (!p.is_empty()).then_some(p)
}

/// Conditions `e` implies: each clause is a list of alternatives.
fn clauses(e: &Expr, schema: &DFSchema) -> Vec<Vec<Needle>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = clauses(left, schema);
            all.extend(clauses(right, schema));
            all
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            // Either side's first condition is necessary for that side.
            match (
                clauses(left, schema).into_iter().next(),
                clauses(right, schema).into_iter().next(),
            ) {
                (Some(mut l), Some(r)) => {
                    l.extend(r);
                    vec![l]
                }
                _ => Vec::new(),
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => equality(left, right, schema)
            .or_else(|| equality(right, left, schema))
            .map(|n| vec![vec![n]])
            .unwrap_or_default(),
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => list
            .iter()
            .map(|v| equality(expr, v, schema))
            .collect::<Option<Vec<_>>>()
            .map(|alternatives| vec![alternatives])
            .unwrap_or_default(),
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char,
            case_insensitive: false,
        }) => match (string_field(expr, schema), string(pattern)) {
            (true, Some(p)) if escape_char.is_none_or(|c| !p.contains(c)) => {
                like(p).map(|n| vec![vec![n]]).unwrap_or_default()
            }
            _ => Vec::new(),
        },
        Expr::ScalarFunction(f) if f.name() == "array_has" && f.args.len() == 2 => {
            match (string_list(&f.args[0], schema), string(&f.args[1])) {
                (true, Some(v)) => vec![vec![Needle::Equals(v.to_string())]],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// `field = value` as a needle: a string field and a string, or an integer
/// field under a known key and an integer.
fn equality(field: &Expr, value: &Expr, schema: &DFSchema) -> Option<Needle> {
    if string_field(field, schema) {
        return string(value).map(|s| Needle::Equals(s.to_string()));
    }
    let value = integer(value)?;
    let inner = match field {
        // Integer widening keeps the value.
        Expr::Cast(c) if is_integer(c.field.data_type()) => c.expr.as_ref(),
        Expr::TryCast(c) if is_integer(c.field.data_type()) => c.expr.as_ref(),
        other => other,
    };
    let key = json_path(inner)?;
    let t = inner.get_type(schema).ok()?;
    is_integer(&t).then(|| Needle::Number {
        key: key.to_string(),
        value,
    })
}

/// A `LIKE` pattern as a needle: `abc`, `abc%`, `%abc`, `%abc%`.
fn like(p: &str) -> Option<Needle> {
    let (starts, body) = match p.strip_prefix('%') {
        Some(rest) => (false, rest),
        None => (true, p),
    };
    let (ends, body) = match body.strip_suffix('%') {
        Some(rest) => (false, rest),
        None => (true, body),
    };
    if body.contains(['%', '_']) {
        return None;
    }
    let body = body.to_string();
    Some(match (starts, ends) {
        (true, true) => Needle::Equals(body),
        (true, false) => Needle::Prefix(body),
        (false, true) => Needle::Suffix(body),
        (false, false) => Needle::Contains(body),
    })
}

/// The JSON key a field expression reads last (`code` for
/// `responseStatus.code`, `verb` for `verb`), if it reads the event's JSON
/// straight: columns, struct fields, list elements, map values.
fn json_path(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(col) if JSON_COLUMNS.contains(&col.name.as_str()) => Some(&col.name),
        // `get_field(user, 'extra', 'arn')` walks a path of fields;
        // eksaudit's `get_field(user, 'extra', 'arn')[1]` in one call ends
        // with the index, and its `sourceIPs[1]` has no field at all.
        Expr::ScalarFunction(f) if super::map_item::walks_fields(f.name()) && f.args.len() >= 2 => {
            let base = json_path(&f.args[0])?;
            let end = f.args.len() - usize::from(f.name() != "get_field");
            let names = f.args[1..end].iter().map(string);
            Some(names.collect::<Option<Vec<_>>>()?.pop().unwrap_or(base))
        }
        Expr::ScalarFunction(f) if f.name() == "array_element" && f.args.len() == 2 => {
            json_path(&f.args[0])
        }
        _ => None,
    }
}

/// A string read straight from the event's JSON (through casts between
/// string types, which keep the text).
fn string_field(e: &Expr, schema: &DFSchema) -> bool {
    let is_string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match e {
        Expr::Cast(c) if is_string(c.field.data_type()) => string_field(&c.expr, schema),
        Expr::TryCast(c) if is_string(c.field.data_type()) => string_field(&c.expr, schema),
        _ => json_path(e).is_some() && e.get_type(schema).is_ok_and(|t| is_string(&t)),
    }
}

fn string_list(e: &Expr, schema: &DFSchema) -> bool {
    json_path(e).is_some()
        && matches!(
            e.get_type(schema),
            Ok(DataType::List(f) | DataType::LargeList(f))
                if matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        )
}

fn string(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

fn integer(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else {
        return None;
    };
    match v {
        ScalarValue::Int8(Some(n)) => Some(i64::from(*n)),
        ScalarValue::Int16(Some(n)) => Some(i64::from(*n)),
        ScalarValue::Int32(Some(n)) => Some(i64::from(*n)),
        ScalarValue::Int64(Some(n)) => Some(*n),
        ScalarValue::UInt8(Some(n)) => Some(i64::from(*n)),
        ScalarValue::UInt16(Some(n)) => Some(i64::from(*n)),
        ScalarValue::UInt32(Some(n)) => Some(i64::from(*n)),
        ScalarValue::UInt64(Some(n)) => i64::try_from(*n).ok(),
        _ => None,
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

#[cfg(test)]
mod tests {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;

    use super::*;

    /// The needles the audit table's scan gets for `sql`'s filters, as
    /// DataFusion plans them.
    fn needles(sql: &str) -> Vec<Vec<Needle>> {
        let plan = super::super::optimized_plan(sql);
        let mut filters = Vec::new();
        plan.apply(|p| {
            if let LogicalPlan::TableScan(scan) = p {
                filters.extend(scan.filters.iter().cloned());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walking the plan");
        let schema = DFSchema::try_from_qualified_schema(super::super::TABLE, &audit_schema())
            .expect("the audit schema qualified");
        filters.iter().flat_map(|f| clauses(f, &schema)).collect()
    }

    fn eq(s: &str) -> Needle {
        Needle::Equals(s.into())
    }

    #[test]
    fn filters_that_give_needles() {
        let q = |w: &str| needles(&format!("select count(*) from audit where {w}"));
        assert_eq!(
            q("user.username = 'user1' and responseStatus.code = 403"),
            vec![
                vec![eq("user1")],
                vec![Needle::Number {
                    key: "code".into(),
                    value: 403
                }]
            ]
        );
        assert_eq!(
            q("verb in ('get', 'list') or userAgent like 'kubectl%'"),
            vec![vec![
                eq("get"),
                eq("list"),
                Needle::Prefix("kubectl".into())
            ]]
        );
        assert_eq!(
            q(
                "sourceIPs[1] = '1.2.3.4' and annotations['authorization.k8s.io/decision'] = 'forbid'"
            ),
            vec![vec![eq("1.2.3.4")], vec![eq("forbid")]]
        );
        assert_eq!(
            q("array_has(user.groups, 'system:masters') and objectRef.resource like '%ets'"),
            vec![
                vec![eq("system:masters")],
                vec![Needle::Suffix("ets".into())]
            ]
        );
        assert_eq!(q("user.extra['arn'][1] = 'x'"), vec![vec![eq("x")]]);
        // DataFusion reads the quoted number as the column's integer type.
        assert_eq!(
            q("responseStatus.code = '403'"),
            vec![vec![Needle::Number {
                key: "code".into(),
                value: 403
            }]]
        );
    }

    #[test]
    fn filters_that_give_none() {
        let q = |w: &str| needles(&format!("select count(*) from audit where {w}"));
        for w in [
            "lower(user.username) = 'user1'",
            "user.username <> 'user1'",
            "verb not in ('get')",
            "user.username like 'us_r1'",
            "user.username ilike 'USER1'",
            "cluster = 'prod'",
            "raw like '%user1%'",
            "verb = 'get' or lower(verb) = 'list'",
            "requestObject = '{}'",
        ] {
            assert_eq!(q(w), Vec::<Vec<Needle>>::new(), "{w}");
        }
    }
}
