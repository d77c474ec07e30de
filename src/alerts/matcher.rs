//! Which events of a batch each rule matches, as hits: made once for a rule
//! set, run over batch after batch.
//!
//! A `where:` rule's predicate is an expression ([`query::Exprs`]): each
//! gives a mask over the batch, the masks' union picks the rows any rule
//! matched, and the hit columns and every distinct key expression are
//! computed once, over those rows only. The batch is cut into slices that
//! every core works on. A `sql:` rule (a whole query: joins, aggregates) is
//! a plan run over the batch ([`query::BatchSession`]), as is a `where:`
//! predicate that is not a plain expression (a subquery), so every rule
//! that plans as a query runs.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::DataType;

use super::hit::{Hit, HitColumns, KeyColumns, Rank};
use super::rule::{HIT_COLUMNS, Rule};
use super::{AlertError, located};
use crate::error::Error;
use crate::query::{BatchSession, Exprs, Prepared};
use crate::schema::Column;

/// The most rows one piece of work takes: a daemon's batch or a hunt's
/// decoded blocks are cut so that every core gets some.
const SLICE_ROWS: usize = 8192;

/// Matches in under one row in this many of a slice are few: the hit
/// columns are computed over those rows only (see [`Matcher::slice`]).
const FEW_HITS: usize = 4;

/// How one rule finds its matches.
#[derive(Debug, Clone, Copy)]
enum How {
    /// Its predicate is expression number `n` of `predicates`.
    Predicate(usize),
    /// It runs as a query (the next of `queries`).
    Query,
}

/// The matches of one slice: `(rule, hits)`.
type SliceHits = Vec<(usize, Vec<Hit>)>;

/// The rules' predicates and queries, planned.
pub struct Matcher {
    how: Vec<How>,
    predicates: Option<Predicates>,
    queries: Option<(BatchSession, Vec<Prepared>)>,
    threads: usize,
    /// Per rule: its file and the line of its SQL, for errors.
    at: Vec<(PathBuf, usize)>,
}

impl Matcher {
    /// Plans `rules`; a rule whose SQL does not plan is the error.
    pub async fn new(rules: &[Rule], threads: usize) -> Result<Self, AlertError> {
        let mut as_query: Vec<bool> = rules.iter().map(|r| r.predicate.is_none()).collect();
        // A predicate that does not plan as an expression (or is not true
        // or false) runs as a query instead, whose planning says why.
        let predicates = loop {
            match plan_predicates(rules, &as_query) {
                Ok(planned) => break planned,
                Err(rule) => as_query[rule] = true,
            }
        };
        let mut queries = Vec::new();
        let mut how = Vec::with_capacity(rules.len());
        let mut session = None;
        let mut p = 0;
        for (rule, query) in rules.iter().zip(&as_query) {
            if *query {
                let s = match &mut session {
                    Some(s) => s,
                    None => session.insert(BatchSession::new(threads)?),
                };
                queries.push(
                    s.prepare(&rule.sql)
                        .await
                        .map_err(|e| located(&rule.path, rule.sql_line, e))?,
                );
                how.push(How::Query);
            } else {
                how.push(How::Predicate(p));
                p += 1;
            }
        }
        Ok(Self {
            how,
            predicates,
            queries: session.map(|s| (s, queries)),
            threads: threads.max(1),
            at: rules.iter().map(|r| (r.path.clone(), r.sql_line)).collect(),
        })
    }

    /// The audit columns the rules read, in schema order.
    pub fn columns(&self) -> Vec<Column> {
        let mut columns: Vec<Column> = self
            .predicates
            .iter()
            .flat_map(|p| [&p.exprs, &p.columns])
            .flat_map(Exprs::columns)
            .chain(self.queries.iter().flat_map(|(s, _)| s.columns()))
            .collect();
        columns.sort_by_key(|c| c.index());
        columns.dedup();
        columns
    }

    /// The matches of every rule over `batches`, in rule order, each in
    /// time order (then audit ID).
    pub async fn hits(&self, batches: &[RecordBatch]) -> Result<Vec<Vec<Hit>>, AlertError> {
        let mut out = vec![Vec::new(); self.how.len()];
        if self.predicates.is_some() {
            for per_rule in self.over_slices(&slices(batches))? {
                for (rule, hits) in per_rule {
                    out[rule].extend(hits);
                }
            }
        }
        if let Some((session, queries)) = &self.queries {
            session.load(batches);
            let results = futures::future::join_all(queries.iter().map(Prepared::run)).await;
            // The slot is emptied, so it does not hold the batch until the next.
            session.load(&[]);
            let mut results = results.into_iter();
            for (rule, how) in self.how.iter().enumerate() {
                if let How::Query = how {
                    let result = results.next().expect("one result per query");
                    out[rule] = query_hits(&result.map_err(|e| self.located(rule, e))?);
                }
            }
        }
        for hits in &mut out {
            hits.sort_by(|a, b| (a.ts_us, a.audit_id()).cmp(&(b.ts_us, b.audit_id())));
        }
        Ok(out)
    }

    /// An error running rule number `rule`, at its file and line.
    fn located(&self, rule: usize, e: Error) -> AlertError {
        let (path, line) = &self.at[rule];
        located(path, *line, e)
    }

    /// Runs [`Matcher::slice`] over every slice, on up to `threads`
    /// threads; the results in slice order.
    fn over_slices(&self, slices: &[RecordBatch]) -> Result<Vec<SliceHits>, AlertError> {
        let rows: usize = slices.iter().map(RecordBatch::num_rows).sum();
        let threads = self.threads.min(slices.len());
        if threads <= 1 || rows < SLICE_ROWS / 4 {
            return slices.iter().map(|s| self.slice(s)).collect();
        }
        let mut done = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let mine = slices.iter().enumerate().skip(t).step_by(threads);
                        mine.map(|(i, s)| (i, self.slice(s))).collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
    }

    /// The matches of the predicate rules in one slice: `(rule, hits)`.
    fn slice(&self, batch: &RecordBatch) -> Result<SliceHits, AlertError> {
        let Some(Predicates {
            exprs: predicates,
            columns,
            keys: key_index,
        }) = &self.predicates
        else {
            return Ok(Vec::new());
        };
        let bound = predicates.bind(batch)?;
        let mut masks = Vec::new();
        // Where each predicate is true (null is not a match).
        let mut truth = predicates.masks(&bound);
        let mut union: Option<BooleanBuffer> = None;
        for (rule, how) in self.how.iter().enumerate() {
            let How::Predicate(p) = *how else { continue };
            let mask = truth.of(p).map_err(|e| self.located(rule, e))?;
            union = Some(match union {
                Some(u) => &u | &mask,
                None => mask.clone(),
            });
            masks.push((rule, mask));
        }
        let Some(union) = union.filter(|u| u.count_set_bits() > 0) else {
            return Ok(Vec::new());
        };
        // The hit columns of the rows some rule matched. When those are
        // many, each column is computed over the whole slice (most are a
        // struct's field, no copy) and then cut down: cheaper than first
        // cutting down the structs they read (`user` with its groups and
        // extra map). When they are few, the rows are cut out first, so
        // the map lookups (`user.extra['arn']`) run over them only.
        let bound = columns.bind(batch)?;
        let union_mask = BooleanArray::new(union.clone(), None);
        let few = union.count_set_bits() * FEW_HITS < batch.num_rows();
        let values: Vec<ArrayRef> = (0..HIT_COLUMNS.len())
            .map(|i| {
                if few {
                    return columns.evaluate_rows(i, &bound, &union_mask);
                }
                let all = columns.evaluate(i, &bound)?;
                filter(&all, &union_mask).map_err(|e| Error::Query(e.into()))
            })
            .collect::<Result<_, _>>()?;
        let table = Arc::new(HitColumns::new(
            values.into_iter().map(Some).collect(),
            union.count_set_bits(),
        ));
        let rank = Rank::new(&union, batch.num_rows());
        // A key may be costly (a JSON path into `requestObject`, a pod's
        // images), so each runs over the rows of the rules that use it.
        let mut key_rows: Vec<Option<BooleanBuffer>> =
            vec![None; columns.len() - HIT_COLUMNS.len()];
        for (rule, mask) in &masks {
            for &k in &key_index[*rule] {
                key_rows[k] = Some(match key_rows[k].take() {
                    Some(rows) => &rows | mask,
                    None => mask.clone(),
                });
            }
        }
        let keys = key_rows
            .into_iter()
            .enumerate()
            .map(|(k, rows)| {
                let Some(rows) = rows else { return Ok(None) };
                let rows_mask = BooleanArray::new(rows.clone(), None);
                let values = columns.evaluate_rows(HIT_COLUMNS.len() + k, &bound, &rows_mask)?;
                Ok(Some((text(&values)?, Rank::new(&rows, batch.num_rows()))))
            })
            .collect::<Result<_, AlertError>>()?;
        // Each hit reads its keys from here when asked: a hit dropped
        // unkept (a first-seen key already known) copies none.
        let keys = Arc::new(KeyColumns::new(keys));
        Ok(masks
            .into_iter()
            .map(|(rule, mask)| {
                let of: Arc<[usize]> = key_index[rule].as_slice().into();
                let hits = mask
                    .set_indices()
                    .map(|i| table.hit_of(rank.of(i), &keys, &of, i))
                    .collect();
                (rule, hits)
            })
            .collect())
    }
}

/// The rules that run as predicates, planned.
struct Predicates {
    /// One per such rule, in rule order.
    exprs: Exprs,
    /// `HIT_COLUMNS`, then each distinct key expression of those rules.
    columns: Exprs,
    /// Per rule (all of them): where its keys are among the key expressions.
    keys: Vec<Vec<usize>>,
}

/// Plans the predicates, hit columns and keys of the rules not run as
/// queries (`None`: there are none); the error is the rule (its index)
/// whose expressions do not plan.
fn plan_predicates(rules: &[Rule], as_query: &[bool]) -> Result<Option<Predicates>, usize> {
    let mut owner = Vec::new();
    let mut sqls = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if let (false, Some(p)) = (as_query[i], &rule.predicate) {
            owner.push(i);
            sqls.push(p.clone());
        }
    }
    if sqls.is_empty() {
        return Ok(None);
    }
    let exprs = Exprs::plan(&sqls).map_err(|(i, _)| owner[i])?;
    if let Some(i) = (0..sqls.len()).find(|&i| !exprs.is_boolean(i)) {
        return Err(owner[i]);
    }
    // Key expressions, each once, in the text the rules give them.
    let mut key_sqls: Vec<String> = Vec::new();
    let mut key_owner = Vec::new();
    let mut keys = vec![Vec::new(); rules.len()];
    for &i in &owner {
        for e in &rules[i].keys.exprs {
            let sql = format!("cast({e} as varchar)");
            let k = match key_sqls.iter().position(|s| *s == sql) {
                Some(k) => k,
                None => {
                    key_sqls.push(sql);
                    key_owner.push(i);
                    key_sqls.len() - 1
                }
            };
            keys[i].push(k);
        }
    }
    let column_sqls: Vec<String> = HIT_COLUMNS
        .iter()
        .map(|(_, sql)| sql.to_string())
        .chain(key_sqls)
        .collect();
    let columns = Exprs::plan(&column_sqls).map_err(|(i, _)| {
        // A hit column always plans; a key names its rule.
        key_owner
            .get(i.saturating_sub(HIT_COLUMNS.len()))
            .copied()
            .unwrap_or(owner[0])
    })?;
    Ok(Some(Predicates {
        exprs,
        columns,
        keys,
    }))
}

/// `batches` cut into slices of at most [`SLICE_ROWS`] rows.
fn slices(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for b in batches {
        let mut start = 0;
        while start < b.num_rows() {
            let len = SLICE_ROWS.min(b.num_rows() - start);
            out.push(b.slice(start, len));
            start += len;
        }
    }
    out
}

fn text(a: &ArrayRef) -> Result<StringArray, AlertError> {
    let a = cast(a, &DataType::Utf8).map_err(|e| Error::Query(e.into()))?;
    Ok(a.as_string::<i32>().clone())
}

/// The hits of a query's output: every row, the keys in `k0`, `k1`, ...
fn query_hits(out: &[RecordBatch]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for batch in out {
        let table = Arc::new(HitColumns::from_batch(batch));
        let keys: Vec<Option<StringArray>> = (0..)
            .map_while(|k| batch.column_by_name(&format!("k{k}")))
            .map(|a| text(a).ok())
            .collect();
        for row in 0..batch.num_rows() {
            let keys = keys
                .iter()
                .map(|a| {
                    a.as_ref()
                        .filter(|a| a.is_valid(row))
                        .map(|a| a.value(row).to_string())
                })
                .collect();
            hits.push(table.hit(row, keys));
        }
    }
    hits
}
