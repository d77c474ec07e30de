//! Insights AST → one SQL query over `audit`, stage by stage: each command
//! wraps what came before as a subquery, so a later command sees the
//! fields earlier ones made, as in Insights. Names a query makes are kept
//! as internal columns (`__1`, ...) and given their Insights names at the
//! end, so they never clash with the audit columns.

use super::InsightsError;
use super::parser::{Command, Expr, Item};

/// Rows returned when the query has no `limit` (as Insights does).
pub const DEFAULT_LIMIT: u64 = 10_000;

/// The `@timestamp` of a row: the CloudWatch event time where the input
/// carries one, else the event's stage time.
pub(super) const TIMESTAMP: &str = "coalesce(log_timestamp, \"stageTimestamp\")";

const STRING_COLUMNS: &[&str] = &[
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "userAgent",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "cluster",
];

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A path into a JSON text column, for `json_as_text`.
fn json_path(column: &str, segs: &[&str]) -> String {
    let keys: Vec<String> = segs
        .iter()
        .map(|s| match s.parse::<u64>() {
            Ok(i) => i.to_string(),
            Err(_) => quote_str(s),
        })
        .collect();
    format!("json_as_text({column}, {})", keys.join(", "))
}

/// `name.N` → (name, Some(N+1)) for a 1-based SQL list index.
fn split_index<'a>(segs: &'a [&'a str]) -> (&'a [&'a str], Option<u64>) {
    match segs.split_last() {
        Some((last, rest)) if !rest.is_empty() => match last.parse::<u64>() {
            Ok(i) => (rest, Some(i + 1)),
            Err(_) => (segs, None),
        },
        _ => (segs, None),
    }
}

fn indexed(base: String, index: Option<u64>) -> String {
    match index {
        Some(i) => format!("{base}[{i}]"),
        None => base,
    }
}

/// A field of the audit table, by its Insights name.
pub fn audit_field(name: &str) -> String {
    match name {
        "@timestamp" => return TIMESTAMP.into(),
        "@message" => return "raw".into(),
        "@logStream" => return "log_stream".into(),
        "@log" => return "log_group".into(),
        "@ingestionTime" => return "ingestion_time".into(),
        _ => {}
    }
    let segs: Vec<&str> = name.split('.').collect();
    let (head, rest) = (segs[0], &segs[1..]);
    let col = quote_ident(head);
    match (head, rest) {
        (_, []) if STRING_COLUMNS.contains(&head) => col,
        (
            "user" | "impersonatedUser" | "objectRef" | "responseStatus" | "sourceIPs"
            | "annotations" | "requestObject" | "responseObject",
            [],
        ) => col,
        ("user" | "impersonatedUser", [field @ ("username" | "uid")]) => {
            format!("{col}['{field}']")
        }
        ("user" | "impersonatedUser", ["groups", ..]) => {
            let (_, idx) = split_index(rest);
            indexed(format!("{col}['groups']"), idx)
        }
        ("user" | "impersonatedUser", ["extra", keys @ ..]) if !keys.is_empty() => {
            let (key, idx) = split_index(keys);
            indexed(
                format!("{col}['extra'][{}]", quote_str(&key.join("."))),
                idx,
            )
        }
        ("sourceIPs", [i]) if i.parse::<u64>().is_ok() => {
            indexed(col, i.parse::<u64>().ok().map(|i| i + 1))
        }
        (
            "objectRef",
            [
                f @ ("resource" | "namespace" | "name" | "uid" | "apiGroup" | "apiVersion"
                | "resourceVersion" | "subresource"),
            ],
        ) => {
            format!("{col}['{f}']")
        }
        ("responseStatus", [f @ ("code" | "status" | "reason" | "message")]) => {
            format!("{col}['{f}']")
        }
        ("annotations", keys) => format!("{col}[{}]", quote_str(&keys.join("."))),
        ("requestObject" | "responseObject", keys) => json_path(&col, keys),
        // Anything else is read from the event's JSON.
        _ => json_path("raw", &segs),
    }
}

fn interval(n: f64, unit: &str, query: &str) -> Result<String, InsightsError> {
    let unit = match unit {
        "ms" => "milliseconds",
        "s" | "sec" => "seconds",
        "m" | "min" => "minutes",
        "h" | "hr" => "hours",
        "d" => "days",
        "w" => "weeks",
        "mo" => "months",
        "q" => "months",
        "y" => "years",
        other => {
            return Err(InsightsError::plain(
                query,
                format!("unknown time unit {other:?} (use ms, s, m, h, d, w, mo, y)"),
            ));
        }
    };
    Ok(format!("interval '{n} {unit}'"))
}

/// Translates a whole query.
pub struct Translator<'q> {
    query: &'q str,
    /// Insights names made so far → internal column.
    names: Vec<(String, String)>,
    /// Whether the audit columns are still there (not after `stats`).
    base: bool,
    next: usize,
}

impl<'q> Translator<'q> {
    pub fn new(query: &'q str) -> Self {
        Self {
            query,
            names: Vec::new(),
            base: true,
            next: 0,
        }
    }

    fn internal(&mut self, name: &str) -> String {
        self.next += 1;
        let col = format!("__{}", self.next);
        self.names.retain(|(n, _)| n != name);
        self.names.push((name.to_string(), col.clone()));
        col
    }

    fn field(&self, name: &str) -> Result<String, InsightsError> {
        if let Some((_, col)) = self.names.iter().rev().find(|(n, _)| n == name) {
            return Ok(quote_ident(col));
        }
        if self.base {
            return Ok(audit_field(name));
        }
        Err(InsightsError::plain(
            self.query,
            format!("`{name}` is not a field after stats (only its results are)"),
        ))
    }

    pub(super) fn err(&self, at: usize, msg: impl Into<String>) -> InsightsError {
        InsightsError::at(self.query, at, msg)
    }

    pub fn expr(&self, e: &Expr) -> Result<String, InsightsError> {
        Ok(match e {
            Expr::Field(f) => self.field(f)?,
            Expr::Str(s) => quote_str(s),
            Expr::Num(n) => n.to_string(),
            Expr::Period(n, u) => interval(*n, u, self.query)?,
            Expr::Regex(r) => quote_str(r),
            Expr::Star => "*".into(),
            Expr::Unary("not", x) => format!("(not {})", self.expr(x)?),
            Expr::Unary(op, x) => format!("({op}{})", self.expr(x)?),
            Expr::Binary("^", l, r) => format!("power({}, {})", self.expr(l)?, self.expr(r)?),
            Expr::Binary(op, l, r) if matches!(*op, "=" | "!=" | "<" | "<=" | ">" | ">=") => {
                // Insights compares a number field with a quoted number
                // ("403") as text; so does eksaudit.
                let (l_sql, r_sql) = match (&**l, &**r) {
                    (x, Expr::Str(_)) if !matches!(x, Expr::Str(_)) => {
                        (format!("cast({} as varchar)", self.expr(x)?), self.expr(r)?)
                    }
                    (Expr::Str(_), x) if !matches!(x, Expr::Str(_)) => {
                        (self.expr(l)?, format!("cast({} as varchar)", self.expr(x)?))
                    }
                    _ => (self.expr(l)?, self.expr(r)?),
                };
                format!("({l_sql} {op} {r_sql})")
            }
            Expr::Binary(op, l, r) => format!("({} {op} {})", self.expr(l)?, self.expr(r)?),
            Expr::In(x, list, negated) => {
                let strings = list.iter().any(|i| matches!(i, Expr::Str(_)));
                let mut lhs = self.expr(x)?;
                if strings {
                    lhs = format!("cast({lhs} as varchar)");
                }
                let items = list
                    .iter()
                    .map(|i| match i {
                        Expr::Num(n) if strings => Ok(quote_str(&n.to_string())),
                        other => self.expr(other),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if items.is_empty() {
                    return Ok(if *negated {
                        "true".into()
                    } else {
                        "false".into()
                    });
                }
                let not = if *negated { "not " } else { "" };
                format!("({lhs} {not}in ({}))", items.join(", "))
            }
            Expr::Like(x, pat, negated) => {
                let s = format!("cast({} as varchar)", self.expr(x)?);
                let test = match &**pat {
                    Expr::Regex(r) => format!("regexp_like({s}, {})", quote_str(r)),
                    Expr::Str(sub) => format!("(strpos({s}, {}) > 0)", quote_str(sub)),
                    other => format!("(strpos({s}, cast({} as varchar)) > 0)", self.expr(other)?),
                };
                if *negated {
                    format!("(not {test})")
                } else {
                    test
                }
            }
            Expr::Call(name, args, at) => super::functions::call(self, name, args, *at)?,
        })
    }

    /// The SQL for `commands`.
    pub fn translate(&mut self, commands: &[Command]) -> Result<String, InsightsError> {
        let mut from = "audit".to_string();
        let mut shown: Option<Vec<String>> = None;
        let mut fields: Vec<String> = Vec::new();
        // Fields `parse` made: shown after the ones `fields` names.
        let mut parsed: Vec<String> = Vec::new();
        let mut order: Option<String> = None;
        let mut limited = false;
        let mut aggregated = false;
        for (i, c) in commands.iter().enumerate() {
            let wrap = |select: &str, rest: &str| format!("select {select} from {from}{rest}");
            let stage = match c {
                Command::Fields(items) | Command::Display(items) => {
                    let cols = self.project(items)?;
                    let names: Vec<String> = items.iter().map(|it| it.name.clone()).collect();
                    if matches!(c, Command::Display(_)) {
                        shown = Some(names);
                    } else {
                        fields.extend(names);
                    }
                    wrap(&format!("*, {}", cols.join(", ")), "")
                }
                Command::Filter(e) => wrap("*", &format!(" where {}", self.expr(e)?)),
                Command::Stats { aggs, by } => {
                    let mut cols = Vec::new();
                    let mut outputs = Vec::new();
                    for it in by.iter().chain(aggs) {
                        let sql = self.expr(&it.expr)?;
                        outputs.push((it.name.clone(), sql));
                    }
                    self.base = false;
                    self.names.clear();
                    for (name, sql) in &outputs {
                        let col = self.internal(name);
                        cols.push(format!("{sql} as {}", quote_ident(&col)));
                    }
                    let group = if by.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " group by {}",
                            (1..=by.len())
                                .map(|n| n.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    shown = Some(outputs.into_iter().map(|(n, _)| n).collect());
                    fields.clear();
                    parsed.clear();
                    order = None;
                    aggregated = true;
                    wrap(&cols.join(", "), &group)
                }
                Command::Sort(keys) => {
                    let keys = keys
                        .iter()
                        .map(|(e, desc)| {
                            Ok(format!(
                                "{} {}",
                                self.expr(e)?,
                                if *desc { "desc" } else { "asc" }
                            ))
                        })
                        .collect::<Result<Vec<_>, InsightsError>>()?;
                    order = Some(keys.join(", "));
                    wrap("*", &format!(" order by {}", keys.join(", ")))
                }
                Command::Limit(n) => {
                    limited = true;
                    // Without a sort, Insights keeps the newest events.
                    let by = match &order {
                        Some(o) => format!(" order by {o}"),
                        None if self.base && !aggregated => format!(" order by {TIMESTAMP} desc"),
                        None => String::new(),
                    };
                    wrap("*", &format!("{by} limit {n}"))
                }
                Command::Dedup(keys) => {
                    let keys = keys
                        .iter()
                        .map(|k| self.expr(k))
                        .collect::<Result<Vec<_>, _>>()?;
                    let by = order.clone().unwrap_or_else(|| format!("{TIMESTAMP} desc"));
                    format!(
                        "select * from (select *, row_number() over (partition by {} order by {by}) as __dedup from {from}) d{i} where __dedup = 1",
                        keys.join(", ")
                    )
                }
                Command::Parse {
                    field,
                    pattern,
                    names,
                } => {
                    let (regex, groups) = parse_pattern(pattern, names, self.query)?;
                    let source = format!("cast({} as varchar)", self.expr(field)?);
                    let mut cols = Vec::new();
                    for (name, group) in groups {
                        let col = self.internal(&name);
                        cols.push(format!(
                            "regexp_match({source}, {})[{group}] as {}",
                            quote_str(&regex),
                            quote_ident(&col)
                        ));
                        parsed.push(name);
                    }
                    wrap(&format!("*, {}", cols.join(", ")), "")
                }
                Command::Unnest { field, name } => {
                    let sql = self.expr(field)?;
                    let col = self.internal(name);
                    wrap(&format!("*, unnest({sql}) as {}", quote_ident(&col)), "")
                }
            };
            from = format!("({stage}) t{i}");
        }
        let shown = shown.unwrap_or_else(|| {
            if fields.is_empty() && parsed.is_empty() {
                vec!["@timestamp".into(), "@message".into()]
            } else {
                // In the order written; a name once.
                let mut seen = Vec::new();
                for f in fields.into_iter().chain(parsed) {
                    if !seen.contains(&f) {
                        seen.push(f);
                    }
                }
                seen
            }
        });
        let cols = shown
            .iter()
            .map(|n| Ok(format!("{} as {}", self.field(n)?, quote_ident(n))))
            .collect::<Result<Vec<_>, InsightsError>>()?;
        let order = match order {
            Some(o) => format!(" order by {o}"),
            // Insights shows events newest first.
            None if !aggregated && self.base => format!(" order by {TIMESTAMP} desc"),
            None => String::new(),
        };
        let limit = if limited {
            String::new()
        } else {
            format!(" limit {DEFAULT_LIMIT}")
        };
        Ok(format!(
            "select {} from {from}{order}{limit}",
            cols.join(", ")
        ))
    }

    fn project(&mut self, items: &[Item]) -> Result<Vec<String>, InsightsError> {
        let mut cols = Vec::new();
        for it in items {
            let sql = self.expr(&it.expr)?;
            let col = self.internal(&it.name);
            cols.push(format!("{sql} as {}", quote_ident(&col)));
        }
        Ok(cols)
    }
}

/// A `parse` pattern as a regex, with the capture group of each name.
fn parse_pattern(
    pattern: &Expr,
    names: &[String],
    query: &str,
) -> Result<(String, Vec<(String, usize)>), InsightsError> {
    match pattern {
        Expr::Str(glob) => {
            let parts: Vec<&str> = glob.split('*').collect();
            let stars = parts.len() - 1;
            if stars != names.len() {
                return Err(InsightsError::plain(
                    query,
                    format!(
                        "parse: the pattern has {stars} * but {} name(s) follow as",
                        names.len()
                    ),
                ));
            }
            let mut re = String::new();
            for (k, part) in parts.iter().enumerate() {
                re.push_str(&regex::escape(part));
                if k < stars {
                    re.push_str(if k + 1 == stars && parts[k + 1].is_empty() {
                        "(.*)"
                    } else {
                        "(.*?)"
                    });
                }
            }
            Ok((re, names.iter().cloned().zip(1..).collect()))
        }
        Expr::Regex(re) => {
            let compiled = regex::Regex::new(re)
                .map_err(|e| InsightsError::plain(query, format!("parse: {e}")))?;
            let groups: Vec<(String, usize)> = compiled
                .capture_names()
                .enumerate()
                .filter_map(|(i, n)| n.map(|n| (n.to_string(), i)))
                .collect();
            if groups.is_empty() {
                return Err(InsightsError::plain(
                    query,
                    "parse: the regex names no group, e.g. (?<user>\\S+)",
                ));
            }
            Ok((re.clone(), groups))
        }
        _ => Err(InsightsError::plain(query, "parse: expected a pattern")),
    }
}
