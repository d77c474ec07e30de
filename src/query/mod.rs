//! The SQL layer: the only module that calls DataFusion's APIs (its API moves
//! every release; the version is pinned in Cargo.toml).
//!
//! One place builds the session: DuckDB's dialect (see `dialect`) so that `user.username`,
//! `sourceIPs[1]` and `annotations['...']` read as typed (the generic
//! dialect takes `user` for the SQL function `USER`), identifiers kept
//! case-sensitive so `auditID` and `objectRef` need no quotes, JSON functions
//! from datafusion-functions-json, eksaudit's own UDFs, and the table `audit`.

/// Inside `impl ScalarUDFImpl for X`, where `X` wraps DataFusion's own
/// function as `self.inner: Arc<ScalarUDF>`: the name, signature and
/// return type are the wrapped function's.
macro_rules! same_udf_as_inner {
    () => {
        fn name(&self) -> &str {
            self.inner.name()
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            self.inner.signature()
        }

        fn return_type(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
            self.inner.return_type(arg_types)
        }
    };
}

pub mod cluster;
mod dialect;
mod distinct_agg;
mod exprs;
pub mod fed;
mod first_present;
pub mod hints;
mod lake;
mod map_get;
mod map_item;
mod masks;
mod names;
mod nested;
pub mod pod;
mod prepared;
mod pushdown;
mod regex_like;
mod regex_replace;
pub mod saved;
mod table;
pub mod udf;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::common::config::Dialect;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::DFParserBuilder;

use crate::error::{Error, Result};
use crate::report::Report;
use crate::source::ChunkSource;
pub use exprs::Exprs;
pub use lake::{files_scanned, lake_batches, lake_session};
pub use masks::Masks;
pub use prepared::{BatchSession, Prepared};
pub use table::AuditTable;

/// The name of the table every query reads.
pub const TABLE: &str = "audit";

/// A session with the audit table over `source` registered. `strict`
/// decodes every line (to report every bad one) instead of skipping the
/// ones that cannot match the query's filters.
pub fn session(
    source: Arc<dyn ChunkSource>,
    report: Arc<Report>,
    partitions: usize,
    strict: bool,
) -> Result<SessionContext> {
    let ctx = context(partitions)?;
    let mut table = AuditTable::new(source, report, partitions);
    if strict {
        table = table.without_prefilter();
    }
    ctx.register_table(TABLE, Arc::new(table))?;
    Ok(ctx)
}

/// A session whose audit table is Parquet files written by eksaudit
/// (`fetch --format parquet`), read by DataFusion's Parquet reader.
pub fn parquet_session(files: &[PathBuf], partitions: usize) -> Result<SessionContext> {
    let ctx = context(partitions)?;
    for f in files {
        check_parquet_schema(f)?;
    }
    let urls = files
        .iter()
        .map(|f| {
            let abs = std::path::absolute(f).map_err(|e| Error::io(f.display().to_string(), e))?;
            Ok(ListingTableUrl::parse(abs.to_string_lossy())?)
        })
        .collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(crate::schema::audit_schema());
    ctx.register_table(TABLE, Arc::new(ListingTable::try_new(config)?))?;
    Ok(ctx)
}

/// Refuses a Parquet file that lacks a column of the audit schema (query
/// results, say: they would read as a table of NULLs), naming the first
/// missing one.
fn check_parquet_schema(path: &std::path::Path) -> Result<()> {
    use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::io(name.clone(), e))?;
    let meta =
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| Error::Config {
            path: name.clone(),
            reason: format!("not a readable Parquet file: {e}"),
        })?;
    let has = meta.schema();
    let missing = crate::schema::audit_schema()
        .fields()
        .iter()
        // `raw` (the whole event as text) may be left out to save space.
        .find(|f| f.name() != crate::schema::col::RAW && has.field_with_name(f.name()).is_err())
        .map(|f| f.name().clone());
    match missing {
        None => Ok(()),
        Some(column) => {
            let names: Vec<&str> = has.fields().iter().map(|f| f.name().as_str()).collect();
            Err(Error::NotAudit {
                path: name,
                column,
                columns: names.join(", "),
            })
        }
    }
}

/// A session whose audit table is `batches` in memory (alert rules over a
/// batch of events), spread over `partitions`.
pub fn memory_session(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    partitions: usize,
) -> Result<SessionContext> {
    let ctx = context(partitions)?;
    let n = partitions.max(1);
    let mut parts = vec![Vec::new(); n];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    ctx.register_table(TABLE, Arc::new(MemTable::try_new(schema, parts)?))?;
    Ok(ctx)
}

fn context(partitions: usize) -> Result<SessionContext> {
    use datafusion::optimizer::{Optimizer, OptimizerRule};
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> = vec![Arc::new(map_item::FuseItems)];
    rules.extend(Optimizer::new().rules);
    rules.push(Arc::new(nested::NestedFields));
    rules.push(Arc::new(map_get::FastMapGet));
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config(SessionConfig::new(), partitions))
        .with_default_features()
        .with_optimizer_rules(rules)
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    equip(&mut ctx)?;
    Ok(ctx)
}

/// The session settings every query runs with.
fn config(config: SessionConfig, partitions: usize) -> SessionConfig {
    let mut config = config
        .with_target_partitions(partitions)
        .with_information_schema(true);
    let sql = &mut config.options_mut().sql_parser;
    sql.dialect = Dialect::DuckDB;
    sql.enable_ident_normalization = false;
    config
}

/// The functions every query may call: the JSON functions and eksaudit's.
fn equip(ctx: &mut SessionContext) -> Result<()> {
    datafusion_functions_json::register_all(ctx)?;
    udf::register(ctx);
    Ok(())
}

/// A planned query, ready to run.
pub struct Query {
    df: DataFrame,
}

impl Query {
    /// Plans `sql` (one statement).
    pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<Self> {
        let dialect = dialect::AuditDialect::default();
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()?
            .parse_statements()?;
        let statement = match (statements.pop_front(), statements.is_empty()) {
            (Some(s), true) => s,
            (None, _) => {
                return Err(Error::Query(DataFusionError::Plan(
                    "no SQL statement given".into(),
                )));
            }
            (Some(_), false) => {
                return Err(Error::Query(DataFusionError::Plan(
                    "one SQL statement at a time, please".into(),
                )));
            }
        };
        let state = ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        if looks_into_a_map_in_a_struct(&plan) && reads_parquet(&plan) {
            // DataFusion 55.2's leaf-expression extraction breaks map
            // lookups inside structs over Parquet (`user.extra['arn'][1]`
            // grouped by: "Column references column 'user' ... input
            // schema only has 0 columns"; in a filter: "Field extra not
            // found in struct"). Without it the same SQL gives the same
            // answers as over logs (tests/integration/cli.rs, lake.rs);
            // with it, other queries read only the struct fields they
            // name from Parquet. The DataFrame keeps this session state.
            // Over logs it stays: a `CASE` over `user.username` then
            // filters that field, not the whole `user` struct, branch
            // after branch.
            ctx.remove_optimizer_rule("extract_leaf_expressions");
        }
        let df = ctx.execute_logical_plan(plan).await?;
        Ok(Self {
            df: with_display_names(df)?,
        })
    }

    /// Binds `$NAME` placeholders. Values are given as text and cast to the
    /// type the query needs there (`responseStatus.code = $code` wants a number).
    /// A `params` name the query has no placeholder for is an error (a
    /// typo would otherwise leave the placeholder at its default).
    pub fn bind(self, params: &[(String, String)]) -> Result<Self> {
        let types = self.df.logical_plan().get_parameter_types()?;
        let mut names: Vec<&str> = types.keys().map(|n| n.trim_start_matches('$')).collect();
        names.sort_unstable();
        if let Some((name, _)) = params.iter().find(|(k, _)| !names.contains(&k.as_str())) {
            return Err(Error::UnknownParam {
                name: name.clone(),
                hint: crate::suggest::hint(name, names.iter().copied()),
            });
        }
        if types.is_empty() {
            return Ok(self);
        }
        let mut values = Vec::new();
        for (name, ty) in &types {
            let key = name.trim_start_matches('$');
            let text = params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Error::MissingParam(key.to_string()))?;
            let mut value = ScalarValue::Utf8(Some(text));
            if let Some(ty) = ty {
                value = value.cast_to(ty)?;
            }
            values.push((key.to_string(), value));
        }
        Ok(Self {
            df: self.df.with_param_values(values)?,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.df.schema().as_arrow().clone())
    }

    /// Runs the query, yielding batches as they are produced.
    pub async fn stream(self) -> Result<SendableRecordBatchStream> {
        Ok(self.df.execute_stream().await?)
    }

    /// Runs the query; also says how many files its Parquet scans open
    /// (after pruning by partition).
    pub async fn stream_counting_files(self) -> Result<(SendableRecordBatchStream, usize)> {
        let task = Arc::new(self.df.task_ctx());
        let plan = self.df.create_physical_plan().await?;
        let files = files_scanned(&plan);
        Ok((
            datafusion::physical_plan::execute_stream(plan, task)?,
            files,
        ))
    }

    /// Runs the query and keeps every batch (tests, small results).
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        Ok(self.df.collect().await?)
    }

    /// Runs the query into one Parquet file.
    pub async fn write_parquet(self, path: &str) -> Result<()> {
        let opts = DataFrameWriteOptions::new().with_single_file_output(true);
        self.df.write_parquet(path, opts, None).await?;
        Ok(())
    }
}

/// Whether `plan` reads a field of a field (`user.extra['arn']`): a
/// `get_field` of more than one step, or of another `get_field`.
fn looks_into_a_map_in_a_struct(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        let _ = node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.name() == "get_field"
                    && (f.args.len() > 2
                        || matches!(&f.args[0], Expr::ScalarFunction(g) if g.name() == "get_field"))
                {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether `plan` (with its subqueries) scans Parquet files.
fn reads_parquet(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::source_as_provider;
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node
            && source_as_provider(&scan.source)
                .is_ok_and(|p| p.downcast_ref::<ListingTable>().is_some())
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Renames result columns that are paths into audit columns (see `names`).
/// Statements without output (COPY, DDL) and results needing no renaming
/// are left alone.
fn with_display_names(df: DataFrame) -> Result<DataFrame> {
    let fields: Vec<(Option<String>, Expr)> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let col = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            (names::display_name(field.name()), col)
        })
        .collect();
    if fields.iter().all(|(n, _)| n.is_none()) {
        return Ok(df);
    }
    let mut taken: HashSet<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let exprs: Vec<Expr> = fields
        .into_iter()
        .map(|(name, col)| match name {
            Some(n) if taken.insert(n.clone()) => col.alias(n),
            _ => col,
        })
        .collect();
    Ok(df.select(exprs)?)
}

/// Number of decode partitions: every core.
pub fn default_partitions() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `sql`'s answer in `ctx`, printed as a table (tests comparing answers).
#[cfg(test)]
async fn printed(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .expect("the query plans")
        .collect()
        .await
        .expect("the query runs");
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printing the answer")
        .to_string()
}

/// The optimized plan of `sql` over an audit table with no input, for
/// tests of what the planner hands the scan.
#[cfg(test)]
fn optimized_plan(sql: &str) -> datafusion::logical_expr::LogicalPlan {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let report = Arc::new(Report::new());
    let source = crate::source::FileSource::new(
        Vec::new(),
        crate::source::SourceOptions::default(),
        report.clone(),
    );
    let ctx = session(Arc::new(source), report, 1, false).expect("a session");
    rt.block_on(async { ctx.sql(sql).await?.into_optimized_plan() })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
