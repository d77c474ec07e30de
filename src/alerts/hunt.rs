//! Hunting: every rule over a set of inputs of any size, in memory bounded
//! by the rules' state, not by the input.
//!
//! Batches are evaluated as they are decoded (each rule's plan made once).
//! What a rule matches waits in a small reorder buffer until the input has
//! moved `lateness` past it, and is then fed to the rule's memory in time
//! order: inside one file, kube-apiserver writes an event when the request
//! completes, so a 9-minute watch lands behind events received after it.
//! Alerts are written as soon as they are final (no later event can change
//! them) and no alert still to come can sort before them, so the stream is
//! in the same order, with the same ids, as evaluating the whole input as
//! one batch: ordered by first event, rule, id.
//!
//! A matching event more than `lateness` older than the newest event read
//! before it is evaluated late (out of time order) and counted; the count
//! is reported, so a user whose inputs overlap more (exports of several
//! streams given one after the other) knows to raise `--lateness`.

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::TimestampMicrosecondType;

use super::engine::{Alert, Outcome};
use super::hit::Hit;
use super::{AlertError, Engine};
use crate::schema::Column;

/// How many events one evaluation takes (several decoded chunks): larger
/// batches amortise each rule's run, smaller ones bound memory.
const BATCH_EVENTS: usize = 32_768;

/// Evaluation of a whole input, batch by batch.
pub struct Hunt {
    engine: Engine,
    /// `None`: hold every match to the end (exact time order, memory grows
    /// with the matches).
    lateness_us: Option<i64>,
    /// The longest threshold window: an alert still to come starts no
    /// earlier than this before the events released so far.
    max_window_us: i64,
    /// Per rule: matches not yet fed, waiting for the input to move on.
    buffers: Vec<Vec<Hit>>,
    /// Matches at or before this time (µs) have been fed.
    released_to: Option<i64>,
    /// The newest event time read (µs).
    newest: Option<i64>,
    late: u64,
    /// Final alerts not yet written, in output order.
    pending: BTreeMap<(String, String, String), Alert>,
    written: HashSet<String>,
    /// Decoded events not yet evaluated (see [`add`](Self::add)), and
    /// how many rows they hold.
    waiting: Vec<RecordBatch>,
    waiting_rows: usize,
}

/// What a hunt saw besides its alerts.
#[derive(Debug, Default, Clone, Copy)]
pub struct HuntStats {
    /// Matching events evaluated out of time order (see the module notes).
    pub late: u64,
    /// The most matching events waiting in the reorder buffer at once.
    pub max_buffered: usize,
}

impl Hunt {
    pub fn new(engine: Engine, lateness_us: Option<i64>) -> Self {
        let max_window_us = engine
            .rules()
            .iter()
            .filter_map(|r| r.threshold.map(|(_, w)| w))
            .max()
            .unwrap_or(0);
        let buffers = vec![Vec::new(); engine.rules().len()];
        Self {
            engine,
            lateness_us,
            max_window_us,
            buffers,
            released_to: None,
            newest: None,
            late: 0,
            pending: BTreeMap::new(),
            written: HashSet::new(),
            waiting: Vec::new(),
            waiting_rows: 0,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The columns to decode (see [`Engine::columns`]).
    pub async fn columns(&mut self) -> Result<Vec<Column>, AlertError> {
        self.engine.columns().await
    }

    /// Takes decoded events, evaluating them [`BATCH_EVENTS`] at a time;
    /// returns the alerts that became final.
    pub async fn add(
        &mut self,
        batch: RecordBatch,
        stats: &mut HuntStats,
    ) -> Result<Vec<Alert>, AlertError> {
        self.waiting_rows += batch.num_rows();
        self.waiting.push(batch);
        if self.waiting_rows < BATCH_EVENTS {
            return Ok(Vec::new());
        }
        self.evaluate_waiting(stats).await
    }

    /// The end of the input: evaluates what [`add`](Self::add) holds,
    /// then [`finish`](Self::finish)es.
    pub async fn end(mut self, stats: &mut HuntStats) -> Result<Vec<Alert>, AlertError> {
        let mut out = self.evaluate_waiting(stats).await?;
        out.extend(self.finish(stats));
        Ok(out)
    }

    async fn evaluate_waiting(&mut self, stats: &mut HuntStats) -> Result<Vec<Alert>, AlertError> {
        let batches = std::mem::take(&mut self.waiting);
        if std::mem::take(&mut self.waiting_rows) == 0 {
            return Ok(Vec::new());
        }
        self.push(&batches, stats).await
    }

    /// Evaluates a batch of events; returns the alerts that became final
    /// and can be written, in output order.
    async fn push(
        &mut self,
        batches: &[RecordBatch],
        stats: &mut HuntStats,
    ) -> Result<Vec<Alert>, AlertError> {
        let hits = self.engine.hits(batches).await?;
        for (buf, hits) in self.buffers.iter_mut().zip(hits) {
            if let Some(done) = self.released_to {
                self.late += hits.iter().filter(|h| h.ts_us <= done).count() as u64;
            }
            buf.extend(hits);
        }
        stats.max_buffered = stats
            .max_buffered
            .max(self.buffers.iter().map(Vec::len).sum());
        if let Some(n) = batches.iter().filter_map(newest_us).max() {
            self.newest = Some(self.newest.map_or(n, |m| m.max(n)));
        }
        stats.late = self.late;
        match (self.lateness_us, self.newest) {
            (Some(lateness), Some(newest)) => Ok(self.release(newest.saturating_sub(lateness))),
            _ => Ok(Vec::new()),
        }
    }

    /// The end of the input: everything is fed, every incident closed.
    fn finish(mut self, stats: &mut HuntStats) -> Vec<Alert> {
        let mut out = self.release(i64::MAX);
        for alert in self.engine.finish() {
            self.hold(alert);
        }
        out.extend(self.write_until(None));
        stats.late = self.late;
        out
    }

    /// Feeds every buffered match at or before `cut`, in time order.
    fn release(&mut self, cut: i64) -> Vec<Alert> {
        let mut out = Outcome::default();
        let mut ready = Vec::new();
        for (i, buf) in self.buffers.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            // Stable, and quick on the long sorted runs this usually is.
            buf.sort_by(|a, b| (a.ts_us, a.audit_id()).cmp(&(b.ts_us, b.audit_id())));
            let n = buf.partition_point(|h| h.ts_us <= cut);
            if n > 0 {
                let rest = buf.split_off(n);
                ready.push((i, std::mem::replace(buf, rest)));
            }
        }
        self.engine.feed_all(ready, &mut out);
        if self.released_to.is_none_or(|r| cut > r) {
            self.released_to = Some(cut);
            if cut != i64::MAX {
                self.engine.expire(cut, &mut out);
            }
        }
        for alert in out.closed {
            self.hold(alert);
        }
        // An alert raised later starts after `cut - max_window`; one still
        // open started when it did. Nothing after either can be written yet.
        let mut safe = cut.saturating_sub(self.max_window_us);
        if let Some(open) = self.engine.earliest_open() {
            safe = safe.min(open.saturating_sub(1));
        }
        self.write_until(Some(safe))
    }

    fn hold(&mut self, alert: Alert) {
        let key = (
            alert.first_seen.clone(),
            alert.rule.clone(),
            alert.id.clone(),
        );
        self.pending.insert(key, alert);
    }

    /// The held alerts that start at or before `safe` (all with `None`),
    /// in order; an id written before (the same event read twice) is not
    /// written again.
    fn write_until(&mut self, safe: Option<i64>) -> Vec<Alert> {
        let bound = safe.map(super::engine::format_us);
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if bound
                .as_ref()
                .is_some_and(|b| entry.key().0.as_str() > b.as_str())
            {
                break;
            }
            let alert = entry.remove();
            if self.written.insert(alert.id.clone()) {
                out.push(alert);
            }
        }
        out
    }
}

/// The newest event time in a batch (µs): received, else CloudWatch time.
fn newest_us(batch: &RecordBatch) -> Option<i64> {
    let schema = crate::schema::audit_schema();
    [Column::RequestReceivedTimestamp, Column::LogTimestamp]
        .iter()
        .filter_map(|c| batch.column_by_name(schema.field(c.index()).name()))
        .filter_map(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        .filter(|a| a.null_count() < a.len())
        .filter_map(max)
        .max()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::alerts::{AlertsConfig, PARALLEL_FEED, load_rules, ndjson_batch};
    use crate::synth::{Mix, ndjson_mix};

    #[tokio::test]
    async fn rules_fed_on_all_cores_raise_what_they_raise_one_after_another() {
        let rules = load_rules(None, &AlertsConfig::default()).expect("the shipped rules");
        let mut text = ndjson_mix(12_000, 5, Mix::Busy);
        text.extend(ndjson_mix(12_000, 6, Mix::Default));
        let text = String::from_utf8(text).expect("generated text");
        let batch = ndjson_batch(Path::new("gen.ndjson"), &text).expect("events");
        let mut one = Engine::new(rules.clone());
        let hits = one.hits(&[batch]).await.expect("matching");
        let total: usize = hits.iter().map(Vec::len).sum();
        let matched = hits.iter().filter(|h| !h.is_empty()).count();
        assert!(
            total >= PARALLEL_FEED && matched >= 5,
            "{total} hits of {matched} rules"
        );

        let mut all = Engine::new(rules);
        let (mut a, mut b) = (Outcome::default(), Outcome::default());
        for (i, h) in hits.iter().enumerate() {
            if !h.is_empty() {
                one.feed(i, h.clone(), &mut a);
            }
        }
        let ready = hits.into_iter().enumerate().filter(|(_, h)| !h.is_empty());
        all.feed_all(ready.collect(), &mut b);
        assert!(!a.new.is_empty());
        assert_eq!(a.new, b.new);
        assert_eq!(a.closed, b.closed);
        // Still open at the end: each rule's in no set order.
        let open = |e: &mut Engine| {
            let mut v = e.finish();
            v.sort_by(|x, y| x.id.cmp(&y.id));
            v
        };
        assert_eq!(open(&mut one), open(&mut all));
    }
}
