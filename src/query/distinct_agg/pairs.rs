//! One hash table of (group, value) pairs for every group of a `GROUP BY`,
//! behind `array_agg(DISTINCT ...)` over text and lists of text.

use std::hash::BuildHasher;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, ListArray, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::hash_utils::RandomState;
use datafusion::common::{HashMap, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

/// The values aggregated: text, or lists of text (`user.groups`), each list
/// stored as one value (see [`encode_list`]).
#[derive(Clone)]
pub(super) enum Input {
    Text,
    /// The lists' element field, as the input type names it.
    TextList(FieldRef),
}

impl Input {
    pub(super) fn of(data_type: &DataType) -> Option<Input> {
        match data_type {
            DataType::Utf8 => Some(Input::Text),
            DataType::List(f) if f.data_type() == &DataType::Utf8 => {
                Some(Input::TextList(f.clone()))
            }
            _ => None,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Input::Text => DataType::Utf8,
            Input::TextList(f) => DataType::List(f.clone()),
        }
    }
}

/// One distinct value of one group: its bytes in `text`, and the next
/// pair with the same hash.
struct Pair {
    group: u32,
    start: usize,
    end: usize,
    next: Option<u32>,
}

/// Every group's distinct values.
pub(super) struct DistinctText {
    input: Input,
    ignore_nulls: bool,
    /// First pair of each hash of (group, value).
    heads: HashMap<u64, u32>,
    pairs: Vec<Pair>,
    text: Vec<u8>,
    /// The groups that saw a NULL value.
    saw_null: Vec<bool>,
    /// Seeded per accumulator: values (user agents, URIs) come from
    /// whoever calls the API, and must not be able to aim at one chain.
    hasher: RandomState,
}

/// A list of text as one value: per element a tag (0 NULL, 1 text), then
/// the text's length (4 bytes, little-endian) and bytes.
fn encode_list(list: &ListArray, row: usize, out: &mut Vec<u8>) {
    let elements = list.values().as_string::<i32>();
    let offsets = list.value_offsets();
    out.clear();
    for j in offsets[row] as usize..offsets[row + 1] as usize {
        if elements.is_null(j) {
            out.push(0);
            continue;
        }
        let bytes = elements.value(j).as_bytes();
        out.push(1);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Appends the elements of a list [`encode_list`] wrote; returns how many.
fn decode_list(mut bytes: &[u8], elements: &mut StringBuilder) -> usize {
    let mut n = 0;
    while let Some((&tag, rest)) = bytes.split_first() {
        n += 1;
        if tag == 0 {
            elements.append_null();
            bytes = rest;
            continue;
        }
        let (len, rest) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
        let (text, rest) = rest.split_at(len);
        elements.append_value(std::str::from_utf8(text).expect("stored from text"));
        bytes = rest;
    }
    n
}

/// The rows of one input array, read as stored values.
enum View<'a> {
    Text(&'a StringArray),
    TextList(&'a ListArray),
}

impl<'a> View<'a> {
    fn of(input: &Input, array: &'a ArrayRef) -> View<'a> {
        match input {
            Input::Text => View::Text(array.as_string::<i32>()),
            Input::TextList(_) => View::TextList(array.as_list::<i32>()),
        }
    }

    /// Row `i`'s value (None for NULL); a list is encoded into `buf`.
    fn value<'b>(&'b self, i: usize, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
        match self {
            View::Text(a) => a.is_valid(i).then(|| a.value(i).as_bytes()),
            View::TextList(a) => a.is_valid(i).then(|| {
                encode_list(a, i, buf);
                &buf[..]
            }),
        }
    }
}

/// The values of the emitted lists, built from stored values.
enum Values {
    Text(StringBuilder),
    TextList {
        field: FieldRef,
        elements: StringBuilder,
        lengths: Vec<usize>,
        valid: Vec<bool>,
    },
}

impl Values {
    fn new(input: &Input, capacity: usize) -> Self {
        match input {
            Input::Text => Values::Text(StringBuilder::with_capacity(capacity, 0)),
            Input::TextList(field) => Values::TextList {
                field: field.clone(),
                elements: StringBuilder::new(),
                lengths: Vec::with_capacity(capacity),
                valid: Vec::with_capacity(capacity),
            },
        }
    }

    fn append(&mut self, stored: &[u8]) {
        match self {
            Values::Text(b) => {
                b.append_value(std::str::from_utf8(stored).expect("stored from text"))
            }
            Values::TextList {
                elements,
                lengths,
                valid,
                ..
            } => {
                lengths.push(decode_list(stored, elements));
                valid.push(true);
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            Values::Text(b) => b.append_null(),
            Values::TextList { lengths, valid, .. } => {
                lengths.push(0);
                valid.push(false);
            }
        }
    }

    fn finish(self) -> Result<ArrayRef> {
        Ok(match self {
            Values::Text(mut b) => Arc::new(b.finish()),
            Values::TextList {
                field,
                mut elements,
                lengths,
                valid,
            } => Arc::new(ListArray::try_new(
                field,
                OffsetBuffer::from_lengths(lengths),
                Arc::new(elements.finish()),
                Some(NullBuffer::from(valid)),
            )?),
        })
    }
}

impl DistinctText {
    pub(super) fn new(input: Input, ignore_nulls: bool) -> Self {
        Self::empty(
            input,
            ignore_nulls,
            RandomState::with_seed(fastrand::u64(..)),
        )
    }

    fn empty(input: Input, ignore_nulls: bool, hasher: RandomState) -> Self {
        Self {
            input,
            ignore_nulls,
            heads: HashMap::default(),
            pairs: Vec::new(),
            text: Vec::new(),
            saw_null: Vec::new(),
            hasher,
        }
    }

    fn insert(&mut self, group: usize, value: Option<&[u8]>) {
        let Some(value) = value else {
            if !self.ignore_nulls {
                self.saw_null[group] = true;
            }
            return;
        };
        let group = u32::try_from(group).expect("fewer than 2^32 groups");
        let hash = self.hasher.hash_one((group, value));
        let head = self.heads.get(&hash).copied();
        let mut at = head;
        while let Some(i) = at {
            let pair = &self.pairs[i as usize];
            if pair.group == group && &self.text[pair.start..pair.end] == value {
                return;
            }
            at = pair.next;
        }
        let start = self.text.len();
        self.text.extend_from_slice(value);
        let index = u32::try_from(self.pairs.len()).expect("fewer than 2^32 values");
        self.pairs.push(Pair {
            group,
            start,
            end: self.text.len(),
            next: head,
        });
        self.heads.insert(hash, index);
    }

    /// The lists of the groups `emit_to` names; the others are kept,
    /// renumbered from 0.
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.saw_null.len();
        let emitted = match emit_to {
            EmitTo::All => groups,
            EmitTo::First(n) => n.min(groups),
        };
        let mut lengths = vec![0usize; emitted];
        for pair in &self.pairs {
            if let Some(len) = lengths.get_mut(pair.group as usize) {
                *len += 1;
            }
        }
        // Each emitted group's values, in order of group.
        let mut slots = vec![0usize; emitted + 1];
        for g in 0..emitted {
            slots[g + 1] = slots[g] + lengths[g];
        }
        let mut order = vec![0u32; slots[emitted]];
        let mut next = slots.clone();
        for (i, pair) in self.pairs.iter().enumerate() {
            let g = pair.group as usize;
            if g < emitted {
                order[next[g]] = i as u32;
                next[g] += 1;
            }
        }
        let mut values = Values::new(&self.input, order.len());
        let mut offsets = Vec::with_capacity(emitted);
        let mut valid = Vec::with_capacity(emitted);
        for g in 0..emitted {
            for &i in &order[slots[g]..slots[g + 1]] {
                let pair = &self.pairs[i as usize];
                values.append(&self.text[pair.start..pair.end]);
            }
            if self.saw_null[g] {
                values.append_null();
            }
            offsets.push(lengths[g] + usize::from(self.saw_null[g]));
            valid.push(offsets[g] > 0);
        }
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(self.input.data_type(), true)),
            OffsetBuffer::from_lengths(offsets),
            values.finish()?,
            Some(NullBuffer::from(valid)),
        )?;
        self.keep_from(emitted);
        Ok(Arc::new(list))
    }

    /// Drops the groups before `first`, renumbering the rest from 0.
    fn keep_from(&mut self, first: usize) {
        let mut kept = Self::empty(self.input.clone(), self.ignore_nulls, self.hasher.clone());
        kept.saw_null = self.saw_null[first..].to_vec();
        let first = first as u32;
        for pair in self.pairs.iter().filter(|p| p.group >= first) {
            kept.insert(
                (pair.group - first) as usize,
                Some(&self.text[pair.start..pair.end]),
            );
        }
        *self = kept;
    }

    fn grow(&mut self, total_num_groups: usize) {
        if self.saw_null.len() < total_num_groups {
            self.saw_null.resize(total_num_groups, false);
        }
    }
}

/// Whether row `i` passes the aggregate's `FILTER` (a NULL does not).
fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for DistinctText {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let view = View::of(&self.input, &values[0]);
        let mut buf = Vec::new();
        for (i, &group) in group_indices.iter().enumerate() {
            if passes(opt_filter, i) {
                self.insert(group, view.value(i, &mut buf));
            }
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let lists = values[0].as_list::<i32>();
        let view = View::of(&self.input, lists.values());
        let offsets = lists.value_offsets();
        let mut buf = Vec::new();
        for (i, &group) in group_indices.iter().enumerate() {
            if lists.is_null(i) {
                continue;
            }
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                // A NULL in a state is a NULL value seen.
                let value = view.value(j, &mut buf);
                if value.is_some() || !self.ignore_nulls {
                    self.insert(group, value);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    /// Each row as a state of its own: a list of its value, or NULL (no
    /// value) when the row is filtered out or an ignored NULL.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = &values[0];
        let valid = (0..values.len())
            .map(|i| passes(opt_filter, i) && (values.is_valid(i) || !self.ignore_nulls))
            .collect::<Vec<_>>();
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(self.input.data_type(), true)),
            OffsetBuffer::from_lengths(std::iter::repeat_n(1, values.len())),
            values.clone(),
            Some(NullBuffer::from(valid)),
        )?;
        Ok(vec![Arc::new(list)])
    }

    fn size(&self) -> usize {
        self.text.capacity()
            + self.pairs.capacity() * size_of::<Pair>()
            + self.heads.capacity() * (size_of::<(u64, u32)>() + 1)
            + self.saw_null.capacity()
    }
}
