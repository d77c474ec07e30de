//! Alert rules: plain YAML files (`alerts/<id>.yaml`), each a SQL predicate
//! or query over the `audit` table plus optional threshold, first-seen and
//! dedup memory. `rule` reads and checks files; `engine` evaluates batches.
//! The shipped rules are compiled into the binary, so `eksaudit alerts`
//! works from anywhere; `--rules DIR` reads others.

pub(crate) mod alert;
pub mod engine;
mod hit;
pub mod hunt;
mod matcher;
mod params;
pub mod rule;
pub mod sigma;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::record_batch::RecordBatch;
use serde::Deserialize;

pub use engine::{Alert, Outcome, RuleState};
pub use hit::Hit;
pub use hunt::{Hunt, HuntStats};
pub use rule::{Param, Rule, Severity};

use crate::query;

/// Why a rule could not be used, with its file and line.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Rule {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{0}")]
    Query(#[from] crate::error::Error),
}

/// The files of `alerts/` (rules and their test events), compiled in:
/// `(file name, text)`, listed by `build.rs`.
pub const BUILTIN: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/builtin_alerts.rs"));

/// Test events beside a rule: `<id>.fires.ndjson` must raise at least one
/// alert, `<id>.quiet.ndjson` none.
pub const FIRES: &str = "fires";
pub const QUIET: &str = "quiet";

/// The text of `<id>.<which>.ndjson` in `dir`, or shipped with eksaudit.
pub fn test_events(dir: Option<&Path>, id: &str, which: &str) -> Option<(PathBuf, String)> {
    let name = format!("{id}.{which}.ndjson");
    match dir {
        Some(d) => {
            let p = d.join(&name);
            std::fs::read_to_string(&p).ok().map(|t| (p, t))
        }
        None => BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| (Path::new("alerts").join(n), t.to_string())),
    }
}

/// `[alerts]` of `eksaudit.toml`: parameter values for the rules.
#[derive(Debug, Default, Deserialize)]
pub struct AlertsConfig {
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The file these came from and its text (for errors with lines).
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
}

impl AlertsConfig {
    /// An error for each `[alerts.params]` name that no rule of `rules`
    /// declares (a typo would otherwise leave a rule at its default, or
    /// off), naming the closest one and listing them all.
    pub fn unknown_params(&self, rules: &[Rule]) -> Vec<AlertError> {
        let declared: std::collections::BTreeSet<&str> = rules
            .iter()
            .flat_map(|r| r.file.params.keys().map(String::as_str))
            .collect();
        let (path, text) = match &self.source {
            Some((p, t)) => (p.clone(), t.as_str()),
            None => (PathBuf::from("[alerts.params]"), ""),
        };
        self.params
            .keys()
            .filter(|k| !declared.contains(k.as_str()))
            .map(|k| AlertError::Rule {
                path: path.clone(),
                line: text.lines().position(|l| sets_key(l, k)).map(|i| i + 1),
                reason: format!(
                    "[alerts.params] sets {k:?}, which no rule declares{}",
                    crate::suggest::hint(k, declared.iter().copied())
                ),
            })
            .collect()
    }
}

/// Whether a TOML line is `key = ...` (bare or quoted key).
fn sets_key(line: &str, key: &str) -> bool {
    let line = line.trim_start();
    let rest = line
        .strip_prefix(key)
        .or_else(|| line.strip_prefix(&format!("\"{key}\"")));
    rest.is_some_and(|r| r.trim_start().starts_with('='))
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    alerts: AlertsConfig,
}

/// Reads `[alerts]` of a config file (other tables belong to other commands).
pub fn load_config(path: &Path) -> Result<AlertsConfig, AlertError> {
    let text = std::fs::read_to_string(path).map_err(|cause| AlertError::Io {
        path: path.display().to_string(),
        cause,
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| AlertError::Rule {
        path: path.to_path_buf(),
        line: e.span().map(|s| text[..s.start].lines().count().max(1)),
        reason: e.message().to_string(),
    })?;
    Ok(AlertsConfig {
        source: Some((path.to_path_buf(), text)),
        ..file.alerts
    })
}

/// Rule texts from `dir` (every `*.yaml`, in name order), or the shipped ones.
pub fn rule_texts(dir: Option<&Path>) -> Result<Vec<(PathBuf, String)>, AlertError> {
    let Some(dir) = dir else {
        return Ok(BUILTIN
            .iter()
            .filter(|(name, _)| name.ends_with(".yaml"))
            .map(|(name, text)| (Path::new("alerts").join(name), text.to_string()))
            .collect());
    };
    let io = |cause| AlertError::Io {
        path: dir.display().to_string(),
        cause,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|cause| AlertError::Io {
                path: p.display().to_string(),
                cause,
            })?;
            Ok((p, text))
        })
        .collect()
}

/// Parses every rule; the ones that fail are returned beside the good ones.
pub fn parse_rules(
    texts: &[(PathBuf, String)],
    params: &BTreeMap<String, Param>,
) -> (Vec<Rule>, Vec<AlertError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (path, text) in texts {
        match Rule::parse(text, path, params) {
            Ok(r) if !ids.insert(r.id().to_string()) => errors.push(AlertError::Rule {
                path: path.clone(),
                line: rule::line_of(text, "id"),
                reason: format!("a second rule with id {:?}", r.id()),
            }),
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    (rules, errors)
}

/// Decodes NDJSON `text` (test events) into one batch of the full schema;
/// any event that does not read cleanly is an error naming its line.
pub fn ndjson_batch(path: &Path, text: &str) -> Result<RecordBatch, AlertError> {
    let label = path.display().to_string();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::as_bytes);
    let chunk = crate::source::Chunk::from_texts(&label, lines);
    let report = crate::report::Report::new();
    let bad = |reason: String| AlertError::Rule {
        path: path.to_path_buf(),
        line: None,
        reason,
    };
    let batch = crate::decode::Decoder::full()
        .decode(&chunk, &report)
        .map_err(|e| bad(e.to_string()))?;
    let counts = report.counts();
    if counts.problems() > 0 {
        return Err(bad(format!(
            "events that do not read cleanly: {}",
            counts.first.join("; ")
        )));
    }
    Ok(batch)
}

/// [`parse_rules`] with `config`'s parameters; when every rule parsed, the
/// errors are the parameters no rule declares (a broken rule's own would
/// otherwise be reported as unknown too).
pub fn parse_configured(
    texts: &[(PathBuf, String)],
    config: &AlertsConfig,
) -> (Vec<Rule>, Vec<AlertError>) {
    let (rules, errors) = parse_rules(texts, &config.params);
    if errors.is_empty() {
        let unknown = config.unknown_params(&rules);
        return (rules, unknown);
    }
    (rules, errors)
}

/// Every rule of `dir` (or the shipped ones) with `config`'s parameters;
/// the first broken rule, or else the first parameter no rule declares, is
/// the error.
pub fn load_rules(dir: Option<&Path>, config: &AlertsConfig) -> Result<Vec<Rule>, AlertError> {
    let (rules, errors) = parse_configured(&rule_texts(dir)?, config);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(rules),
    }
}

/// Hits fed at once above which the rules are fed on all cores.
const PARALLEL_FEED: usize = 4096;

/// Rules with their memory, fed batch after batch. The rules are planned
/// once (on first use, again after [`Engine::set_rules`]) and run over
/// every batch.
pub struct Engine {
    rules: Vec<Rule>,
    pub states: BTreeMap<String, RuleState>,
    matcher: Option<matcher::Matcher>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("planned", &self.matcher.is_some())
            .finish()
    }
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            states: BTreeMap::new(),
            matcher: None,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Replaces the rules (a reload); their memory is kept for rules that
    /// stay, dropped for the others, and the plans are made again.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        self.states
            .retain(|id, _| rules.iter().any(|r| r.id() == id));
        self.rules = rules;
        self.matcher = None;
    }

    async fn matcher(&mut self) -> Result<&matcher::Matcher, AlertError> {
        if self.matcher.is_none() {
            let planned = matcher::Matcher::new(&self.rules, query::default_partitions()).await?;
            self.matcher = Some(planned);
        }
        Ok(self.matcher.as_ref().expect("planned above"))
    }

    /// The audit columns the rules read: what batches given to
    /// [`hits`](Self::hits) must hold (decoding more costs time for
    /// nothing). Always includes the event times.
    pub async fn columns(&mut self) -> Result<Vec<crate::schema::Column>, AlertError> {
        use crate::schema::Column;
        let mut columns = self.matcher().await?.columns();
        for c in [Column::RequestReceivedTimestamp, Column::LogTimestamp] {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        columns.sort_by_key(|c| c.index());
        Ok(columns)
    }

    /// Runs every rule over `batches` (events of the audit schema, any
    /// projection that has the columns the rules read): the matching
    /// events of each rule, in rule order, each list in time order.
    pub async fn hits(&mut self, batches: &[RecordBatch]) -> Result<Vec<Vec<Hit>>, AlertError> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(vec![Vec::new(); self.rules.len()]);
        }
        self.matcher().await?.hits(batches).await
    }

    /// Feeds the hits of rule number `index` (in time order) to its memory.
    pub fn feed(&mut self, index: usize, hits: Vec<Hit>, out: &mut Outcome) {
        let rule = &self.rules[index];
        let state = self.states.entry(rule.id().to_string()).or_default();
        state.feed(rule, hits, out);
    }

    /// Feeds each rule its hits (rule number, hits in time order), as
    /// [`feed`](Self::feed) one after another does. When they are many,
    /// the rules are spread over the cores (each rule's memory is its own),
    /// and what they raise is put back in rule order.
    pub fn feed_all(&mut self, ready: Vec<(usize, Vec<Hit>)>, out: &mut Outcome) {
        let hits: usize = ready.iter().map(|(_, h)| h.len()).sum();
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(ready.len());
        if hits < PARALLEL_FEED || threads < 2 {
            for (i, h) in ready {
                self.feed(i, h, out);
            }
            return;
        }
        struct Job<'a> {
            index: usize,
            rule: &'a Rule,
            state: &'a mut RuleState,
            hits: Vec<Hit>,
            out: Outcome,
        }
        let Self { rules, states, .. } = self;
        let mut by_id = std::collections::HashMap::new();
        for (i, h) in ready {
            states.entry(rules[i].id().to_string()).or_default();
            by_id.insert(rules[i].id(), (i, h));
        }
        let mut jobs: Vec<Job> = states
            .iter_mut()
            .filter_map(|(id, state)| {
                let (index, hits) = by_id.remove(id.as_str())?;
                let rule = &rules[index];
                let out = Outcome::default();
                Some(Job {
                    index,
                    rule,
                    state,
                    hits,
                    out,
                })
            })
            .collect();
        // The rules with most hits first, each to the least loaded core.
        jobs.sort_by_key(|j| std::cmp::Reverse(j.hits.len()));
        let mut lanes: Vec<(usize, Vec<Job>)> = (0..threads).map(|_| (0, Vec::new())).collect();
        for job in jobs {
            let lane = lanes
                .iter_mut()
                .min_by_key(|l| l.0)
                .expect("two lanes or more");
            lane.0 += job.hits.len();
            lane.1.push(job);
        }
        let mut done: Vec<Job> = std::thread::scope(|s| {
            let running: Vec<_> = lanes
                .into_iter()
                .map(|(_, lane)| {
                    s.spawn(move || {
                        let mut lane = lane;
                        for j in &mut lane {
                            j.state
                                .feed(j.rule, std::mem::take(&mut j.hits), &mut j.out);
                        }
                        lane
                    })
                })
                .collect();
            running
                .into_iter()
                .flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        done.sort_by_key(|j| j.index);
        for j in done {
            out.new.extend(j.out.new);
            out.closed.extend(j.out.closed);
        }
    }

    /// Runs every rule over `batches` and feeds what they match.
    pub async fn evaluate(&mut self, batches: Vec<RecordBatch>) -> Result<Outcome, AlertError> {
        let mut out = Outcome::default();
        let hits = self.hits(&batches).await?;
        drop(batches);
        let ready = hits.into_iter().enumerate().filter(|(_, h)| !h.is_empty());
        self.feed_all(ready.collect(), &mut out);
        Ok(out)
    }

    /// Forgets what hits at `now_us` or later cannot need, and closes the
    /// incidents whose TTL has passed (see [`RuleState::expire`]).
    pub fn expire(&mut self, now_us: i64, out: &mut Outcome) {
        for rule in &self.rules {
            if let Some(state) = self.states.get_mut(rule.id()) {
                state.expire(rule, now_us, out);
            }
        }
    }

    /// When the earliest incident still open began (µs).
    pub fn earliest_open(&self) -> Option<i64> {
        self.states
            .values()
            .filter_map(RuleState::earliest_open)
            .min()
    }

    /// Closes every open incident: the alerts as they stand at the end.
    pub fn finish(&mut self) -> Vec<Alert> {
        self.states
            .values_mut()
            .flat_map(RuleState::finish)
            .collect()
    }

    /// Checks that every rule's SQL plans against the audit schema.
    pub async fn check(rules: &[Rule]) -> Vec<AlertError> {
        let mut errors = Vec::new();
        let session = match query::BatchSession::new(1) {
            Ok(s) => s,
            Err(e) => return vec![e.into()],
        };
        for rule in rules {
            if let Err(e) = session.prepare(&rule.sql).await {
                errors.push(AlertError::Rule {
                    path: rule.path.clone(),
                    line: Some(rule.sql_line),
                    reason: format!("the SQL does not plan: {e}"),
                });
            }
        }
        errors
    }
}

/// A rule's query error, at the rule's file and the line of its SQL.
fn located(path: &Path, sql_line: usize, e: crate::error::Error) -> AlertError {
    AlertError::Rule {
        path: path.to_path_buf(),
        line: Some(sql_line),
        reason: e.to_string(),
    }
}
