//! `eksaudit_first_present(a, b, ...)`: row by row, the first argument
//! that is not NULL, with every argument evaluated over every row.
//!
//! `coalesce` means the same, but DataFusion turns it into a `CASE` so
//! that later arguments run only where the earlier ones are NULL, and that
//! `CASE` cuts its input down to those rows first: over
//! `coalesce(user.extra['arn'][1], user.extra['canonicalArn'][1])` it
//! copies the whole `user` struct (groups, extra map) of every row without
//! an `arn`. Where each argument is cheap and cannot fail (a field, a map
//! lookup, a column), evaluating them all and picking per row is cheaper.
//! The alert engine's hit columns use it.

use datafusion::arrow::compute::is_not_null;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::binary::try_type_union_resolution;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FirstPresent {
    signature: Signature,
}

impl FirstPresent {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FirstPresent {
    fn name(&self) -> &str {
        "eksaudit_first_present"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The arguments' common type, as `coalesce`'s.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() {
            return plan_err!("eksaudit_first_present takes at least one argument");
        }
        try_type_union_resolution(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut args = args.args.into_iter().rev();
        let Some(last) = args.next() else {
            return plan_err!("eksaudit_first_present takes at least one argument");
        };
        let mut out = last.into_array(rows)?;
        for arg in args {
            let arg = arg.into_array(rows)?;
            out = zip(&is_not_null(&arg)?, &arg, &out)?;
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn gives_what_coalesce_gives() {
        let ctx = SessionContext::new();
        super::super::udf::register(&ctx);
        let sql = |f: &str| {
            format!(
                "select {f}(a, b, c) as x from (values \
                 (1, 2, 3), (null, 2, 3), (null, null, 3), (null, null, null), (1, null, null)) \
                 as t(a, b, c)"
            )
        };
        for f in ["coalesce", "eksaudit_first_present"] {
            assert_eq!(
                crate::query::printed(&ctx, &sql(f)).await,
                "+---+\n| x |\n+---+\n| 1 |\n| 2 |\n| 3 |\n|   |\n| 1 |\n+---+",
                "{f}"
            );
        }
        let text = "select eksaudit_first_present(cast(null as varchar), 'b') as x";
        assert!(crate::query::printed(&ctx, text).await.contains("| b |"));
    }
}
