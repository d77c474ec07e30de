//! `user.extra['arn'][1]` in one call: the element of each row's list,
//! without gathering the lists first.
//!
//! DataFusion's `get_field` gathers each row's whole list (a `take` of a
//! list array copies value by value through `MutableArrayData`), then its
//! `array_element` copies the element out the same way. [`GetItem`]
//! gathers only the elements. [`FuseItems`], the first rule of each pass,
//! puts it in place of the two calls. A literal index into a list column
//! (`sourceIPs[1]`) is taken the same way.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::error::Result;
use datafusion::functions::core::getfield::GetFieldFunc;
use datafusion::functions_nested::extract::ArrayElement;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExpressionPlacement, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::map_get::{Found, GetField, path};

/// `get_field(base, names...)[n]` in one step, for `user.extra['arn'][1]`
/// (arguments: the base, the names, the index), or `column[n]` (the
/// column and the index): DataFusion's gathers each row's whole list
/// (`take` of a list array copies value by value through
/// `MutableArrayData`), then copies the element out the same way; this
/// gathers only the elements. Its output is named and typed as the calls it
/// replaces. Anything [`path`] does not cover goes to DataFusion's
/// functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GetItem {
    signature: Signature,
    get_field: Arc<ScalarUDF>,
    element: Arc<ScalarUDF>,
}

static GET_ITEM: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::from(GetItem {
        signature: Signature::variadic_any(Volatility::Immutable),
        get_field: datafusion::functions::core::get_field(),
        element: datafusion::functions_nested::extract::array_element_udf(),
    }))
});

/// [`GetItem`]'s name; not callable from SQL (only the rewrites make it).
pub(super) const GET_ITEM_NAME: &str = "eksaudit_get_item";

/// Whether the function `name` walks a path of fields from its first
/// argument (the rest literals): DataFusion's `get_field`, or [`GetItem`]
/// (whose last argument is an index).
pub(super) fn walks_fields(name: &str) -> bool {
    matches!(name, "get_field" | GET_ITEM_NAME)
}

impl ScalarUDFImpl for GetItem {
    fn name(&self) -> &str {
        GET_ITEM_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("eksaudit_get_item's type comes from return_field_from_args")
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let (path, index) = args.split_at(args.len() - 1);
        let list = match path {
            [column] => column.schema_name().to_string(),
            _ => self.get_field.inner().schema_name(path)?,
        };
        Ok(format!("{list}[{}]", index[0].schema_name()))
    }

    /// Where `get_field` goes (next to the scan, when its base is a column
    /// and the rest literals), since the index is a literal too; an index
    /// into a list column stays where `array_element` does.
    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        match args.len() {
            2 => ExpressionPlacement::KeepInPlace,
            _ => self.get_field.inner().placement(args),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let k = args.arg_fields.len() - 1;
        let list = match k {
            1 => args.arg_fields[0].clone(),
            _ => self.get_field.return_field_from_args(ReturnFieldArgs {
                arg_fields: &args.arg_fields[..k],
                scalar_arguments: &args.scalar_arguments[..k],
            })?,
        };
        self.element.return_field_from_args(ReturnFieldArgs {
            arg_fields: &[list, args.arg_fields[k].clone()],
            scalar_arguments: &[None, args.scalar_arguments[k]],
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let k = args.args.len() - 1;
        if let ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) = &args.args[k]
            && let Some(found) = path(&args.args[..k])
            && let Some(items) = items(found?, *n)
        {
            return Ok(ColumnarValue::Array(items?));
        }
        let (list, list_field) = if k == 1 {
            (args.args[0].clone(), args.arg_fields[0].clone())
        } else {
            let scalars: Vec<Option<&ScalarValue>> = args.args[..k]
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => Some(s),
                    ColumnarValue::Array(_) => None,
                })
                .collect();
            let list_field = self.get_field.return_field_from_args(ReturnFieldArgs {
                arg_fields: &args.arg_fields[..k],
                scalar_arguments: &scalars,
            })?;
            let list = self.get_field.invoke_with_args(ScalarFunctionArgs {
                args: args.args[..k].to_vec(),
                arg_fields: args.arg_fields[..k].to_vec(),
                number_rows: args.number_rows,
                return_field: list_field.clone(),
                config_options: args.config_options.clone(),
            })?;
            (list, list_field)
        };
        self.element.invoke_with_args(ScalarFunctionArgs {
            args: vec![list, args.args[k].clone()],
            arg_fields: vec![list_field, args.arg_fields[k].clone()],
            ..args
        })
    }
}

/// Element `n` (1-based; negative from the end, as `array_element`) of
/// each list `found` ends at; `None` unless they are lists.
fn items(found: Found, n: i64) -> Option<Result<ArrayRef>> {
    let (lists, rows) = match found {
        Found::Array(a) => (a, None),
        Found::Entries { values, rows } => (values, Some(rows)),
    };
    let lists = lists.as_list_opt::<i32>()?;
    let offsets = lists.value_offsets();
    let pick = |list: usize| -> Option<u32> {
        if lists.is_null(list) {
            return None;
        }
        let (start, len) = (
            offsets[list] as i64,
            (offsets[list + 1] - offsets[list]) as i64,
        );
        let at = if n < 0 { n + len } else { n - 1 };
        (0..len).contains(&at).then(|| (start + at) as u32)
    };
    let picked: UInt32Array = match rows {
        Some(rows) => rows.iter().map(|r| pick(r? as usize)).collect(),
        None => (0..lists.len()).map(pick).collect(),
    };
    Some(take(lists.values(), &picked, None).map_err(Into::into))
}

/// Fuses `get_field(...)[n]` into [`GetItem`] where a plan does not read
/// Parquet. First of all rules: DataFusion's `extract_leaf_expressions`
/// moves each `get_field` towards the scan and leaves the index behind, in
/// another node, where no rule can fuse them.
#[derive(Debug)]
pub(super) struct FuseItems;

impl OptimizerRule for FuseItems {
    fn name(&self) -> &str {
        "eksaudit_fuse_items"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        super::map_get::unless_parquet(plan, |e| e.transform_up(|e| Ok(fuse(e))))
    }
}

/// `array_element(get_field(args...), n)` as `GetItem(args..., n)`, and
/// `array_element(column, n)` (`sourceIPs[1]`) as `GetItem(column, n)`.
pub(super) fn fuse(e: Expr) -> Transformed<Expr> {
    let Expr::ScalarFunction(f) = e else {
        return Transformed::no(e);
    };
    let args = match f.args.as_slice() {
        [base, n @ Expr::Literal(ScalarValue::Int64(Some(_)), _)]
            if f.func.inner().is::<ArrayElement>() =>
        {
            match base {
                Expr::ScalarFunction(g)
                    if g.func.inner().is::<GetField>() || g.func.inner().is::<GetFieldFunc>() =>
                {
                    Some([g.args.as_slice(), std::slice::from_ref(n)].concat())
                }
                Expr::Column(_) => Some(vec![base.clone(), n.clone()]),
                _ => None,
            }
        }
        _ => None,
    };
    match args {
        Some(args) => Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
            GET_ITEM.clone(),
            args,
        ))),
        None => Transformed::no(Expr::ScalarFunction(f)),
    }
}
