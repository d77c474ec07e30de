//! Nested projection for the `audit` table: DataFusion hands a scan the
//! top-level columns a query reads (`user`), not the struct fields
//! (`user.username`), so building `user` would parse and build its groups
//! and `extra` map for nothing. A rule over the whole optimized plan finds,
//! for each struct column, the fields every use of it names (a `get_field`
//! straight over the column); any other use (the whole struct selected,
//! passed on, compared) keeps every field. The scans of the audit table get
//! that list, and the decoder leaves the other fields null, unparsed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::table::AuditTable;
use crate::schema::Column;

/// The struct columns whose fields can be left out.
const STRUCTS: [Column; 4] = [
    Column::User,
    Column::ImpersonatedUser,
    Column::ObjectRef,
    Column::ResponseStatus,
];

/// Per struct column: the fields the plan reads, or `None` for all.
pub type Needs = BTreeMap<Column, Option<BTreeSet<String>>>;

#[derive(Debug)]
pub(super) struct NestedFields;

impl OptimizerRule for NestedFields {
    fn name(&self) -> &str {
        "eksaudit_nested_fields"
    }

    // No apply order: the rule sees the whole plan at once (a field read
    // anywhere counts for every scan) and walks it itself.
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let needs = needs(&plan)?;
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let Ok(provider) = source_as_provider(&scan.source) else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let Some(table) = provider.downcast_ref::<AuditTable>() else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            if table.needs() == Some(&needs) {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            scan.source = provider_as_source(Arc::new(table.with_needs(needs.clone())));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
    }
}

/// What `plan` (with its subqueries) reads of each struct column.
fn needs(plan: &LogicalPlan) -> Result<Needs> {
    let mut needs: Needs = STRUCTS
        .iter()
        .map(|c| (*c, Some(BTreeSet::new())))
        .collect();
    // What reaches the output is read whole.
    whole(plan, &mut needs);
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            visit(e, &mut needs);
            Ok(TreeNodeRecursion::Continue)
        })?;
        match node {
            // Nodes that only pass columns on, or read them through their
            // expressions (seen above).
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Values(_) => {}
            // A subquery's output is compared whole.
            LogicalPlan::Subquery(sq) => whole(&sq.subquery, &mut needs),
            // Anything else (DISTINCT compares whole rows, COPY writes
            // them, ...) reads its inputs whole.
            other => {
                for input in other.inputs() {
                    whole(input, &mut needs);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(needs)
}

/// Every struct column in `plan`'s output is read whole.
fn whole(plan: &LogicalPlan, needs: &mut Needs) {
    for field in plan.schema().fields() {
        if let Some(column) = struct_column(field.name()) {
            needs.insert(column, None);
        }
    }
}

/// Records the struct fields `e` reads.
fn visit(e: &Expr, needs: &mut Needs) {
    if let Expr::ScalarFunction(f) = e
        && super::map_item::walks_fields(f.name())
        && let [Expr::Column(col), Expr::Literal(name, _), rest @ ..] = f.args.as_slice()
        && let Some(column) = struct_column(&col.name)
        && let Some(Some(name)) = name.try_as_str()
    {
        if let Some(Some(fields)) = needs.get_mut(&column) {
            fields.insert(name.to_string());
        }
        for arg in rest {
            visit(arg, needs);
        }
        return;
    }
    match e {
        Expr::Column(col) | Expr::OuterReferenceColumn(_, col) => {
            if let Some(column) = struct_column(&col.name) {
                needs.insert(column, None);
            }
            return;
        }
        Expr::ScalarSubquery(sq) => whole(&sq.subquery, needs),
        Expr::InSubquery(i) => whole(&i.subquery.subquery, needs),
        Expr::Exists(x) => whole(&x.subquery.subquery, needs),
        #[expect(deprecated, reason = "an unexpanded `*` reads every field")]
        Expr::Wildcard { .. } => {
            for c in STRUCTS {
                needs.insert(c, None);
            }
            return;
        }
        _ => {}
    }
    let _ = e.apply_children(|child| {
        visit(child, needs);
        Ok(TreeNodeRecursion::Continue)
    });
}

fn struct_column(name: &str) -> Option<Column> {
    let schema = crate::schema::audit_schema();
    STRUCTS
        .into_iter()
        .find(|c| schema.field(c.index()).name() == name)
}

#[cfg(test)]
mod tests {
    use datafusion::datasource::source_as_provider;

    use super::*;

    /// The fields each audit scan of `sql`'s optimized plan builds, as
    /// `column: fields` lines (`*` for every field).
    fn built(sql: &str) -> Vec<String> {
        let plan = super::super::optimized_plan(sql);
        let mut out = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let provider = source_as_provider(&scan.source)?;
                let table = provider
                    .downcast_ref::<AuditTable>()
                    .expect("the scan is of the audit table");
                for (column, fields) in table.needs().into_iter().flatten() {
                    let fields = match fields {
                        Some(f) => f.iter().cloned().collect::<Vec<_>>().join(","),
                        None => "*".into(),
                    };
                    out.push(format!("{column:?}: {fields}"));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walking the plan");
        out
    }

    #[test]
    fn fields_a_query_names() {
        assert_eq!(
            built(
                "select user.username, count(*) from audit \
                 where objectRef.resource = 'secrets' and responseStatus.code = 403 group by 1"
            ),
            [
                "User: username",
                "ImpersonatedUser: ",
                "ObjectRef: resource",
                "ResponseStatus: code"
            ]
        );
        assert_eq!(
            built("select user.extra['arn'][1], user.groups from audit")[0],
            "User: extra,groups"
        );
        // The optimizer sees through the alias.
        assert_eq!(
            built("select u.username from (select user as u from audit)")[0],
            "User: username"
        );
        // A subquery's reads count too.
        assert_eq!(
            built(
                "select verb from audit where user.username in \
                 (select impersonatedUser.username from audit)"
            )[..2],
            ["User: username", "ImpersonatedUser: username"]
        );
    }

    #[test]
    fn whole_structs_keep_every_field() {
        for sql in [
            "select * from audit",
            "select user from audit",
            "select count(*) from audit where user is not null",
            "select coalesce(objectRef, objectRef) from audit",
            "select user.username from (select distinct * from audit)",
            "select * from audit where verb = 'get' limit 3",
            "select verb from audit where user in (select impersonatedUser from audit)",
        ] {
            let b = built(sql);
            assert!(b.iter().any(|l| l.ends_with(": *")), "{sql}: {b:?}");
        }
    }
}
