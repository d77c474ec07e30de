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

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;

use super::masks::{Conjuncts, Masks};
use super::{TABLE, context};
use crate::error::{Error, Result};
use crate::schema::{Column, audit_schema};

/// Expressions bound to the audit columns they read.
#[derive(Debug)]
pub struct Exprs {
    /// The columns read, in audit-schema order: what [`Exprs::bind`] takes.
    schema: SchemaRef,
    /// What the expressions read, computed from those columns: each
    /// struct field they name (`user.username`) as a column of its own,
    /// and the columns they read otherwise. So an expression that filters
    /// its input (see [`One`]) copies `user.username`, not the whole
    /// `user` struct with its groups and extra map.
    leaves: Vec<Arc<dyn PhysicalExpr>>,
    leaf_schema: SchemaRef,
    exprs: Vec<One>,
    /// The predicates as their conjuncts (see [`Exprs::masks`]).
    conjuncts: Conjuncts,
}

/// One expression, planned over only the columns it reads: DataFusion's
/// `CASE` and `AND` evaluate a branch over the rows it needs by filtering
/// the whole input batch, so an expression given every rule's columns
/// copied all of them (`requestObject` too) to test one.
#[derive(Debug)]
pub(super) struct One {
    expr: Arc<dyn PhysicalExpr>,
    /// Its columns: positions in the bound batch, and their schema.
    pub(super) columns: Vec<usize>,
    schema: SchemaRef,
}

impl Exprs {
    /// Plans each of `sqls`, an expression over the columns of `audit`.
    /// The error says which expression (its index) failed, and why.
    pub fn plan(sqls: &[String]) -> Planned<Self> {
        let ctx = context(1).map_err(|e| (0, e))?;
        super::regex_like::register(&ctx);
        let full = audit_schema();
        let df_full =
            DFSchema::try_from_qualified_schema(TABLE, &full).map_err(|e| (0, e.into()))?;
        let logical: Vec<Expr> = sqls
            .iter()
            .enumerate()
            .map(|(i, sql)| ctx.parse_sql_expr(sql, &df_full).map_err(|e| (i, e.into())))
            .collect::<Planned<_>>()?;
        let read: Vec<usize> = logical
            .iter()
            .flat_map(|e| e.column_refs())
            .filter_map(|c| full.index_of(&c.name).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let schema = Arc::new(
            full.project(&read)
                .map_err(|e| (0, DataFusionError::from(e).into()))?,
        );
        let mut leaves = Leaves::default();
        let logical: Vec<Expr> = logical
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                leaves.owner = i;
                leaves.rewrite(e).map_err(|e| (i, e.into()))
            })
            .collect::<Planned<_>>()?;
        let df_schema =
            DFSchema::try_from_qualified_schema(TABLE, &schema).map_err(|e| (0, e.into()))?;
        let (leaf_exprs, leaf_schema) = leaves.plan(&ctx, &df_schema)?;
        let planned: Vec<(One, Expr)> = logical
            .into_iter()
            .enumerate()
            .map(|(i, e)| One::plan(&ctx, e, &leaf_schema).map_err(|e| (i, e.into())))
            .collect::<Planned<_>>()?;
        let conjuncts = Conjuncts::plan(&ctx, &planned, &leaf_schema)?;
        let exprs = planned.into_iter().map(|(one, _)| one).collect();
        Ok(Self {
            schema,
            leaves: leaf_exprs,
            leaf_schema,
            exprs,
            conjuncts,
        })
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
        let columns = project_by_name(batch, &self.schema)?;
        let leaves = self
            .leaves
            .iter()
            .map(|l| l.evaluate(&columns)?.into_array(columns.num_rows()))
            .collect::<DfResult<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(columns.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.leaf_schema.clone(),
            leaves,
            &options,
        )?)
    }

    pub fn len(&self) -> usize {
        self.exprs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// Whether expression `i` is true or false (or null): a predicate.
    pub fn is_boolean(&self, i: usize) -> bool {
        self.exprs[i].is_boolean()
    }

    /// The predicates over a batch from [`Exprs::bind`], conjunct by
    /// conjunct (see [`Masks`]).
    pub fn masks<'a>(&'a self, bound: &'a RecordBatch) -> Masks<'a> {
        self.conjuncts.masks(&self.exprs, bound)
    }

    /// Expression `i` over a batch from [`Exprs::bind`], one value a row.
    pub fn evaluate(&self, i: usize, bound: &RecordBatch) -> Result<ArrayRef> {
        let one = &self.exprs[i];
        one.run(bound.project(&one.columns)?)
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
        one.run(filter_record_batch(&bound.project(&one.columns)?, rows)?)
    }
}

impl One {
    /// `e` (over the leaves of `full`), typed, simplified and planned
    /// over the columns it reads; with the simplified expression.
    pub(super) fn plan(
        ctx: &datafusion::prelude::SessionContext,
        e: Expr,
        full: &Schema,
    ) -> DfResult<(Self, Expr)> {
        let columns: Vec<usize> = e
            .column_refs()
            .iter()
            .filter_map(|c| full.index_of(&c.name).ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let schema = Arc::new(full.project(&columns)?);
        let df_schema = Arc::new(DFSchema::try_from_qualified_schema(TABLE, &schema)?);
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(df_schema.clone())
                .with_config_options(ctx.state().config_options().clone())
                .build(),
        );
        let e = simplifier.simplify(simplifier.coerce(e, &df_schema)?)?;
        let e = super::map_get::fast(e)?.data;
        let expr = ctx.create_physical_expr(e.clone(), &df_schema)?;
        let one = Self {
            expr,
            columns,
            schema,
        };
        Ok((one, e))
    }

    /// Whether it is true or false (or null): a predicate.
    pub(super) fn is_boolean(&self) -> bool {
        self.expr
            .data_type(&self.schema)
            .is_ok_and(|t| t == DataType::Boolean)
    }

    /// The expression over `input` (its columns), one value a row.
    pub(super) fn run(&self, input: RecordBatch) -> Result<ArrayRef> {
        let value = self.expr.evaluate(&input)?;
        Ok(value.into_array(input.num_rows())?)
    }
}

/// A result whose error names the expression (its index) that failed.
pub(super) type Planned<T> = std::result::Result<T, (usize, Error)>;

/// The struct fields and columns a set of expressions reads (see
/// [`Exprs::leaves`]), in the order first met.
#[derive(Default)]
struct Leaves {
    /// Each leaf's name (`user.username`, or a column's own), the
    /// expression over the audit columns that computes it, and the first
    /// expression that read it (an error planning it is that one's).
    found: Vec<(String, Expr, usize)>,
    /// The expression being rewritten.
    owner: usize,
}

impl Leaves {
    /// `e` with each struct field it reads (`get_field` of a column, by a
    /// field name) and each column it reads replaced by a leaf column.
    fn rewrite(&mut self, e: Expr) -> DfResult<Expr> {
        use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
        use datafusion::logical_expr::expr::ScalarFunction;
        let full = audit_schema();
        e.transform_down(|e| {
            if let Expr::ScalarFunction(f) = &e
                && f.name() == "get_field"
                && let [Expr::Column(col), Expr::Literal(name, _), rest @ ..] = f.args.as_slice()
                && let Some(Some(name)) = name.try_as_str()
                && let Ok(field) = full.field_with_name(&col.name)
                && let DataType::Struct(fields) = field.data_type()
                && fields.find(name).is_some()
            {
                let first = Expr::ScalarFunction(ScalarFunction::new_udf(
                    f.func.clone(),
                    vec![Expr::Column(col.clone()), lit(name)],
                ));
                let leaf = self.leaf(format!("{}.{name}", col.name), first);
                let e = match rest {
                    [] => leaf,
                    rest => {
                        let mut args = vec![leaf];
                        for a in rest {
                            args.push(self.rewrite(a.clone())?);
                        }
                        Expr::ScalarFunction(ScalarFunction::new_udf(f.func.clone(), args))
                    }
                };
                // Its parts are rewritten already.
                return Ok(Transformed::new(e, true, TreeNodeRecursion::Jump));
            }
            if let Expr::Column(col) = &e {
                let leaf = self.leaf(col.name.clone(), e.clone());
                return Ok(Transformed::new(leaf, true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(e))
        })
        .map(|t| t.data)
    }

    /// The column that stands for `computed`, named `name`.
    fn leaf(&mut self, name: String, computed: Expr) -> Expr {
        if !self.found.iter().any(|(n, ..)| *n == name) {
            self.found.push((name.clone(), computed, self.owner));
        }
        Expr::Column(datafusion::common::Column::new(Some(TABLE), name))
    }

    /// The leaves planned over `schema` (the columns read), and the
    /// schema of the batch they make; the error names the expression.
    fn plan(
        self,
        ctx: &datafusion::prelude::SessionContext,
        schema: &DFSchema,
    ) -> Planned<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)> {
        let mut exprs = Vec::new();
        let mut fields = Vec::new();
        for (name, e, owner) in self.found {
            let planned = e
                .to_field(schema)
                .and_then(|(_, field)| Ok((field, ctx.create_physical_expr(e, schema)?)));
            let (field, expr) = planned.map_err(|e| (owner, e.into()))?;
            fields.push(Field::new(
                name,
                field.data_type().clone(),
                field.is_nullable(),
            ));
            exprs.push(expr);
        }
        Ok((exprs, Arc::new(Schema::new(fields))))
    }
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
        let text = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","verb":"get","user":{"username":"user1","groups":["system:authenticated"],"extra":{"arn":["arn:aws:sts::1:assumed-role/R/s"]}},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"default"},"responseStatus":{"code":200}}
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
            // A map inside a struct, and a struct read whole.
            "user.extra['arn'][1]",
            "user is not null and objectRef.namespace is null",
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
        let arns = exprs.evaluate(4, &bound).expect("evaluating");
        let arns = datafusion::arrow::compute::cast(&arns, &DataType::Utf8).expect("text");
        let arns: Vec<Option<&str>> = arns.as_string::<i32>().iter().collect();
        assert_eq!(arns, [Some("arn:aws:sts::1:assumed-role/R/s"), None]);
        assert_eq!(mask(5), BooleanArray::from(vec![false, true]));
        // Each struct field read is a column of its own, computed once.
        let leaves: Vec<&str> = exprs
            .leaf_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            leaves,
            [
                "user.username",
                "objectRef.resource",
                "responseStatus.code",
                "sourceIPs",
                "user.extra",
                "user",
                "objectRef.namespace"
            ]
        );
        // Rows picked before evaluating: the values of those rows.
        let second = BooleanArray::from(vec![false, true]);
        let picked = exprs.evaluate_rows(3, &bound, &second).expect("evaluating");
        assert_eq!(picked.as_string_view().value(0), "54.1.2.3");
    }

    #[test]
    fn an_expression_that_does_not_plan_is_named() {
        let sqls = ["verb = 'get'", "no_such_column = 1"].map(String::from);
        let (i, e) = Exprs::plan(&sqls).expect_err("a bad column");
        assert_eq!(i, 1);
        assert!(e.to_string().contains("no_such_column"), "{e}");
    }
}
