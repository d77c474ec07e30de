//! `regexp_replace` that runs the regex once per distinct value of a batch.
//!
//! The identity map turns each event's authorization reason (`RBAC:
//! allowed by ClusterRoleBinding "x" of ClusterRole "y" to ...`) into the
//! grant it names with `regexp_replace`, three times per event; a batch of
//! 8,192 events holds a few dozen distinct reasons, and the regexes were a
//! fifth of the query's time. This function is DataFusion's (the same
//! signature and types): over a text column with a constant pattern,
//! replacement and flags, it hands DataFusion's the batch's distinct
//! values once each and spreads the answers back over the rows (`take`).
//! A batch whose values are mostly distinct (URIs, IDs) goes to DataFusion's
//! as it is, as does every other call.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{HashMap, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
};

/// Rows looked at before deciding a batch is worth deduplicating, and the
/// share of them that must repeat an earlier value.
const SAMPLE: usize = 1024;
const MOST_DISTINCT: usize = SAMPLE / 2;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpReplace {
    inner: Arc<ScalarUDF>,
}

impl RegexpReplace {
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions::regex::regexp_replace(),
        }
    }
}

/// The distinct values of `values` (NULL once, if any) and, for each row,
/// the index of its value among them; None when more than half of the
/// first `SAMPLE` rows are distinct.
fn distinct(values: &StringArray) -> Option<(StringArray, UInt32Array)> {
    let mut seen: HashMap<Option<&str>, u32> = HashMap::default();
    let mut firsts = Vec::new();
    let mut rows = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        if i == SAMPLE && seen.len() > MOST_DISTINCT {
            return None;
        }
        let index = *seen.entry(value).or_insert_with(|| {
            firsts.push(value);
            (firsts.len() - 1) as u32
        });
        rows.push(index);
    }
    Some((StringArray::from(firsts), UInt32Array::from(rows)))
}

impl ScalarUDFImpl for RegexpReplace {
    same_udf_as_inner!();

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let constant_rest = args.args[1..]
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let deduplicated = match args.args.first() {
            Some(ColumnarValue::Array(values))
                if constant_rest && values.data_type() == &DataType::Utf8 =>
            {
                distinct(values.as_string::<i32>())
            }
            _ => None,
        };
        let Some((firsts, rows)) = deduplicated else {
            return self.inner.invoke_with_args(args);
        };
        let n = firsts.len();
        args.args[0] = ColumnarValue::Array(Arc::new(firsts));
        args.number_rows = n;
        let answers: ArrayRef = self.inner.invoke_with_args(args)?.into_array(n)?;
        Ok(ColumnarValue::Array(take(&answers, &rows, None)?))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::scalar::ScalarValue;

    use super::*;

    /// `f` over `values` with constant pattern, replacement and flags.
    fn call(f: &dyn ScalarUDFImpl, values: &StringArray, rest: &[&str]) -> Result<ArrayRef> {
        let n = values.len();
        let mut args = vec![ColumnarValue::Array(Arc::new(values.clone()))];
        args.extend(
            rest.iter()
                .map(|s| ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_string())))),
        );
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        f.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::default(),
        })?
        .into_array(n)
    }

    #[test]
    fn it_answers_as_datafusion_s_regexp_replace_does() {
        let ours = RegexpReplace::new();
        let theirs = datafusion::functions::regex::regexp_replace();
        let mut rng = fastrand::Rng::with_seed(5);
        let reasons = [
            r#"RBAC: allowed by ClusterRoleBinding "admins" of ClusterRole "cluster-admin" to Group "ops""#,
            r#"RBAC: allowed by RoleBinding "dev/edit" of Role "edit" to User "bob""#,
            "",
            "no match at all",
        ];
        let calls: [&[&str]; 4] = [
            &[
                r#"^RBAC: allowed by (\S+) "([^"]*)" of (\S+) "([^"]*)".*$"#,
                r"\1 \2 -> \3 \4",
            ],
            &["o", "0", "g"],
            &["O", "0", "i"],
            &["(", "x"],
        ];
        for rows in [0, 1, 7, 3000, 9000] {
            // Few distinct values, then (last) nearly all distinct.
            for distinct in [4, rows] {
                let values: StringArray = (0..rows)
                    .map(|_| {
                        let pick = rng.usize(..distinct.max(1));
                        (pick % 5 != 4).then(|| format!("{}{}", reasons[pick % 4], pick / 4))
                    })
                    .collect();
                for rest in calls {
                    let a = call(&ours, &values, rest);
                    let b = call(theirs.inner().as_ref(), &values, rest);
                    match (a, b) {
                        (Ok(a), Ok(b)) => assert_eq!(&a, &b, "{rows} rows, {rest:?}"),
                        (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "{rows} rows, {rest:?}"),
                    }
                }
            }
        }
    }
}
