//! Predicates evaluated conjunct by conjunct, each over the rows the ones
//! before it left, and shared between predicates.
//!
//! DataFusion evaluates `a AND b` by evaluating `b` over every row unless
//! `a` is false for all rows, or true for at most a fifth of them *and
//! null for none*. A rule's `objectRef.resource = 'pods'` is null for every
//! request without an object (`/healthz`, `/metrics`, ...), so `b`, an
//! `exec_command(requestURI)` with a regular expression, ran over every
//! event of the batch, for each of the rules that test exec commands.
//!
//! A rule only asks where its predicate is *true* (null is not a match),
//! so `a AND b AND c` is true exactly where each of `a`, `b` and `c` is:
//! each conjunct is evaluated over the rows where all before it were true,
//! the plain comparisons before the function calls. Rules that begin with
//! the same conjuncts (`objectRef.resource = 'pods' and
//! objectRef.subresource = 'exec'`) evaluate them once per batch. A
//! predicate that is a disjunction (a sequence's steps: `(step 1) or
//! (step 2)`) is true where any of its conjunctions is.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::utils::{split_binary, split_conjunction};
use datafusion::logical_expr::{Expr, Operator};
use datafusion::prelude::SessionContext;

use super::exprs::{One, Planned};
use crate::error::Result;

/// A cheap conjunct true for at most this share of the rows left is
/// evaluated over those rows only (as DataFusion's `AND` does); above it,
/// over all rows, since cutting out the rows costs about what it saves.
const CHEAP_PRESELECT: f64 = 0.2;

/// The distinct conjuncts of a set of predicates, planned.
#[derive(Debug, Default)]
pub(super) struct Conjuncts {
    parts: Vec<Part>,
    /// Per expression: the conjunctions it is the disjunction of, each as
    /// its conjuncts (indices into `parts`) in the order they are
    /// evaluated; empty for one that is not a predicate.
    of: Vec<Vec<Vec<usize>>>,
}

#[derive(Debug)]
struct Part {
    one: One,
    /// A function call (a regular expression, a JSON path, an IP parse):
    /// evaluated after the plain comparisons, over the rows they leave.
    costly: bool,
}

impl Conjuncts {
    /// The conjuncts of each predicate among `planned` (each planned
    /// expression with its simplified form), over the leaves `full`.
    pub(super) fn plan(
        ctx: &SessionContext,
        planned: &[(One, Expr)],
        full: &Schema,
    ) -> Planned<Self> {
        let mut out = Self::default();
        let mut seen: HashMap<&Expr, usize> = HashMap::new();
        for (i, (one, e)) in planned.iter().enumerate() {
            let mut mine = Vec::new();
            if one.is_boolean() {
                for any in split_binary(e, Operator::Or) {
                    let mut all = split_conjunction(any)
                        .into_iter()
                        .map(|part| out.part(&mut seen, ctx, part, full))
                        .collect::<DfResult<Vec<_>>>()
                        .map_err(|e| (i, e.into()))?;
                    // Stable: the cheap ones first, each kind as written.
                    all.sort_by_key(|&p| out.parts[p].costly);
                    mine.push(all);
                }
                if mine
                    .iter()
                    .flatten()
                    .any(|&p| !out.parts[p].one.is_boolean())
                {
                    mine.clear();
                }
            }
            out.of.push(mine);
        }
        Ok(out)
    }

    /// Where conjunct `e` is among the parts, planned when first met.
    fn part<'e>(
        &mut self,
        seen: &mut HashMap<&'e Expr, usize>,
        ctx: &SessionContext,
        e: &'e Expr,
        full: &Schema,
    ) -> DfResult<usize> {
        if let Some(&id) = seen.get(e) {
            return Ok(id);
        }
        let (one, _) = One::plan(ctx, e.clone(), full)?;
        self.parts.push(Part {
            one,
            costly: costly(e),
        });
        seen.insert(e, self.parts.len() - 1);
        Ok(self.parts.len() - 1)
    }

    /// An evaluation of the predicates over `bound` (a batch bound to the
    /// expressions' leaves); `whole` are the expressions themselves.
    pub(super) fn masks<'a>(&'a self, whole: &'a [One], bound: &'a RecordBatch) -> Masks<'a> {
        Masks {
            conjuncts: self,
            whole,
            bound,
            done: HashMap::new(),
        }
    }
}

/// Whether `e` calls a function other than taking a field or an element.
fn costly(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|e| {
        if let Expr::ScalarFunction(f) = e
            && !super::map_item::walks_fields(f.name())
            && f.name() != "array_element"
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The predicates over one batch: see [`Masks::of`].
pub struct Masks<'a> {
    conjuncts: &'a Conjuncts,
    whole: &'a [One],
    bound: &'a RecordBatch,
    /// Where each sequence of conjuncts evaluated so far is true.
    done: HashMap<Vec<usize>, BooleanBuffer>,
}

impl Masks<'_> {
    /// Where predicate `i` is true (false where it is false or null).
    pub fn of(&mut self, i: usize) -> Result<BooleanBuffer> {
        let conjuncts = self.conjuncts;
        let disjuncts = &conjuncts.of[i];
        if disjuncts.is_empty() {
            let one = &self.whole[i];
            return truthy(&one.run(self.bound.project(&one.columns)?)?);
        }
        let mut any: Option<BooleanBuffer> = None;
        for all in disjuncts {
            let m = self.all(all)?;
            any = Some(match any {
                Some(a) => &a | &m,
                None => m,
            });
        }
        Ok(any.expect("a predicate has a conjunct"))
    }

    /// Where every one of `parts` is true.
    fn all(&mut self, parts: &[usize]) -> Result<BooleanBuffer> {
        let mut mask: Option<BooleanBuffer> = None;
        for n in 1..=parts.len() {
            let key = &parts[..n];
            if let Some(m) = self.done.get(key) {
                mask = Some(m.clone());
                continue;
            }
            let m = self.step(mask.as_ref(), parts[n - 1])?;
            self.done.insert(key.to_vec(), m.clone());
            mask = Some(m);
        }
        Ok(mask.expect("a conjunction has a conjunct"))
    }

    /// Where conjunct `p` is true among the rows `rows` picks (all rows
    /// without it).
    fn step(&self, rows: Option<&BooleanBuffer>, p: usize) -> Result<BooleanBuffer> {
        let part = &self.conjuncts.parts[p];
        let input = self.bound.project(&part.one.columns)?;
        let Some(rows) = rows else {
            return truthy(&part.one.run(input)?);
        };
        let picked = rows.count_set_bits();
        if picked == 0 {
            return Ok(rows.clone());
        }
        let share = picked as f64 / rows.len() as f64;
        if picked == rows.len() || (!part.costly && share > CHEAP_PRESELECT) {
            return Ok(&truthy(&part.one.run(input)?)? & rows);
        }
        let mask = BooleanArray::new(rows.clone(), None);
        let sub = truthy(&part.one.run(filter_record_batch(&input, &mask)?)?)?;
        Ok(scatter(rows, &sub))
    }
}

/// Where a predicate's value is true.
fn truthy(value: &ArrayRef) -> Result<BooleanBuffer> {
    let value = value.as_boolean_opt().ok_or_else(|| {
        DataFusionError::Internal(format!("a predicate gave {}", value.data_type()))
    })?;
    Ok(match value.nulls() {
        Some(valid) => value.values() & valid.inner(),
        None => value.values().clone(),
    })
}

/// The bits of `sub` (one per row `rows` picks) put back at those rows;
/// false elsewhere.
fn scatter(rows: &BooleanBuffer, sub: &BooleanBuffer) -> BooleanBuffer {
    let mut out = vec![false; rows.len()];
    for (k, i) in rows.set_indices().enumerate() {
        out[i] = sub.value(k);
    }
    BooleanBuffer::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertsConfig, load_rules, ndjson_batch};
    use crate::query::Exprs;
    use crate::synth::{Mix, ndjson_mix};
    use proptest::prelude::*;

    /// Events of both generated mixes, so rules match and fields are null.
    fn events() -> RecordBatch {
        let mut text = ndjson_mix(3000, 7, Mix::Busy);
        text.extend(ndjson_mix(3000, 8, Mix::Default));
        let text = String::from_utf8(text).expect("generated text");
        ndjson_batch(std::path::Path::new("gen.ndjson"), &text).expect("events")
    }

    /// Checks, slice by slice, that every predicate's mask is where its
    /// whole expression is true; returns how many rows each matched.
    fn agree(sqls: &[String], events: &RecordBatch, slice: usize) -> Vec<usize> {
        let exprs = Exprs::plan(sqls).expect("planning");
        let mut matched = vec![0; sqls.len()];
        for start in (0..events.num_rows()).step_by(slice) {
            let batch = events.slice(start, slice.min(events.num_rows() - start));
            let bound = exprs.bind(&batch).expect("binding");
            let mut masks = exprs.masks(&bound);
            // Backwards too, so a memo made by one predicate serves another.
            for i in (0..sqls.len()).rev() {
                let whole =
                    truthy(&exprs.evaluate(i, &bound).expect("evaluating")).expect("a predicate");
                let mask = masks.of(i).expect("masking");
                assert_eq!(mask, whole, "{} at rows {start}..", sqls[i]);
                matched[i] += mask.count_set_bits();
            }
        }
        matched
    }

    #[test]
    fn the_shipped_rules_match_as_their_whole_predicates() {
        let rules = load_rules(None, &AlertsConfig::default()).expect("rules");
        let sqls: Vec<String> = rules.iter().filter_map(|r| r.predicate.clone()).collect();
        assert!(sqls.len() > 40, "{}", sqls.len());
        let matched = agree(&sqls, &events(), 1024);
        let firing = matched.iter().filter(|&&n| n > 0).count();
        assert!(firing >= 10, "only {firing} rules matched: {matched:?}");
    }

    /// Tests of fields that are null for some events, true or false for
    /// others, and functions (costly ones) of them.
    const ATOMS: &[&str] = &[
        "verb = 'get'",
        "verb in ('create', 'update', 'patch')",
        "objectRef.resource = 'pods'",
        "objectRef.namespace is null",
        "objectRef.subresource = 'exec'",
        "responseStatus.code >= 400",
        "user.username like 'system:%'",
        "is_system_user(user.username)",
        "annotations['authorization.k8s.io/decision'] = 'allow'",
        "regexp_like(requestURI, 'exec|log')",
        "sourceIPs[1] like '10.%'",
        "array_has(user.groups, 'system:masters')",
        "true",
        "cast(null as boolean)",
    ];

    fn predicate() -> impl Strategy<Value = String> {
        let atom = proptest::sample::select(ATOMS).prop_map(String::from);
        atom.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4)
                    .prop_map(|v| format!("({})", v.join(" and "))),
                proptest::collection::vec(inner.clone(), 2..4)
                    .prop_map(|v| format!("({})", v.join(" or "))),
                inner.prop_map(|p| format!("not ({p})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_predicate_matches_as_its_whole_expression(
            sqls in proptest::collection::vec(predicate(), 1..6),
            slice in 50usize..900,
        ) {
            thread_local!(static EVENTS: RecordBatch = events());
            EVENTS.with(|e| agree(&sqls, e, slice));
        }
    }
}
