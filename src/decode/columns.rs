//! Arrow builders for the audit schema's columns, one per projected column.
//! Each knows how to take its value from a parsed event and how to finish
//! into an array of exactly the schema's type.

use std::sync::Arc;

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int32Builder, ListBuilder, MapBuilder, StringBuilder,
    StructArray, TimestampMicrosecondBuilder, UInt64Builder, new_null_array,
};
use datafusion::arrow::datatypes::Fields as ArrowFields;
use datafusion::arrow::error::ArrowError;

use super::event::{Event, ObjectRef, ResponseStatus, Times, UserInfo};
use super::fast::Fields;
use super::lenient::{Int, Map, Presence, StrList};
use crate::schema::{self, Column};
use crate::source::Message;

/// Everything one row is built from.
pub struct Row<'r, 'a> {
    pub event: &'r Event<'a>,
    pub times: Times,
    pub msg: &'r Message,
    pub text: &'r str,
    /// CloudWatch cut the event short; `event` holds the fields before the cut.
    pub truncated: bool,
}

type StrListBuilder = ListBuilder<StringBuilder>;

fn str_list(b: &mut StrListBuilder, v: &StrList<'_>) {
    match v {
        StrList::Value(items) => {
            for item in items {
                b.values().append_option(item.as_deref());
            }
            b.append(true);
        }
        _ => b.append(false),
    }
}

/// A child of a struct column: built only when the query reads it (nested
/// projection); otherwise it finishes as an all-null array, without a
/// per-row append.
fn child<B>(fields: Fields, i: usize, make: impl FnOnce() -> B) -> Option<B> {
    fields.has(i).then(make)
}

/// Finishes a struct column from its children (None: not read, all null).
fn finish_struct(
    fields: ArrowFields,
    children: Vec<Option<&mut dyn ArrayBuilder>>,
    nulls: &mut NullBufferBuilder,
) -> Result<ArrayRef, ArrowError> {
    let len = nulls.len();
    let arrays = children
        .into_iter()
        .zip(fields.iter())
        .map(|(b, f)| match b {
            Some(b) => b.finish(),
            None => new_null_array(f.data_type(), len),
        })
        .collect();
    Ok(Arc::new(StructArray::try_new(
        fields,
        arrays,
        nulls.finish(),
    )?))
}

/// `user` / `impersonatedUser`.
pub struct UserBuilder {
    username: Option<StringBuilder>,
    uid: Option<StringBuilder>,
    groups: Option<StrListBuilder>,
    extra: Option<MapBuilder<StringBuilder, StrListBuilder>>,
    nulls: NullBufferBuilder,
}

impl UserBuilder {
    fn new(cap: usize, f: Fields) -> Self {
        Self {
            username: child(f, 0, || StringBuilder::with_capacity(cap, cap * 16)),
            uid: child(f, 1, || StringBuilder::with_capacity(cap, cap * 8)),
            groups: child(f, 2, || ListBuilder::new(StringBuilder::new())),
            extra: child(f, 3, || {
                MapBuilder::new(
                    None,
                    StringBuilder::new(),
                    ListBuilder::new(StringBuilder::new()),
                )
            }),
            nulls: NullBufferBuilder::new(cap),
        }
    }

    fn append(&mut self, u: &UserInfo<'_>) -> Result<(), ArrowError> {
        if let Some(b) = &mut self.username {
            b.append_option(u.username.get());
        }
        if let Some(b) = &mut self.uid {
            b.append_option(u.uid.get());
        }
        if let Some(b) = &mut self.groups {
            str_list(b, &u.groups);
        }
        if let Some(b) = &mut self.extra {
            match &u.extra {
                Map::Value(entries) => {
                    for (k, v) in entries {
                        b.keys().append_value(k);
                        str_list(b.values(), v);
                    }
                    b.append(true)?;
                }
                _ => b.append(false)?,
            }
        }
        self.nulls.append(u.presence == Presence::Present);
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let children: Vec<Option<&mut dyn ArrayBuilder>> = vec![
            self.username.as_mut().map(|b| b as _),
            self.uid.as_mut().map(|b| b as _),
            self.groups.as_mut().map(|b| b as _),
            self.extra.as_mut().map(|b| b as _),
        ];
        finish_struct(schema::user_fields(), children, &mut self.nulls)
    }
}

/// A struct of nullable strings (`objectRef`).
pub struct ObjectRefBuilder {
    fields: Vec<Option<StringBuilder>>,
    nulls: NullBufferBuilder,
}

impl ObjectRefBuilder {
    fn new(cap: usize, f: Fields) -> Self {
        Self {
            fields: (0..schema::OBJECT_REF_FIELDS.len())
                .map(|i| child(f, i, || StringBuilder::with_capacity(cap, cap * 8)))
                .collect(),
            nulls: NullBufferBuilder::new(cap),
        }
    }

    fn append(&mut self, o: &ObjectRef<'_>) {
        for (b, v) in self.fields.iter_mut().zip(o.fields()) {
            if let Some(b) = b {
                b.append_option(v.get());
            }
        }
        self.nulls.append(o.presence == Presence::Present);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let children = self
            .fields
            .iter_mut()
            .map(|b| b.as_mut().map(|b| b as &mut dyn ArrayBuilder))
            .collect();
        finish_struct(schema::object_ref_fields(), children, &mut self.nulls)
    }
}

/// `responseStatus`.
pub struct StatusBuilder {
    code: Option<Int32Builder>,
    status: Option<StringBuilder>,
    reason: Option<StringBuilder>,
    message: Option<StringBuilder>,
    nulls: NullBufferBuilder,
}

impl StatusBuilder {
    fn new(cap: usize, f: Fields) -> Self {
        Self {
            code: child(f, 0, || Int32Builder::with_capacity(cap)),
            status: child(f, 1, StringBuilder::new),
            reason: child(f, 2, StringBuilder::new),
            message: child(f, 3, StringBuilder::new),
            nulls: NullBufferBuilder::new(cap),
        }
    }

    fn append(&mut self, s: &ResponseStatus<'_>) {
        if let Some(b) = &mut self.code {
            b.append_option(match s.code {
                Int::Value(c) => i32::try_from(c).ok(),
                _ => None,
            });
        }
        for (b, v) in [
            (&mut self.status, &s.status),
            (&mut self.reason, &s.reason),
            (&mut self.message, &s.message),
        ] {
            if let Some(b) = b {
                b.append_option(v.get());
            }
        }
        self.nulls.append(s.presence == Presence::Present);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let children: Vec<Option<&mut dyn ArrayBuilder>> = vec![
            self.code.as_mut().map(|b| b as _),
            self.status.as_mut().map(|b| b as _),
            self.reason.as_mut().map(|b| b as _),
            self.message.as_mut().map(|b| b as _),
        ];
        finish_struct(schema::response_status_fields(), children, &mut self.nulls)
    }
}

/// The builder of one projected column.
pub enum Builder {
    Str(StringBuilder),
    StrList(StrListBuilder),
    StrMap(MapBuilder<StringBuilder, StringBuilder>),
    User(Box<UserBuilder>),
    ObjectRef(ObjectRefBuilder),
    Status(StatusBuilder),
    Time(TimestampMicrosecondBuilder),
    U64(UInt64Builder),
    Bool(BooleanBuilder),
}

impl Builder {
    /// The builder of `col` for `cap` rows; `fields` are the children a
    /// struct column builds (the others finish all null); a string column
    /// makes room for `bytes` of values (more than its default guess).
    pub fn new(col: Column, cap: usize, fields: Fields, bytes: usize) -> Self {
        let time =
            || Builder::Time(TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC"));
        match col {
            Column::User | Column::ImpersonatedUser => {
                Builder::User(Box::new(UserBuilder::new(cap, fields)))
            }
            Column::SourceIps => Builder::StrList(ListBuilder::new(StringBuilder::new())),
            Column::ObjectRef => Builder::ObjectRef(ObjectRefBuilder::new(cap, fields)),
            Column::ResponseStatus => Builder::Status(StatusBuilder::new(cap, fields)),
            Column::Annotations => Builder::StrMap(MapBuilder::new(
                None,
                StringBuilder::new(),
                StringBuilder::new(),
            )),
            Column::RequestReceivedTimestamp
            | Column::StageTimestamp
            | Column::LogTimestamp
            | Column::IngestionTime => time(),
            Column::SourceLine => Builder::U64(UInt64Builder::with_capacity(cap)),
            Column::Truncated => Builder::Bool(BooleanBuilder::with_capacity(cap)),
            Column::Kind
            | Column::ApiVersion
            | Column::Level
            | Column::AuditId
            | Column::Stage
            | Column::RequestUri
            | Column::Verb
            | Column::UserAgent
            | Column::RequestObject
            | Column::ResponseObject
            | Column::Cluster
            | Column::LogGroup
            | Column::LogStream
            | Column::EventId
            | Column::SourceFile
            | Column::Raw => Builder::Str(StringBuilder::with_capacity(cap, bytes.max(cap * 16))),
        }
    }

    /// The bytes of values a string column holds so far.
    pub fn value_bytes(&self) -> Option<usize> {
        match self {
            Builder::Str(b) => Some(b.values_slice().len()),
            _ => None,
        }
    }

    /// Appends column `col` of one row.
    pub fn append(&mut self, col: Column, row: &Row<'_, '_>) -> Result<(), ArrowError> {
        let ev = row.event;
        let origin = &row.msg.origin;
        let ms_to_us = |ms: Option<i64>| ms.and_then(|v| v.checked_mul(1000));
        match self {
            Builder::Str(b) => {
                let v: Option<&str> = match col {
                    Column::Kind => ev.kind.get(),
                    Column::ApiVersion => ev.api_version.get(),
                    Column::Level => ev.level.get(),
                    Column::AuditId => ev.audit_id.get(),
                    Column::Stage => ev.stage.get(),
                    Column::RequestUri => ev.request_uri.get(),
                    Column::Verb => ev.verb.get(),
                    Column::UserAgent => ev.user_agent.get(),
                    Column::RequestObject => ev.request_object.get(),
                    Column::ResponseObject => ev.response_object.get(),
                    Column::Cluster => origin.cluster.as_deref(),
                    Column::LogGroup => origin.log_group.as_deref(),
                    Column::LogStream => origin.log_stream.as_deref(),
                    Column::EventId => row.msg.cw.event_id.as_deref(),
                    Column::SourceFile => Some(&origin.file),
                    Column::Raw => Some(row.text),
                    _ => unreachable!("column {col:?} has no string builder"),
                };
                b.append_option(v);
            }
            Builder::StrList(b) => str_list(b, &ev.source_ips),
            Builder::StrMap(b) => match &ev.annotations {
                Map::Value(entries) => {
                    for (k, v) in entries {
                        b.keys().append_value(k);
                        b.values().append_option(v.get());
                    }
                    b.append(true)?;
                }
                _ => b.append(false)?,
            },
            Builder::User(b) => b.append(match col {
                Column::User => &ev.user,
                _ => &ev.impersonated_user,
            })?,
            Builder::ObjectRef(b) => b.append(&ev.object_ref),
            Builder::Status(b) => b.append(&ev.response_status),
            Builder::Time(b) => b.append_option(match col {
                Column::RequestReceivedTimestamp => row.times.received_us,
                Column::StageTimestamp => row.times.stage_us,
                Column::LogTimestamp => ms_to_us(row.msg.cw.timestamp_ms),
                _ => ms_to_us(row.msg.cw.ingestion_ms),
            }),
            // Within the chunk, for a chunk the decoder frames (see `numbered`).
            Builder::U64(b) => b.append_value(row.msg.line),
            Builder::Bool(b) => b.append_value(row.truncated),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::StrList(b) => Arc::new(b.finish()),
            Builder::StrMap(b) => Arc::new(b.finish()),
            Builder::User(b) => b.finish()?,
            Builder::ObjectRef(b) => b.finish()?,
            Builder::Status(b) => b.finish()?,
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::U64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
        })
    }
}
