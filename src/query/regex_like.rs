//! `regexp_like` that compiles each pattern once for as long as a rule
//! set is loaded.
//!
//! DataFusion's `regexp_like(text, 'pattern')` (and the `~` operator its
//! simplifier turns it into) compiles the pattern again for every batch it
//! evaluates. An alert hunt evaluates two dozen rules' patterns (some with
//! long alternations) over thousands of small batches, and compiling them
//! was 6% of its time. This function means the same (the `regex` crate,
//! flags as `(?flags)`, an empty pattern matches everything, a null value
//! or pattern gives null) but keeps the patterns it compiled; any call it does
//! not handle (a pattern per row) goes to DataFusion's own.
//!
//! Only the rules' sessions use it ([`register`]). A query keeps
//! DataFusion's, whose simplifier turns a literal pattern into `LIKE`,
//! which the reader's literal pre-filter can use (a whole scan is one
//! compile per batch of 8,192 rows anyway).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray, StringArrayType,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl};
use datafusion::prelude::SessionContext;
use regex::Regex;

/// More distinct patterns than this (patterns built per query) empty the
/// cache rather than let it grow.
const MAX_CACHED: usize = 512;

#[derive(Debug)]
struct RegexpLike {
    /// DataFusion's `regexp_like`: its signature, types and the cases
    /// this one leaves to it.
    inner: Arc<ScalarUDF>,
    cache: Mutex<HashMap<String, Regex>>,
}

impl RegexpLike {
    fn new() -> Self {
        Self {
            inner: datafusion::functions::regex::regexp_like(),
            cache: Mutex::default(),
        }
    }

    /// `pattern` with `flags`, compiled, from the cache when it is there;
    /// `None` for the empty pattern, which matches everything.
    fn regex(&self, pattern: &str, flags: Option<&str>) -> Result<Option<Regex>> {
        let full = match flags {
            Some(f) => format!("(?{f}){pattern}"),
            None => pattern.to_string(),
        };
        if full.is_empty() {
            return Ok(None);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(re) = cache.get(&full) {
            return Ok(Some(re.clone()));
        }
        let re = Regex::new(&full).map_err(|e| {
            DataFusionError::Execution(format!("Regular expression did not compile: {e:?}"))
        })?;
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(full, re.clone());
        Ok(Some(re))
    }
}

/// Puts this `regexp_like` in place of DataFusion's on `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(RegexpLike::new()));
}

impl PartialEq for RegexpLike {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RegexpLike {}

impl Hash for RegexpLike {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

/// A scalar string argument: `Some(None)` for a null string, `None` when
/// the argument is not a scalar string.
fn scalar_str(v: &ColumnarValue) -> Option<Option<&str>> {
    match v {
        ColumnarValue::Scalar(s) => s.try_as_str(),
        ColumnarValue::Array(_) => None,
    }
}

/// Whether each value of `values` matches `re`, null where it is null.
fn matches<'a, S>(values: &'a S, re: Option<&Regex>) -> BooleanArray
where
    &'a S: StringArrayType<'a>,
{
    let bits = match re {
        Some(re) => BooleanBuffer::collect_bool(values.len(), |i| {
            values.is_valid(i) && re.is_match(values.value(i))
        }),
        None => BooleanBuffer::new_set(values.len()),
    };
    BooleanArray::new(bits, values.nulls().cloned())
}

impl ScalarUDFImpl for RegexpLike {
    same_udf_as_inner!();

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (values, pattern, flags) = match args.args.as_slice() {
            [ColumnarValue::Array(v), p] => (v.clone(), scalar_str(p), Some(None)),
            [ColumnarValue::Array(v), p, f] => (v.clone(), scalar_str(p), scalar_str(f)),
            _ => return self.inner.invoke_with_args(args),
        };
        let (Some(pattern), Some(flags)) = (pattern, flags) else {
            return self.inner.invoke_with_args(args);
        };
        if flags.is_some_and(|f| f.contains('g')) {
            return self.inner.invoke_with_args(args);
        }
        let Some(pattern) = pattern else {
            let nulls: ArrayRef = Arc::new(BooleanArray::new_null(values.len()));
            return Ok(ColumnarValue::Array(nulls));
        };
        let re = self.regex(pattern, flags)?;
        let out = match values.data_type() {
            DataType::Utf8 => matches(values.as_string::<i32>(), re.as_ref()),
            DataType::LargeUtf8 => matches(values.as_string::<i64>(), re.as_ref()),
            DataType::Utf8View => matches(values.as_string_view(), re.as_ref()),
            _ => return self.inner.invoke_with_args(args),
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::scalar::ScalarValue;

    /// `f` over `values` with a scalar pattern (and flags).
    fn call(
        f: &dyn Fn(ScalarFunctionArgs) -> Result<ColumnarValue>,
        values: &[Option<&str>],
        pattern: Option<&str>,
        flags: Option<&str>,
    ) -> Result<BooleanArray> {
        let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        let n = values.len();
        let mut args = vec![
            ColumnarValue::Array(values),
            ColumnarValue::Scalar(ScalarValue::Utf8(pattern.map(String::from))),
        ];
        if let Some(f) = flags {
            args.push(ColumnarValue::Scalar(ScalarValue::Utf8(Some(f.into()))));
        }
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
            .collect();
        let out = f(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Boolean, true)),
            config_options: Arc::default(),
        })?;
        Ok(out.into_array(n)?.as_boolean().clone())
    }

    #[test]
    fn it_answers_as_datafusion_s_regexp_like_does() {
        let ours = RegexpLike::new();
        let theirs = datafusion::functions::regex::regexp_like();
        let values = [Some("kubectl/v1.29"), None, Some("Trufflehog/3"), Some("")];
        let cases = [
            (Some("trufflehog|kubectl"), None),
            (Some("TRUFFLEHOG"), Some("i")),
            (Some(""), None),
            (Some(""), Some("i")),
            (Some(r"^\w+/v\d"), None),
            (None, None),
        ];
        for (pattern, flags) in cases {
            let a = call(&|a| ours.invoke_with_args(a), &values, pattern, flags);
            let b = call(&|a| theirs.invoke_with_args(a), &values, pattern, flags);
            assert_eq!(
                a.expect("ours"),
                b.expect("theirs"),
                "{pattern:?} {flags:?}"
            );
        }
        assert_eq!(
            call(
                &|a| ours.invoke_with_args(a),
                &values,
                Some("TRUFFLEHOG"),
                Some("i")
            )
            .expect("ours"),
            BooleanArray::from(vec![Some(false), None, Some(true), Some(false)])
        );
        // A bad pattern is an error each time, not cached as anything.
        for _ in 0..2 {
            let e = call(&|a| ours.invoke_with_args(a), &values, Some("("), None);
            assert!(e.is_err());
        }
        // Twice the same pattern: compiled once.
        call(&|a| ours.invoke_with_args(a), &values, Some("x+"), None).expect("ours");
        call(&|a| ours.invoke_with_args(a), &values, Some("x+"), None).expect("ours");
        assert!(ours.cache.lock().expect("lock").contains_key("x+"));
    }
}
