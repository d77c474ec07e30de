//! SQL expressions over one audit event, planned once and evaluated over
//! batch after batch: the alert rules' predicates, hit columns and keys.
//!
//! A `where:` rule is a predicate. Run as a query of its own (scan, filter,
//! projection), each of two dozen rules copied the columns of its matching
//! rows (the whole `user` and `objectRef` structs) and computed the hit
//! columns again. As expressions, each predicate gives a mask over the
//! batch, and the hit columns and keys are computed once, for the rows some
//! rule matched. They are DataFusion's physical expressions, made by the
//! same parser (the session's dialect), type coercion, simplification and
//! functions as a query's, so a predicate means here what it means after
//! `where` in `eksaudit query`.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;

use super::{TABLE, context};
use crate::error::{Error, Result};
use crate::schema::{Column, audit_schema};

/// Expressions bound to the audit columns they read.
#[derive(Debug)]
pub struct Exprs {
    /// The columns read, in audit-schema order: what [`Exprs::bind`] gives.
    schema: SchemaRef,
    exprs: Vec<One>,
}

/// One expression, planned over only the columns it reads: DataFusion's
/// `CASE` and `AND` evaluate a branch over the rows it needs by filtering
/// the whole input batch, so an expression given every rule's columns
/// copied all of them (`requestObject` too) to test one.
#[derive(Debug)]
struct One {
    expr: Arc<dyn PhysicalExpr>,
    /// Its columns: positions in the bound batch, and their schema.
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl Exprs {
    /// Plans each of `sqls`, an expression over the columns of `audit`.
    /// The error says which expression (its index) failed, and why.
    pub fn plan(sqls: &[String]) -> std::result::Result<Self, (usize, Error)> {
        let ctx = context(1).map_err(|e| (0, e))?;
        let full = audit_schema();
        let df_full =
            DFSchema::try_from_qualified_schema(TABLE, &full).map_err(|e| (0, e.into()))?;
        let logical: Vec<Expr> = sqls
            .iter()
            .enumerate()
            .map(|(i, sql)| ctx.parse_sql_expr(sql, &df_full).map_err(|e| (i, e.into())))
            .collect::<std::result::Result<_, _>>()?;
        let reads = |e: &Expr| -> BTreeSet<usize> {
            e.column_refs()
                .iter()
                .filter_map(|c| full.index_of(&c.name).ok())
                .collect()
        };
        let read: Vec<usize> = logical
            .iter()
            .flat_map(reads)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let schema = Arc::new(
            full.project(&read)
                .map_err(|e| (0, DataFusionError::from(e).into()))?,
        );
        let exprs = logical
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let own: Vec<usize> = reads(&e).into_iter().collect();
                let columns = own
                    .iter()
                    .map(|c| read.binary_search(c).unwrap_or_default())
                    .collect();
                let planned = plan_one(&ctx, e, &full, &own);
                planned
                    .map(|(expr, schema)| One {
                        expr,
                        columns,
                        schema,
                    })
                    .map_err(|e| (i, e.into()))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self { schema, exprs })
    }

    /// The audit columns the expressions read.
    pub fn columns(&self) -> Vec<Column> {
        let full = audit_schema();
        self.schema
            .fields()
            .iter()
            .filter_map(|f| full.index_of(f.name()).ok())
            .filter_map(Column::from_index)
            .collect()
    }

    /// `batch` (events of the audit schema, any projection holding the
    /// columns read) as the expressions expect it.
    pub fn bind(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        Ok(project_by_name(batch, &self.schema)?)
    }

    pub fn len(&self) -> usize {
        self.exprs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// Whether expression `i` is true or false (or null): a predicate.
    pub fn is_boolean(&self, i: usize) -> bool {
        let one = &self.exprs[i];
        one.expr
            .data_type(&one.schema)
            .is_ok_and(|t| t == DataType::Boolean)
    }

    /// Expression `i` over a batch from [`Exprs::bind`], one value a row.
    pub fn evaluate(&self, i: usize, bound: &RecordBatch) -> Result<ArrayRef> {
        let one = &self.exprs[i];
        let input = bound.project(&one.columns)?;
        let value = one.expr.evaluate(&input)?;
        Ok(value.into_array(input.num_rows())?)
    }

    /// Expression `i` over the rows of `bound` that `rows` selects, one
    /// value each: the rows are cut out first (of the columns it reads
    /// only), so a costly expression (a JSON path, a pod's images) runs
    /// over the few rows asked for, not the whole batch.
    pub fn evaluate_rows(
        &self,
        i: usize,
        bound: &RecordBatch,
        rows: &BooleanArray,
    ) -> Result<ArrayRef> {
        let one = &self.exprs[i];
        let input = filter_record_batch(&bound.project(&one.columns)?, rows)?;
        let value = one.expr.evaluate(&input)?;
        Ok(value.into_array(input.num_rows())?)
    }
}

/// `e`, typed, simplified and planned over the `columns` of `full` (the
/// ones it reads).
fn plan_one(
    ctx: &datafusion::prelude::SessionContext,
    e: Expr,
    full: &Schema,
    columns: &[usize],
) -> DfResult<(Arc<dyn PhysicalExpr>, SchemaRef)> {
    let schema = Arc::new(full.project(columns)?);
    let df_schema = Arc::new(DFSchema::try_from_qualified_schema(TABLE, &schema)?);
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(df_schema.clone())
            .with_config_options(ctx.state().config_options().clone())
            .build(),
    );
    let e = simplifier.simplify(simplifier.coerce(e, &df_schema)?)?;
    Ok((ctx.create_physical_expr(e, &df_schema)?, schema))
}

/// The columns of `schema` taken from `batch` by name (a batch may hold
/// more columns, in another order).
pub(super) fn project_by_name(batch: &RecordBatch, schema: &Schema) -> DfResult<RecordBatch> {
    let indices = schema
        .fields()
        .iter()
        .map(|f| {
            batch.schema().index_of(f.name()).map_err(|_| {
                DataFusionError::Internal(format!(
                    "the loaded batches lack the column {} a rule reads",
                    f.name()
                ))
            })
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(batch.project(&indices)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, BooleanArray};

    fn events() -> RecordBatch {
        let text = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"get","user":{"username":"user1","groups":["system:authenticated"]},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"default"},"responseStatus":{"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"b","verb":"delete","user":{"username":"system:serviceaccount:kube-system:x"},"sourceIPs":["54.1.2.3"],"objectRef":{"resource":"pods"},"responseStatus":{"code":403}}"#;
        crate::alerts::ndjson_batch(std::path::Path::new("t.ndjson"), text).expect("events")
    }

    #[test]
    fn predicates_read_as_after_where_and_bind_to_what_they_read() {
        let sqls = [
            "user.username = 'user1' and objectRef.resource = 'secrets'",
            "not is_system_user(user.username) or responseStatus.code >= 400",
            "'' <> ''",
            "cast(sourceIPs[1] as varchar)",
        ]
        .map(String::from);
        let exprs = Exprs::plan(&sqls).expect("planning");
        let schema = audit_schema();
        let names: Vec<&str> = exprs
            .columns()
            .iter()
            .map(|c| schema.field(c.index()).name().as_str())
            .collect();
        assert_eq!(names, ["user", "sourceIPs", "objectRef", "responseStatus"]);
        let bound = exprs.bind(&events()).expect("binding");
        let mask = |i| {
            let a = exprs.evaluate(i, &bound).expect("evaluating");
            a.as_boolean().clone()
        };
        assert_eq!(mask(0), BooleanArray::from(vec![true, false]));
        assert_eq!(mask(1), BooleanArray::from(vec![true, true]));
        assert_eq!(mask(2), BooleanArray::from(vec![false, false]));
        let ips = exprs.evaluate(3, &bound).expect("evaluating");
        // varchar is Utf8View in DataFusion 55.
        let ips: Vec<Option<&str>> = ips.as_string_view().iter().collect();
        assert_eq!(ips, [Some("10.0.0.1"), Some("54.1.2.3")]);
    }

    #[test]
    fn an_expression_that_does_not_plan_is_named() {
        let sqls = ["verb = 'get'", "no_such_column = 1"].map(String::from);
        let (i, e) = Exprs::plan(&sqls).expect_err("a bad column");
        assert_eq!(i, 1);
        assert!(e.to_string().contains("no_such_column"), "{e}");
    }
}
