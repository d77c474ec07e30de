//! The JSON shapes audit events travel in when they leave CloudWatch Logs:
//! subscription-filter payloads (Kinesis / Firehose), `aws logs
//! filter-log-events` / `get-log-events` output and Logs Insights
//! `get-query-results` output. A top-level JSON value is classified by its
//! keys; anything that is not one of these is taken to be an event itself.

use serde::Deserialize;

/// One log event inside a wrapper.
#[derive(Debug, Deserialize)]
pub struct LogEvent {
    /// `id` in subscription payloads, `eventId` in CLI output.
    #[serde(alias = "eventId")]
    pub id: Option<String>,
    pub timestamp: Option<i64>,
    #[serde(rename = "ingestionTime")]
    pub ingestion_time: Option<i64>,
    #[serde(rename = "logStreamName")]
    pub log_stream_name: Option<String>,
    pub message: Option<String>,
}

/// One `{"field": ..., "value": ...}` cell of a Logs Insights result row.
#[derive(Debug, Deserialize)]
pub struct InsightsCell {
    pub field: String,
    pub value: Option<String>,
}

pub type InsightsRow = Vec<InsightsCell>;

/// The keys that tell wrappers apart. Unknown keys (every audit field) are
/// skipped unparsed.
#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(rename = "messageType")]
    message_type: Option<String>,
    #[serde(rename = "logGroup")]
    log_group: Option<String>,
    #[serde(rename = "logStream")]
    log_stream: Option<String>,
    #[serde(rename = "logEvents")]
    log_events: Option<Vec<LogEvent>>,
    events: Option<Vec<LogEvent>>,
    results: Option<Vec<InsightsRow>>,
}

/// What a top-level JSON value is.
#[derive(Debug)]
pub enum TopLevel {
    /// Anything else: handed to the decoder as an audit event (which reports
    /// it if it is not one).
    Event,
    /// A CloudWatch subscription-filter payload.
    Subscription {
        control: bool,
        log_group: Option<String>,
        log_stream: Option<String>,
        log_events: Vec<LogEvent>,
    },
    /// `aws logs filter-log-events` / `get-log-events` output.
    CliEvents(Vec<LogEvent>),
    /// `aws logs get-query-results` output, or a bare array of its rows.
    Insights(Vec<InsightsRow>),
}

/// Classifies one complete top-level JSON value.
pub fn classify(value: &[u8]) -> TopLevel {
    match value.first() {
        Some(b'[') => {
            // An array nested in a top-level array: one Insights row.
            match serde_json::from_slice::<InsightsRow>(value) {
                Ok(row) => TopLevel::Insights(vec![row]),
                Err(_) => TopLevel::Event,
            }
        }
        Some(b'{') => match serde_json::from_slice::<Probe>(value) {
            Ok(p) if p.message_type.is_some() || p.log_events.is_some() => TopLevel::Subscription {
                control: p.message_type.as_deref() == Some("CONTROL_MESSAGE"),
                log_group: p.log_group,
                log_stream: p.log_stream,
                log_events: p.log_events.unwrap_or_default(),
            },
            Ok(Probe {
                events: Some(events),
                ..
            }) => TopLevel::CliEvents(events),
            Ok(Probe {
                results: Some(rows),
                ..
            }) => TopLevel::Insights(rows),
            _ => TopLevel::Event,
        },
        _ => TopLevel::Event,
    }
}

/// The parts of an Insights row that locate an event.
#[derive(Debug, Default)]
pub struct InsightsFields<'a> {
    pub message: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub ingestion_time: Option<&'a str>,
    pub log_stream: Option<&'a str>,
    /// `@log` is `<account>:<log group>`.
    pub log_group: Option<&'a str>,
}

pub fn insights_fields(row: &InsightsRow) -> InsightsFields<'_> {
    let mut out = InsightsFields::default();
    for cell in row {
        let v = cell.value.as_deref();
        match cell.field.as_str() {
            "@message" => out.message = v,
            "@timestamp" => out.timestamp = v,
            "@ingestionTime" => out.ingestion_time = v,
            "@logStream" => out.log_stream = v,
            "@log" => out.log_group = v.map(|l| l.split_once(':').map_or(l, |(_, g)| g)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_wrappers_apart() {
        let sub = br#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"/aws/eks/c/cluster","logStream":"kube-apiserver-audit-1","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":5,"message":"{}"}]}"#;
        assert!(
            matches!(classify(sub), TopLevel::Subscription { control: false, log_events, .. } if log_events.len() == 1)
        );
        let cli = br#"{"events":[{"logStreamName":"s","timestamp":1,"message":"m","ingestionTime":2,"eventId":"e"}],"searchedLogStreams":[]}"#;
        match classify(cli) {
            TopLevel::CliEvents(ev) => assert_eq!(ev[0].id.as_deref(), Some("e")),
            other => panic!("{other:?}"),
        }
        let ins = br#"{"results":[[{"field":"@message","value":"{}"},{"field":"@log","value":"123:/aws/eks/c/cluster"}]],"status":"Complete"}"#;
        match classify(ins) {
            TopLevel::Insights(rows) => {
                assert_eq!(
                    insights_fields(&rows[0]).log_group,
                    Some("/aws/eks/c/cluster")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(br#"{"kind":"Event"}"#), TopLevel::Event));
        assert!(matches!(classify(br#"{"kind":"Event""#), TopLevel::Event));
    }
}
