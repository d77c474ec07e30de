//! THE audit schema: one fixed Arrow schema for `audit.k8s.io/v1` Events plus
//! the columns that say where each event came from.
//!
//! There is no inference anywhere in eksaudit. Nested objects stay nested
//! (structs, lists, maps) so that `user.username` or `objectRef.resource` read
//! in SQL exactly as in the JSON and in CloudWatch Logs Insights.
//! `requestObject` / `responseObject` are arbitrary JSON and are kept verbatim
//! as JSON text; `raw` is the whole event text, for fields the schema does not
//! name. Both are only materialised when a query reads them.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Column names, in schema order. Use these instead of string literals.
pub mod col {
    pub const KIND: &str = "kind";
    pub const API_VERSION: &str = "apiVersion";
    pub const LEVEL: &str = "level";
    pub const AUDIT_ID: &str = "auditID";
    pub const STAGE: &str = "stage";
    pub const REQUEST_URI: &str = "requestURI";
    pub const VERB: &str = "verb";
    pub const USER: &str = "user";
    pub const IMPERSONATED_USER: &str = "impersonatedUser";
    pub const SOURCE_IPS: &str = "sourceIPs";
    pub const USER_AGENT: &str = "userAgent";
    pub const OBJECT_REF: &str = "objectRef";
    pub const RESPONSE_STATUS: &str = "responseStatus";
    pub const REQUEST_OBJECT: &str = "requestObject";
    pub const RESPONSE_OBJECT: &str = "responseObject";
    pub const REQUEST_RECEIVED_TIMESTAMP: &str = "requestReceivedTimestamp";
    pub const STAGE_TIMESTAMP: &str = "stageTimestamp";
    pub const ANNOTATIONS: &str = "annotations";
    pub const CLUSTER: &str = "cluster";
    pub const LOG_GROUP: &str = "log_group";
    pub const LOG_STREAM: &str = "log_stream";
    pub const EVENT_ID: &str = "event_id";
    pub const LOG_TIMESTAMP: &str = "log_timestamp";
    pub const INGESTION_TIME: &str = "ingestion_time";
    pub const SOURCE_FILE: &str = "source_file";
    pub const SOURCE_LINE: &str = "source_line";
    pub const TRUNCATED: &str = "truncated";
    pub const RAW: &str = "raw";
}

/// Index of every top-level column, in schema order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(usize)]
pub enum Column {
    Kind,
    ApiVersion,
    Level,
    AuditId,
    Stage,
    RequestUri,
    Verb,
    User,
    ImpersonatedUser,
    SourceIps,
    UserAgent,
    ObjectRef,
    ResponseStatus,
    RequestObject,
    ResponseObject,
    RequestReceivedTimestamp,
    StageTimestamp,
    Annotations,
    Cluster,
    LogGroup,
    LogStream,
    EventId,
    LogTimestamp,
    IngestionTime,
    SourceFile,
    SourceLine,
    Truncated,
    Raw,
}

impl Column {
    /// Every column, in schema order.
    pub const ALL: [Column; 28] = [
        Column::Kind,
        Column::ApiVersion,
        Column::Level,
        Column::AuditId,
        Column::Stage,
        Column::RequestUri,
        Column::Verb,
        Column::User,
        Column::ImpersonatedUser,
        Column::SourceIps,
        Column::UserAgent,
        Column::ObjectRef,
        Column::ResponseStatus,
        Column::RequestObject,
        Column::ResponseObject,
        Column::RequestReceivedTimestamp,
        Column::StageTimestamp,
        Column::Annotations,
        Column::Cluster,
        Column::LogGroup,
        Column::LogStream,
        Column::EventId,
        Column::LogTimestamp,
        Column::IngestionTime,
        Column::SourceFile,
        Column::SourceLine,
        Column::Truncated,
        Column::Raw,
    ];

    /// The column at schema position `i`, if any.
    pub fn from_index(i: usize) -> Option<Column> {
        Self::ALL.get(i).copied()
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Microsecond UTC timestamps, as the apiserver writes them.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `List<Utf8>` with a nullable item named `item` (what `ListBuilder` makes).
pub fn string_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The entries struct of a map from strings to `value`.
pub fn map_type(value: DataType) -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", value, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
}

/// Fields of `user` and `impersonatedUser` (authentication.k8s.io UserInfo).
pub fn user_fields() -> Fields {
    Fields::from(vec![
        Field::new("username", DataType::Utf8, true),
        Field::new("uid", DataType::Utf8, true),
        Field::new("groups", string_list_type(), true),
        Field::new("extra", map_type(string_list_type()), true),
    ])
}

/// Fields of `objectRef`.
pub const OBJECT_REF_FIELDS: [&str; 8] = [
    "resource",
    "namespace",
    "name",
    "uid",
    "apiGroup",
    "apiVersion",
    "resourceVersion",
    "subresource",
];

pub fn object_ref_fields() -> Fields {
    OBJECT_REF_FIELDS
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect()
}

/// Fields of `responseStatus` (a metav1.Status, reduced to what audit queries use).
pub fn response_status_fields() -> Fields {
    Fields::from(vec![
        Field::new("code", DataType::Int32, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, true),
    ])
}

fn build_schema() -> Schema {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let fields: Vec<Field> = Column::ALL
        .iter()
        .map(|c| match c {
            Column::Kind => utf8(col::KIND),
            Column::ApiVersion => utf8(col::API_VERSION),
            Column::Level => utf8(col::LEVEL),
            Column::AuditId => utf8(col::AUDIT_ID),
            Column::Stage => utf8(col::STAGE),
            Column::RequestUri => utf8(col::REQUEST_URI),
            Column::Verb => utf8(col::VERB),
            Column::User => Field::new(col::USER, DataType::Struct(user_fields()), true),
            Column::ImpersonatedUser => Field::new(
                col::IMPERSONATED_USER,
                DataType::Struct(user_fields()),
                true,
            ),
            Column::SourceIps => Field::new(col::SOURCE_IPS, string_list_type(), true),
            Column::UserAgent => utf8(col::USER_AGENT),
            Column::ObjectRef => {
                Field::new(col::OBJECT_REF, DataType::Struct(object_ref_fields()), true)
            }
            Column::ResponseStatus => Field::new(
                col::RESPONSE_STATUS,
                DataType::Struct(response_status_fields()),
                true,
            ),
            Column::RequestObject => utf8(col::REQUEST_OBJECT),
            Column::ResponseObject => utf8(col::RESPONSE_OBJECT),
            Column::RequestReceivedTimestamp => {
                Field::new(col::REQUEST_RECEIVED_TIMESTAMP, timestamp_type(), true)
            }
            Column::StageTimestamp => Field::new(col::STAGE_TIMESTAMP, timestamp_type(), true),
            Column::Annotations => Field::new(col::ANNOTATIONS, map_type(DataType::Utf8), true),
            Column::Cluster => utf8(col::CLUSTER),
            Column::LogGroup => utf8(col::LOG_GROUP),
            Column::LogStream => utf8(col::LOG_STREAM),
            Column::EventId => utf8(col::EVENT_ID),
            Column::LogTimestamp => Field::new(col::LOG_TIMESTAMP, timestamp_type(), true),
            Column::IngestionTime => Field::new(col::INGESTION_TIME, timestamp_type(), true),
            Column::SourceFile => utf8(col::SOURCE_FILE),
            Column::SourceLine => Field::new(col::SOURCE_LINE, DataType::UInt64, true),
            // Never null: false unless CloudWatch cut the event short.
            Column::Truncated => Field::new(col::TRUNCATED, DataType::Boolean, false),
            Column::Raw => utf8(col::RAW),
        })
        .collect();
    Schema::new(fields)
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(build_schema()));

/// The audit schema, shared.
pub fn audit_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The cluster name in an EKS control-plane log group `/aws/eks/<cluster>/cluster`.
pub fn cluster_from_log_group(group: &str) -> Option<&str> {
    let rest = group.strip_prefix("/aws/eks/")?;
    let name = rest.strip_suffix("/cluster")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_match_schema_order() {
        let schema = audit_schema();
        assert_eq!(schema.fields().len(), Column::ALL.len());
        for (i, c) in Column::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        assert_eq!(schema.field(Column::Raw.index()).name(), col::RAW);
        assert_eq!(schema.field(Column::User.index()).name(), col::USER);
    }

    #[test]
    fn cluster_names_from_log_groups() {
        assert_eq!(
            cluster_from_log_group("/aws/eks/prod/cluster"),
            Some("prod")
        );
        assert_eq!(cluster_from_log_group("/aws/eks//cluster"), None);
        assert_eq!(cluster_from_log_group("/aws/lambda/x"), None);
    }
}
