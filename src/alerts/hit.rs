//! One event a rule matched, and the columns an alert takes from it.
//!
//! Most matches never become the first event of an alert: they fold into an
//! incident already open, fall inside a first-seen baseline, or wait in a
//! threshold window that never fills. What every match needs is its audit
//! ID, its time and the rule's keys; the twelve descriptive columns (who,
//! ARN, source IP, ...) are needed only when an alert is raised. So a hit
//! points at its row in the batch's hit columns and reads them on demand;
//! [`Hit::own`] copies them out when the hit outlives its batch (a
//! threshold window kept across batches). Serialised, a hit is the same
//! either way: the columns by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rule::HIT_COLUMNS;

/// Where the hit columns' first two are: the audit ID and the event time;
/// the others are text an alert shows.
const AUDIT_ID: usize = 0;
const TS: usize = 1;
const TEXT: usize = 2;

/// The hit columns of some matched rows, as text (times as µs).
#[derive(Debug)]
pub struct HitColumns {
    audit_id: Option<StringArray>,
    ts: Vec<i64>,
    /// `HIT_COLUMNS[TEXT..]`, each present when the rule's output has it.
    text: Vec<Option<StringArray>>,
}

fn as_text(a: &ArrayRef) -> Option<StringArray> {
    cast(a, &DataType::Utf8)
        .ok()
        .map(|a| a.as_string::<i32>().clone())
}

impl HitColumns {
    /// From arrays in `HIT_COLUMNS` order (`None`: a column the rule's
    /// output lacks), all of `rows` rows.
    pub fn new(mut columns: Vec<Option<ArrayRef>>, rows: usize) -> Self {
        columns.resize(HIT_COLUMNS.len(), None);
        let ts = columns[TS]
            .as_ref()
            .and_then(|a| cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok())
            .map(|a| {
                let t = a.as_primitive::<TimestampMicrosecondType>();
                (0..t.len())
                    .map(|r| if t.is_valid(r) { t.value(r) } else { 0 })
                    .collect()
            })
            .unwrap_or_else(|| vec![0; rows]);
        let audit_id = columns[AUDIT_ID].as_ref().and_then(as_text);
        let text = columns[TEXT..]
            .iter()
            .map(|c| c.as_ref().and_then(as_text))
            .collect();
        Self { audit_id, ts, text }
    }

    /// From a query's output, by column name (`auditID` also names the
    /// audit ID, for `sql:` rules that select it as it is).
    pub fn from_batch(batch: &RecordBatch) -> Self {
        let by_name = |n: &str| batch.column_by_name(n).cloned();
        let columns = HIT_COLUMNS
            .iter()
            .map(|(name, _)| match *name {
                "audit_id" => by_name(name).or_else(|| by_name("auditID")),
                _ => by_name(name),
            })
            .collect();
        Self::new(columns, batch.num_rows())
    }

    /// The hit of row `row`, with the rule's keys.
    pub fn hit(self: &Arc<Self>, row: usize, keys: Vec<Option<String>>) -> Hit {
        Hit {
            audit_id: self
                .audit_id
                .as_ref()
                .and_then(|a| a.is_valid(row).then(|| a.value(row).to_string())),
            ts_us: self.ts.get(row).copied().unwrap_or(0),
            keys,
            fields: Fields::Row(self.clone(), row),
        }
    }

    fn text(&self, column: usize, row: usize) -> Option<&str> {
        let a = self.text.get(column)?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
}

/// One event a rule's query matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub audit_id: Option<String>,
    /// Microseconds since the epoch (0 when the event has no time).
    pub ts_us: i64,
    /// The hit columns by name (`who`, `source_ip`, ...), where not null.
    fields: Fields,
    /// `k0`, `k1`, ...: the rule's key expressions.
    pub keys: Vec<Option<String>>,
}

/// The text columns of a hit: still in its batch, or its own.
#[derive(Debug, Clone)]
enum Fields {
    Row(Arc<HitColumns>, usize),
    Owned(Box<[Option<Box<str>>]>),
}

impl Hit {
    /// The hit column `name` (one of `HIT_COLUMNS`), if not null.
    pub fn field(&self, name: &str) -> Option<&str> {
        let column = HIT_COLUMNS
            .iter()
            .skip(TEXT)
            .position(|(n, _)| *n == name)?;
        self.fields.get(column)
    }

    /// Copies the hit's columns out of its batch, so that keeping the hit
    /// does not keep the batch.
    pub fn own(&mut self) {
        if let Fields::Row(..) = &self.fields {
            let values = (0..HIT_COLUMNS.len() - TEXT)
                .map(|c| self.fields.get(c).map(Box::from))
                .collect();
            self.fields = Fields::Owned(values);
        }
    }

    /// The values of the keys at `idx`.
    pub fn key_values<'a>(&'a self, idx: &'a [usize]) -> impl Iterator<Item = Option<&'a str>> {
        idx.iter()
            .map(|&i| self.keys.get(i).and_then(|v| v.as_deref()))
    }
}

impl Fields {
    /// Text column number `column` (counted from the first text column).
    fn get(&self, column: usize) -> Option<&str> {
        match self {
            Fields::Row(columns, row) => columns.text(column, *row),
            Fields::Owned(values) => values.get(column)?.as_deref(),
        }
    }

    fn named(&self) -> BTreeMap<&'static str, &str> {
        HIT_COLUMNS[TEXT..]
            .iter()
            .enumerate()
            .filter_map(|(c, (n, _))| Some((*n, self.get(c)?)))
            .collect()
    }
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        (self.audit_id.as_ref(), self.ts_us, &self.keys)
            == (other.audit_id.as_ref(), other.ts_us, &other.keys)
            && self.fields.named() == other.fields.named()
    }
}

impl Eq for Hit {}

/// Written as a map of the non-null columns by name, in name order (what
/// the daemon's state has always held).
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.named().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut named = BTreeMap::<String, String>::deserialize(d)?;
        let values = HIT_COLUMNS[TEXT..]
            .iter()
            .map(|(n, _)| named.remove(*n).map(Box::from))
            .collect();
        Ok(Fields::Owned(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;

    fn columns() -> Arc<HitColumns> {
        let text = |v: Vec<Option<&str>>| Some(Arc::new(StringArray::from(v)) as ArrayRef);
        let mut cols: Vec<Option<ArrayRef>> = vec![
            text(vec![Some("a1"), None]),
            Some(Arc::new(TimestampMicrosecondArray::from(vec![Some(5), None])) as ArrayRef),
        ];
        for (name, _) in &HIT_COLUMNS[TEXT..] {
            cols.push(match *name {
                "who" => text(vec![Some("user1"), Some("user2")]),
                "verb" => text(vec![None, Some("get")]),
                _ => None,
            });
        }
        Arc::new(HitColumns::new(cols, 2))
    }

    #[test]
    fn a_hit_reads_its_row_and_owns_the_same_values() {
        let cols = columns();
        let mut second = cols.hit(1, vec![Some("k".into())]);
        assert_eq!(second.audit_id, None);
        assert_eq!(second.ts_us, 0);
        assert_eq!(second.field("who"), Some("user2"));
        assert_eq!(second.field("verb"), Some("get"));
        assert_eq!(second.field("arn"), None);
        assert_eq!(second.field("no-such-column"), None);
        let before = second.clone();
        second.own();
        assert!(matches!(second.fields, Fields::Owned(_)));
        assert_eq!(second, before);
        assert_eq!(second.field("who"), Some("user2"));
    }

    #[test]
    fn a_hit_serialises_as_named_columns_either_way() {
        let cols = columns();
        let row = cols.hit(0, vec![None]);
        let json = serde_json::to_string(&row).expect("serialising");
        assert_eq!(
            json,
            r#"{"audit_id":"a1","ts_us":5,"fields":{"who":"user1"},"keys":[null]}"#
        );
        let mut owned = row.clone();
        owned.own();
        assert_eq!(serde_json::to_string(&owned).expect("serialising"), json);
        let back: Hit = serde_json::from_str(&json).expect("reading back");
        assert_eq!(back, row);
    }
}
