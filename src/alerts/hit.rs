//! One event a rule matched, and the columns an alert takes from it.
//!
//! Most matches never become the first event of an alert: they fold into an
//! incident already open, fall inside a first-seen baseline, or wait in a
//! threshold window that never fills. What every match needs is its audit
//! ID, its time and the rule's keys; the twelve descriptive columns (who,
//! ARN, source IP, ...) are needed only when an alert is raised. So a hit
//! points at its row in the batch's hit columns and reads them on demand;
//! [`Hit::own`] copies them out when the hit outlives its batch (a
//! threshold window or a sequence kept across batches). Its audit ID and
//! keys are read from the batch the same way: a match that a first-seen
//! baseline already knows is dropped without a string ever being copied
//! out for it. Serialised, a hit is the same either way: the columns by
//! name.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::buffer::BooleanBuffer;
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
        self.keyed(row, Keys::owned(keys))
    }

    /// The hit of row `row`, its keys read from `keys`: the key columns
    /// `of` (the rule's, in its order) at row `key_row` of the batch.
    pub fn hit_of(
        self: &Arc<Self>,
        row: usize,
        keys: &Arc<KeyColumns>,
        of: &Arc<[usize]>,
        key_row: usize,
    ) -> Hit {
        self.keyed(
            row,
            Keys::Row {
                columns: keys.clone(),
                of: of.clone(),
                row: key_row,
            },
        )
    }

    fn keyed(self: &Arc<Self>, row: usize, keys: Keys) -> Hit {
        Hit {
            ts_us: self.ts.get(row).copied().unwrap_or(0),
            keys,
            fields: Fields::Row(self.clone(), row),
        }
    }

    fn audit_id(&self, row: usize) -> Option<&str> {
        let a = self.audit_id.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }

    fn text(&self, column: usize, row: usize) -> Option<&str> {
        let a = self.text.get(column)?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
}

/// The rules' key expressions over the rows of one batch, as text: each
/// computed over the rows of the rules that use it.
#[derive(Debug)]
pub struct KeyColumns(Vec<Option<(StringArray, Rank)>>);

impl KeyColumns {
    /// Per key expression: its values over the rows it was computed for,
    /// and where each row of the batch is among them (`None`: no rule of
    /// the batch's hits uses it).
    pub fn new(columns: Vec<Option<(StringArray, Rank)>>) -> Self {
        Self(columns)
    }

    fn value(&self, key: usize, row: usize) -> Option<&str> {
        let (a, at) = self.0.get(key)?.as_ref()?;
        let row = at.of(row);
        a.is_valid(row).then(|| a.value(row))
    }
}

/// Row number in a batch → row number among the rows a mask picks.
#[derive(Debug)]
pub struct Rank(Vec<u32>);

impl Rank {
    pub fn new(picked: &BooleanBuffer, rows: usize) -> Self {
        let mut rank = vec![0u32; rows];
        for (n, i) in picked.set_indices().enumerate() {
            rank[i] = n as u32;
        }
        Self(rank)
    }

    pub fn of(&self, row: usize) -> usize {
        self.0[row] as usize
    }
}

/// One event a rule's query matched.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Microseconds since the epoch (0 when the event has no time).
    pub ts_us: i64,
    /// The audit ID and the hit columns by name (`who`, `source_ip`, ...).
    fields: Fields,
    /// `k0`, `k1`, ...: the rule's key expressions.
    keys: Keys,
}

/// The audit ID and text columns of a hit: still in its batch, or its own.
#[derive(Debug, Clone)]
enum Fields {
    Row(Arc<HitColumns>, usize),
    Owned {
        audit_id: Option<Box<str>>,
        text: Box<[Option<Box<str>>]>,
    },
}

/// The key values of a hit: still in its batch, or its own.
#[derive(Debug, Clone)]
enum Keys {
    Row {
        columns: Arc<KeyColumns>,
        of: Arc<[usize]>,
        row: usize,
    },
    Owned(Box<[Option<Box<str>>]>),
}

impl Keys {
    /// Keys of the hit's own, from their values.
    fn owned<S: Into<Box<str>>>(values: impl IntoIterator<Item = Option<S>>) -> Self {
        Keys::Owned(values.into_iter().map(|k| k.map(Into::into)).collect())
    }

    fn len(&self) -> usize {
        match self {
            Keys::Row { of, .. } => of.len(),
            Keys::Owned(values) => values.len(),
        }
    }

    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Keys::Row { columns, of, row } => columns.value(*of.get(i)?, *row),
            Keys::Owned(values) => values.get(i)?.as_deref(),
        }
    }

    fn all(&self) -> Vec<Option<&str>> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
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

    /// The audit ID, if the event has one.
    pub fn audit_id(&self) -> Option<&str> {
        match &self.fields {
            Fields::Row(columns, row) => columns.audit_id(*row),
            Fields::Owned { audit_id, .. } => audit_id.as_deref(),
        }
    }

    /// Key number `i` of the rule (`k0`, `k1`, ...), if not null.
    pub fn key(&self, i: usize) -> Option<&str> {
        self.keys.get(i)
    }

    /// Copies the hit's columns and keys out of its batch, so that keeping
    /// the hit does not keep the batch.
    pub fn own(&mut self) {
        if let Fields::Row(..) = &self.fields {
            let text = (0..HIT_COLUMNS.len() - TEXT)
                .map(|c| self.fields.get(c).map(Box::from))
                .collect();
            self.fields = Fields::Owned {
                audit_id: self.audit_id().map(Box::from),
                text,
            };
        }
        if let Keys::Row { .. } = &self.keys {
            self.keys = Keys::owned(self.keys.all());
        }
    }

    /// The values of the keys at `idx`.
    pub fn key_values<'a>(&'a self, idx: &'a [usize]) -> impl Iterator<Item = Option<&'a str>> {
        idx.iter().map(|&i| self.keys.get(i))
    }
}

impl Fields {
    /// Text column number `column` (counted from the first text column).
    fn get(&self, column: usize) -> Option<&str> {
        match self {
            Fields::Row(columns, row) => columns.text(column, *row),
            Fields::Owned { text, .. } => text.get(column)?.as_deref(),
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
        (self.audit_id(), self.ts_us, self.keys.all())
            == (other.audit_id(), other.ts_us, other.keys.all())
            && self.fields.named() == other.fields.named()
    }
}

impl Eq for Hit {}

/// A hit as the daemon's state has always held it: the audit ID, the
/// time, the non-null columns by name (in name order) and the keys.
#[derive(Serialize)]
struct Written<'a> {
    audit_id: Option<&'a str>,
    ts_us: i64,
    fields: BTreeMap<&'static str, &'a str>,
    keys: Vec<Option<&'a str>>,
}

#[derive(Deserialize)]
struct Read {
    audit_id: Option<String>,
    ts_us: i64,
    fields: BTreeMap<String, String>,
    keys: Vec<Option<String>>,
}

impl Serialize for Hit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Written {
            audit_id: self.audit_id(),
            ts_us: self.ts_us,
            fields: self.fields.named(),
            keys: self.keys.all(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut read = Read::deserialize(d)?;
        let text = HIT_COLUMNS[TEXT..]
            .iter()
            .map(|(n, _)| read.fields.remove(*n).map(Box::from))
            .collect();
        Ok(Hit {
            ts_us: read.ts_us,
            fields: Fields::Owned {
                audit_id: read.audit_id.map(Box::from),
                text,
            },
            keys: Keys::owned(read.keys),
        })
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
        assert_eq!(second.audit_id(), None);
        assert_eq!(second.ts_us, 0);
        assert_eq!(second.field("who"), Some("user2"));
        assert_eq!(second.field("verb"), Some("get"));
        assert_eq!(second.field("arn"), None);
        assert_eq!(second.field("no-such-column"), None);
        let before = second.clone();
        second.own();
        assert!(matches!(second.fields, Fields::Owned { .. }));
        assert_eq!(second, before);
        assert_eq!(second.field("who"), Some("user2"));
    }

    #[test]
    fn keys_read_from_the_batch_are_those_of_its_row_and_own_the_same() {
        let cols = columns();
        let picked = |rows: &[bool]| BooleanBuffer::from(rows);
        // A batch of three rows: key 0 computed over rows 0 and 2, key 1
        // over row 2 only; the rule's keys are key 1, then key 0.
        let keys = Arc::new(KeyColumns::new(vec![
            Some((
                StringArray::from(vec![Some("x"), None]),
                Rank::new(&picked(&[true, false, true]), 3),
            )),
            Some((
                StringArray::from(vec!["z"]),
                Rank::new(&picked(&[false, false, true]), 3),
            )),
            None,
        ]));
        let of: Arc<[usize]> = vec![1, 0].into();
        let mut hit = cols.hit_of(1, &keys, &of, 2);
        assert_eq!(
            (hit.key(0), hit.key(1), hit.key(2)),
            (Some("z"), None, None)
        );
        assert_eq!(
            hit.key_values(&[1, 0]).collect::<Vec<_>>(),
            [None, Some("z")]
        );
        let first = cols.hit_of(0, &keys, &of, 0);
        assert_eq!(first.key(1), Some("x"));
        assert_eq!(first.audit_id(), Some("a1"));
        let json = serde_json::to_string(&hit).expect("serialising");
        assert!(json.ends_with(r#""keys":["z",null]}"#), "{json}");
        let before = hit.clone();
        hit.own();
        assert!(matches!(hit.keys, Keys::Owned(_)));
        assert_eq!(hit, before);
        assert_eq!(serde_json::to_string(&hit).expect("serialising"), json);
        assert_ne!(first, before);
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
