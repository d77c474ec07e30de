//! What the report asks of the events (SQL over `audit`, mostly the saved
//! queries, so `query --saved` gives the same rows) and how the answers
//! become the page.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices,
};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};

use crate::alerts::Alert;
use crate::alerts::engine::format_us;
use crate::page::{Cell, Chart, Page, Section, Table, chart};
use crate::query::saved;

/// The identity kinds of the refusal chart, per event (identity-map's
/// kinds, folded to what a glance needs).
const KIND: &str = "case
    when user.username = 'system:anonymous' then 'anonymous'
    when user.username like 'system:serviceaccount:%' then 'service account'
    when user.username like 'system:node:%' then 'node'
    when user.username like 'eks:%' or user.username like 'system:%' then 'control plane'
    when user.extra['canonicalArn'][1] is not null then 'IAM principal'
    else 'other'
  end";

const REFUSED: &str = "(responseStatus.code = 403 \
     or annotations['authorization.k8s.io/decision'] = 'forbid')";

/// One question: an id and its SQL.
pub struct Question {
    pub id: &'static str,
    pub sql: String,
}

fn saved_sql(name: &str) -> String {
    saved::find(name)
        .unwrap_or_else(|| panic!("{name} is a saved query"))
        .sql
        .to_string()
}

/// Every question the page answers, in no particular order.
pub fn questions() -> Vec<Question> {
    let q = |id, sql: String| Question { id, sql };
    vec![
        q(
            "overview",
            format!(
                "select min(requestReceivedTimestamp) as first, \
                 max(requestReceivedTimestamp) as last, count(*) as events, \
                 count(*) filter (where {REFUSED}) as refused, \
                 count(distinct user.username) as identities, \
                 count(distinct sourceIPs[1]) as source_ips, \
                 array_sort(array_agg(distinct cluster) filter (where cluster is not null)) as clusters \
                 from audit"
            ),
        ),
        q(
            "volume",
            format!(
                "select date_bin(interval '1 minute', requestReceivedTimestamp) as minute, \
                 coalesce(verb, '(none)') as verb, {KIND} as kind, count(*) as requests, \
                 count(*) filter (where {REFUSED}) as refused \
                 from audit where requestReceivedTimestamp is not null group by 1, 2, 3"
            ),
        ),
        q("identities", saved_sql("identity-map")),
        q(
            "exec",
            format!(
                "select received, username, source_ip, namespace, pod, subresource, \
                 exec_command(request_uri) as command, code, request_uri from (\n{}\n) as x \
                 order by received",
                saved_sql("exec-into-pods")
            ),
        ),
        q(
            "rbac",
            "select requestReceivedTimestamp as received, user.username as username, verb, \
             objectRef.resource as resource, objectRef.namespace as namespace, \
             objectRef.name as name, json_get_str(requestObject, 'roleRef', 'name') as role, \
             responseStatus.code as code from audit \
             where objectRef.resource in ('roles', 'clusterroles', 'rolebindings', 'clusterrolebindings') \
             and verb in ('create', 'update', 'patch', 'delete', 'deletecollection') \
             order by received, auditID"
                .into(),
        ),
        q("aws-auth", saved_sql("aws-auth-changes")),
        q("anonymous", saved_sql("anonymous-requests")),
        q("refused", saved_sql("forbidden-requests")),
    ]
}

/// The answers, by question id.
pub type Answers = HashMap<&'static str, Vec<RecordBatch>>;

/// What the page says of where its events came from.
pub struct Scope {
    pub title: String,
    pub inputs: String,
    /// `--since`/`--until` as given, if any.
    pub asked: Option<String>,
    /// The window asked for, in µs, to draw the charts over.
    pub range: (Option<i64>, Option<i64>),
    pub rules: usize,
    pub unreadable: u64,
}

pub fn page(scope: &Scope, answers: &Answers, alerts: &[Alert]) -> Page {
    let get = |id: &str| answers.get(id).map(Vec::as_slice).unwrap_or(&[]);
    let overview = get("overview").first();
    let ts = |name: &str| {
        overview
            .and_then(|b| b.column_by_name(name))
            .map(|c| c.as_primitive::<TimestampMicrosecondType>())
            .filter(|c| !c.is_empty() && c.is_valid(0))
            .map(|c| c.value(0))
    };
    let int = |name: &str| {
        overview
            .and_then(|b| b.column_by_name(name))
            .map(|c| c.as_primitive::<Int64Type>().value(0))
            .unwrap_or(0)
    };
    let (first, last) = (ts("first"), ts("last"));
    let clusters = overview
        .map(|b| Table::from_batches(std::slice::from_ref(b), &["clusters"]))
        .and_then(|t| t.rows.first().map(|r| r[0].text.replace('\n', ", ")))
        .unwrap_or_default();
    let identities = sorted(get("identities"), &["hidden_admin", "requests"]);
    let hidden = count_true(&identities, "hidden_admin");
    let exec = Table::from_batches(get("exec"), &[]);

    let mut scope_rows = vec![("Inputs".to_string(), scope.inputs.clone())];
    if let Some(asked) = &scope.asked {
        scope_rows.push(("Asked for".into(), asked.clone()));
    }
    let window = match (first, last) {
        (Some(a), Some(b)) => format!("{} to {}", format_us(a), format_us(b)),
        _ => "no timed events".into(),
    };
    scope_rows.push(("Events from".into(), window));
    if !clusters.is_empty() {
        scope_rows.push(("Clusters".into(), clusters));
    }
    let by_severity = |s: &str| {
        alerts
            .iter()
            .filter(|a| a.severity.to_string() == s)
            .count()
    };
    let facts = vec![
        ("events".to_string(), int("events").to_string()),
        ("identities".into(), int("identities").to_string()),
        ("hidden admins".into(), hidden.to_string()),
        ("refused requests".into(), int("refused").to_string()),
        (
            "alerts (critical/high)".into(),
            format!(
                "{} ({}/{})",
                alerts.len(),
                by_severity("critical"),
                by_severity("high")
            ),
        ),
        ("exec sessions".into(), exec.total.to_string()),
    ];

    let mut activity = Section::new(
        "activity",
        "Activity over time",
        "Requests per time bucket stacked by verb, and refused requests (HTTP 403 or an RBAC \
         forbid) stacked by the kind of identity that made them. Hover a bar for its count.",
        "No events with a time.",
    );
    let range = (scope.range.0.or(first), scope.range.1.or(last));
    activity.charts = volume_charts(get("volume"), range);

    let sections = vec![
        activity,
        Section::new(
            "identities",
            "Identities",
            "Every Kubernetes identity that made a request: its kind, the IAM principal behind \
             it (from user.extra), how its requests were authorized, and whether it is a hidden \
             admin (kubernetes-admin, system:masters, allowed with no RBAC reason, or \
             AmazonEKSClusterAdminPolicy). Hidden admins first, then by requests.",
            "No identities.",
        )
        .with_table(Table::from_batches(
            &identities,
            &[
                "username",
                "kind",
                "hidden_admin",
                "admin_because",
                "canonical_arns",
                "session_names",
                "public_ips",
                "private_ips",
                "requests",
                "writes",
                "refusals",
                "authorized_by",
                "first_seen",
                "last_seen",
            ],
        )),
        Section::new(
            "alerts",
            "Alerts",
            &format!(
                "What the {} alert rules found, most severe first. Each alert stands for the \
                 events whose audit IDs it lists (repeats of one incident folded into one \
                 alert).",
                scope.rules
            ),
            "No alert fired.",
        )
        .with_table(alert_table(alerts)),
        Section::new(
            "exec",
            "Exec sessions",
            "Shells and tunnels into pods (exec, attach, portforward), with the command decoded \
             from the request URI.",
            "No exec, attach or port-forward.",
        )
        .with_table(exec),
        Section::new(
            "rbac",
            "RBAC changes",
            "Roles, ClusterRoles and their bindings created, changed or deleted, with the role a \
             binding grants.",
            "No RBAC change.",
        )
        .with_table(Table::from_batches(get("rbac"), &[])),
        Section::new(
            "aws-auth",
            "aws-auth changes",
            "Writes to kube-system/aws-auth, the ConfigMap that maps IAM principals to \
             Kubernetes users and groups.",
            "No write to aws-auth.",
        )
        .with_table(Table::from_batches(get("aws-auth"), &[])),
        Section::new(
            "anonymous",
            "Anonymous traffic",
            "Requests from unauthenticated callers (system:anonymous), by source address and \
             user agent, and how many were allowed.",
            "No anonymous request.",
        )
        .with_table(Table::from_batches(get("anonymous"), &[])),
        Section::new(
            "refused",
            "Refused requests",
            "Requests refused (HTTP 403 or an RBAC forbid), grouped by who asked for what, most \
             frequent first.",
            "No refused request.",
        )
        .with_table(Table::from_batches(get("refused"), &[])),
    ];
    let mut footer = format!(
        "Written by eksaudit {} at {} UTC.",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
    );
    if scope.unreadable > 0 {
        footer.push_str(&format!(
            " {} event(s) of the inputs could not be read in full and are left out or shown \
             in part (eksaudit names them on stderr).",
            scope.unreadable
        ));
    }
    Page {
        title: scope.title.clone(),
        facts,
        scope: scope_rows,
        sections,
        footer,
    }
}

/// The two charts of activity: requests by verb, refusals by kind.
fn volume_charts(batches: &[RecordBatch], range: (Option<i64>, Option<i64>)) -> Vec<Chart> {
    let (Some(start), Some(end)) = range else {
        return Vec::new();
    };
    let width = chart::bucket_width(end - start, 96);
    let origin = start.div_euclid(width) * width;
    let n = ((end - origin) / width + 1).max(1) as usize;
    let buckets: Vec<i64> = (0..n as i64).map(|i| origin + i * width).collect();
    let mut verbs = Vec::new();
    let mut kinds = Vec::new();
    // date_bin gives nanoseconds; every column is cast to what is read
    // here, in case another DataFusion version picks other types.
    let types = [
        crate::schema::timestamp_type(),
        DataType::Utf8,
        DataType::Utf8,
        DataType::Int64,
        DataType::Int64,
    ];
    for b in batches {
        let columns: Result<Vec<ArrayRef>, _> = types
            .iter()
            .enumerate()
            .map(|(i, t)| cast(b.column(i), t))
            .collect();
        let Ok(c) = columns else { continue };
        let minute = c[0].as_primitive::<TimestampMicrosecondType>();
        let (verb, kind) = (c[1].as_string::<i32>(), c[2].as_string::<i32>());
        let requests = c[3].as_primitive::<Int64Type>();
        let refused = c[4].as_primitive::<Int64Type>();
        for row in 0..b.num_rows() {
            let at = minute.value(row);
            if at < origin || at > end {
                continue;
            }
            let i = ((at - origin) / width) as usize;
            verbs.push((i, verb.value(row).to_string(), requests.value(row) as u64));
            if refused.value(row) > 0 {
                kinds.push((i, kind.value(row).to_string(), refused.value(row) as u64));
            }
        }
    }
    vec![
        Chart::stack(
            "requests-by-verb",
            "Requests, by verb",
            buckets.clone(),
            width,
            verbs,
        ),
        Chart::stack(
            "refusals-by-kind",
            "Refused requests, by kind of identity",
            buckets,
            width,
            kinds,
        ),
    ]
}

/// `batches` as one, sorted by the columns `by`, each descending.
fn sorted(batches: &[RecordBatch], by: &[&str]) -> Vec<RecordBatch> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let sort = || -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let all = concat_batches(&first.schema(), batches)?;
        let columns: Vec<SortColumn> = by
            .iter()
            .filter_map(|name| all.column_by_name(name))
            .map(|c| SortColumn {
                values: Arc::clone(c),
                options: Some(SortOptions {
                    descending: true,
                    nulls_first: false,
                }),
            })
            .collect();
        if columns.is_empty() {
            return Ok(all);
        }
        let order = lexsort_to_indices(&columns, None)?;
        datafusion::arrow::compute::take_record_batch(&all, &order)
    };
    // Sorting batches of one schema by their own columns cannot fail;
    // if it did, the rows are shown in the query's order.
    sort().map_or_else(|_| batches.to_vec(), |b| vec![b])
}

fn count_true(batches: &[RecordBatch], name: &str) -> usize {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(name))
        .map(|c| c.as_boolean().true_count())
        .sum()
}

/// Alerts, most severe first, then by time.
fn alert_table(alerts: &[Alert]) -> Table {
    let mut alerts: Vec<&Alert> = alerts.iter().collect();
    alerts.sort_by(|a, b| {
        (std::cmp::Reverse(a.severity), &a.first_seen, &a.rule, &a.id).cmp(&(
            std::cmp::Reverse(b.severity),
            &b.first_seen,
            &b.rule,
            &b.id,
        ))
    });
    let columns = [
        "severity",
        "when",
        "alert",
        "who",
        "source_ip",
        "what",
        "events",
        "audit_ids",
    ];
    // 2026-11-02T08:00:30.000123Z as 2026-11-02 08:00:30.
    let short = |t: &str| t.get(..19).unwrap_or(t).replace('T', " ");
    let rows: Vec<Vec<Cell>> = alerts
        .iter()
        .take(crate::page::table::MAX_ROWS)
        .map(|a| {
            let mut ids: Vec<String> = a.audit_ids.iter().take(3).cloned().collect();
            if a.audit_ids.len() > 3 {
                ids.push(format!("(and {} more)", a.audit_ids.len() - 3));
            }
            let mut when = short(&a.first_seen);
            if a.last_seen != a.first_seen {
                when = format!("{when}\nto {}", short(&a.last_seen));
            }
            let who = [a.who.as_deref(), a.arn.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n");
            let list = |text: String, sort: Option<String>| Cell {
                text,
                sort,
                class: Some("list"),
            };
            vec![
                Cell {
                    class: Some(severity_class(a.severity)),
                    sort: Some((a.severity as u8).to_string()),
                    text: a.severity.to_string(),
                },
                list(when, Some(a.first_seen.clone())),
                Cell::text(format!("{} ({})", a.title, a.rule)),
                list(who, None),
                Cell::text(a.source_ip.clone().unwrap_or_default()),
                Cell::text(a.what()),
                Cell::number(a.count),
                list(ids.join("\n"), None),
            ]
        })
        .collect();
    Table {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
        total: alerts.len(),
    }
}

fn severity_class(s: crate::alerts::Severity) -> &'static str {
    use crate::alerts::Severity::*;
    match s {
        Critical => "sev-critical",
        High => "sev-high",
        Medium => "sev-medium",
        Low => "sev-low",
        Info => "sev-info",
    }
}
