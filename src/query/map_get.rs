//! `get_field` whose map lookups find each row's key by comparing bytes
//! and gather the values with one `take`.
//!
//! Audit events keep much in maps: `annotations['authorization.k8s.io/decision']`,
//! `user.extra['arn']`. DataFusion 55's `get_field` compares every key of
//! the batch with the `eq` kernel and then copies the value of each row
//! through `MutableArrayData`, one call per row: 9% of the report's time.
//! This function is DataFusion's (name, signature, types, names of its
//! output, simplification and placement are delegated to it); it only
//! evaluates a path of struct fields and text-keyed map lookups itself,
//! meaning what DataFusion's means: the first entry with the key, NULL
//! without one. Any other call (a scalar base, a key of another type) goes
//! to DataFusion's.
//!
//! [`FastMapGet`], an optimizer rule, puts it in place of DataFusion's in
//! every plan of a local session (run last in each pass, since
//! simplification rebuilds `get_field` calls with DataFusion's) that does
//! not read Parquet.
//!
//! An index into a list (`user.extra['arn'][1]`, `sourceIPs[1]`) is
//! `map_item`'s.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::functions::core::getfield::GetFieldFunc;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, LogicalPlan, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GetField {
    inner: Arc<ScalarUDF>,
}

/// The one instance every rewritten plan shares.
static GET_FIELD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
    Arc::new(ScalarUDF::from(GetField {
        inner: datafusion::functions::core::get_field(),
    }))
});

impl ScalarUDFImpl for GetField {
    same_udf_as_inner!();

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match path(&args.args) {
            Some(found) => Ok(ColumnarValue::Array(found?.array()?)),
            None => self.inner.invoke_with_args(args),
        }
    }
}

/// Where a path of struct fields and map lookups ends: an array, or, after
/// a map lookup, the map's values and each row's entry among them (NULL
/// without one), not yet gathered.
pub(super) enum Found {
    Array(ArrayRef),
    Entries { values: ArrayRef, rows: UInt32Array },
}

impl Found {
    fn array(self) -> Result<ArrayRef> {
        match self {
            Found::Array(a) => Ok(a),
            Found::Entries { values, rows } => Ok(take(&values, &rows, None)?),
        }
    }
}

/// The path `args` asks for, when it is struct fields and text-keyed map
/// lookups over an array; `None` for DataFusion's to evaluate.
pub(super) fn path(args: &[ColumnarValue]) -> Option<Result<Found>> {
    let ColumnarValue::Array(base) = args.first()? else {
        return None;
    };
    let mut current = Found::Array(base.clone());
    for step in &args[1..] {
        let ColumnarValue::Scalar(name) = step else {
            return None;
        };
        let name = name.try_as_str()??;
        let array = match current.array() {
            Ok(a) => a,
            Err(e) => return Some(Err(e)),
        };
        current = match array.data_type() {
            DataType::Struct(_) => Found::Array(array.as_struct().column_by_name(name)?.clone()),
            DataType::Map(..) => lookup(&array, name)?,
            _ => return None,
        };
    }
    Some(Ok(current))
}

/// For each row of the map `array`, its first entry keyed `key`; `None`
/// when its keys are not text.
fn lookup(array: &ArrayRef, key: &str) -> Option<Found> {
    let map = array.as_map();
    let keys = map.keys().as_string_opt::<i32>()?;
    let key = key.as_bytes();
    let rows: UInt32Array = map
        .value_offsets()
        .windows(2)
        .map(|w| {
            (w[0] as usize..w[1] as usize)
                .find(|&i| keys.value(i).as_bytes() == key)
                .map(|i| i as u32)
        })
        .collect();
    Some(Found::Entries {
        values: map.values().clone(),
        rows,
    })
}

/// Puts [`GetField`] in place of DataFusion's `get_field` in a plan.
#[derive(Debug)]
pub(super) struct FastMapGet;

impl OptimizerRule for FastMapGet {
    fn name(&self) -> &str {
        "eksaudit_fast_map_get"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        unless_parquet(plan, fast)
    }
}

/// Every expression of `plan` rewritten by `f`, unless `plan` reads
/// Parquet: DataFusion's reads only the struct fields a Parquet scan needs
/// (`user.username`, not `user` with its groups and extra map), and it
/// knows only its own `get_field`.
pub(super) fn unless_parquet(
    plan: LogicalPlan,
    f: impl Fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    if super::reads_parquet(&plan) {
        return Ok(Transformed::no(plan));
    }
    plan.transform_up_with_subqueries(|node| node.map_expressions(&f))
}

/// `e` with [`GetField`] in place of each DataFusion `get_field`, and
/// [`GetItem`](super::map_item::GetItem) in place of a literal index into one.
pub(super) fn fast(e: Expr) -> Result<Transformed<Expr>> {
    e.transform_up(|e| match e {
        Expr::ScalarFunction(f) if f.func.inner().is::<GetFieldFunc>() => Ok(Transformed::yes(
            Expr::ScalarFunction(ScalarFunction::new_udf(GET_FIELD.clone(), f.args)),
        )),
        e => Ok(super::map_item::fuse(e)),
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Int64Builder, ListBuilder, MapBuilder, RecordBatch, StringArray, StringBuilder, StructArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::query::map_item::GetItem;

    /// A key of a few, so rows repeat keys (the first counts) and lack them.
    fn key(rng: &mut fastrand::Rng) -> String {
        format!("k{}", rng.u8(..4))
    }

    /// Random rows: `m`, a text map, and `s`, a struct of a name and a map
    /// of text lists (as `user.extra`), with NULL maps, values and lists,
    /// empty maps and repeated keys.
    fn table(seed: u64) -> MemTable {
        let mut rng = fastrand::Rng::with_seed(seed);
        let batches: Vec<RecordBatch> = (0..rng.usize(1..5))
            .map(|_| {
                let n = rng.usize(1..200);
                let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
                let mut extra = MapBuilder::new(
                    None,
                    StringBuilder::new(),
                    ListBuilder::new(StringBuilder::new()),
                );
                // Keys that are not text: left to DataFusion's.
                let mut im = MapBuilder::new(
                    None,
                    Int64Builder::new(),
                    ListBuilder::new(StringBuilder::new()),
                );
                let mut l = ListBuilder::new(StringBuilder::new());
                for _ in 0..n {
                    for _ in 0..rng.usize(..4) {
                        let v = (rng.u8(..) > 40).then(|| format!("e{}", rng.u8(..3)));
                        l.values().append_option(v);
                    }
                    l.append(rng.u8(..) > 30);
                    for _ in 0..rng.usize(..4) {
                        m.keys().append_value(key(&mut rng));
                        let v = (rng.u8(..) > 40).then(|| format!("v{}", rng.u8(..5)));
                        m.values().append_option(v);
                        extra.keys().append_value(key(&mut rng));
                        let list = extra.values();
                        for _ in 0..rng.usize(..3) {
                            list.values().append_value(format!("a{}", rng.u8(..5)));
                        }
                        list.append(rng.u8(..) > 30);
                    }
                    for _ in 0..rng.usize(..3) {
                        im.keys().append_value(rng.i64(..3));
                        im.values()
                            .values()
                            .append_value(format!("i{}", rng.u8(..5)));
                        im.values().append(true);
                    }
                    m.append(rng.u8(..) > 20).expect("a map row");
                    extra.append(rng.u8(..) > 20).expect("a map row");
                    im.append(true).expect("a map row");
                }
                let (m, extra) = (Arc::new(m.finish()), Arc::new(extra.finish()));
                let im = Arc::new(im.finish());
                let names: StringArray = (0..n).map(|i| Some(format!("n{i}"))).collect();
                let s = StructArray::from(vec![
                    (
                        Arc::new(Field::new("name", DataType::Utf8, true)),
                        Arc::new(names) as ArrayRef,
                    ),
                    (
                        Arc::new(Field::new("extra", extra.data_type().clone(), true)),
                        extra as ArrayRef,
                    ),
                ]);
                let schema = Schema::new(vec![
                    Field::new("m", m.data_type().clone(), true),
                    Field::new("s", s.data_type().clone(), true),
                    Field::new("im", im.data_type().clone(), true),
                    Field::new("l", l.finish_cloned().data_type().clone(), true),
                ]);
                RecordBatch::try_new(
                    Arc::new(schema),
                    vec![m, Arc::new(s), im, Arc::new(l.finish())],
                )
                .expect("a batch of the schema")
            })
            .collect();
        MemTable::try_new(batches[0].schema(), vec![batches])
            .expect("a table of the batches' schema")
    }

    /// Whether the optimized plan of `sql` calls [`GetField`] or [`GetItem`].
    async fn calls_ours(ctx: &SessionContext, sql: &str) -> bool {
        let df = ctx.sql(sql).await.expect("the query plans");
        let optimized = ctx
            .state()
            .optimize(df.logical_plan())
            .expect("the plan optimizes");
        let mut used = false;
        optimized
            .apply_with_subqueries(|node| {
                node.apply_expressions(|e| {
                    e.apply(|e| {
                        if let Expr::ScalarFunction(f) = e {
                            used |=
                                f.func.inner().is::<GetField>() || f.func.inner().is::<GetItem>();
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })
                })
            })
            .expect("walking the plan");
        used
    }

    fn session(ours: bool) -> SessionContext {
        if ours {
            crate::query::context(2).expect("a session")
        } else {
            SessionContext::new()
        }
    }

    /// `sql`'s answer, and whether its plan calls [`GetField`].
    async fn answer(seed: u64, ours: bool, sql: &str) -> (String, bool) {
        let ctx = session(ours);
        ctx.register_table("t", Arc::new(table(seed)))
            .expect("registering the table");
        let used = calls_ours(&ctx, sql).await;
        (crate::query::printed(&ctx, sql).await, used)
    }

    #[tokio::test]
    async fn looks_up_what_datafusions_get_field_looks_up() {
        let queries = [
            "select m['k0'] as a, m['k1'] as b, m['none'] as c from t",
            "select s.name, s.extra['k2'] as l, s.extra['k2'][1] as f, s['extra']['k0'] as g from t",
            "select count(*) as n from t where m['k3'] = 'v1' or s.extra['k1'][2] is not null",
            "select m['k0'] as v, count(*) as n from t group by 1 order by 1",
            // Indexes into a looked-up list: first, second, none (0), the
            // last, past the end; over a map whose keys are not text; in
            // a filter and as a group.
            "select s.extra['k0'][1] as a, s.extra['k1'][2] as b, s.extra['k2'][0] as c, \
             s.extra['k3'][-1] as d, s.extra['k0'][4] as e, im[1][1] as f from t",
            "select s.extra['k1'][1] as v, count(*) as n from t \
             where s.extra['k2'][1] is null or s.extra['k0'][-2] = 'a1' group by 1 order by 1",
            // Into a list column.
            "select l[1] as a, l[2] as b, l[-1] as c, l[0] as d, count(*) as n from t \
             group by 1, 2, 3, 4 order by 1, 2, 3, 4",
        ];
        for seed in 0..16 {
            for sql in queries {
                let (theirs, used) = answer(seed, false, sql).await;
                assert!(!used);
                let (ours, used) = answer(seed, true, sql).await;
                assert!(used, "{sql}: the plan kept DataFusion's get_field");
                assert_eq!(ours, theirs, "seed {seed}: {sql}");
            }
        }
    }

    #[tokio::test]
    async fn leaves_parquet_scans_to_datafusions() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("t.parquet");
        let ctx = session(true);
        ctx.register_table("t", Arc::new(table(1)))
            .expect("registering the table");
        let df = ctx.sql("select * from t").await.expect("the query plans");
        let opts = datafusion::dataframe::DataFrameWriteOptions::new();
        df.write_parquet(path.to_str().expect("a UTF-8 path"), opts, None)
            .await
            .expect("writing Parquet");
        ctx.register_parquet(
            "p",
            path.to_str().expect("a UTF-8 path"),
            Default::default(),
        )
        .await
        .expect("registering the Parquet file");
        assert!(calls_ours(&ctx, "select m['k0'] from t").await);
        for sql in [
            "select s.name from p",
            "select m['k0'], s.extra['k1'] from p",
        ] {
            assert!(!calls_ours(&ctx, sql).await, "{sql}");
        }
    }
}
