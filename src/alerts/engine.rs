//! Evaluation: a rule's query picks the matching events of a batch (SQL,
//! in DataFusion); what needs memory across batches (thresholds over a
//! window, first-seen baselines, dedup of one incident into one alert) is
//! kept here, in plain maps that serialise into the daemon's state. The
//! same code runs over a whole set of files (hunting) and over the
//! micro-batches of the daemon, so a rule behaves the same in both.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::alert::fnv1a;
pub use super::alert::{Alert, exec_command, format_us};
use super::hit::Hit;
use super::rule::Rule;

/// An alert whose incident is still open (dedup), with its times.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    /// `last_seen` as raised; [`Open::into_alert`] brings it up to date.
    alert: Alert,
    first_us: i64,
    last_us: i64,
}

impl Open {
    /// The incident's alert as it stands, `last_seen` written out (kept as
    /// a number while events fold in, not formatted for each of them).
    fn into_alert(self) -> Alert {
        let mut alert = self.alert;
        alert.last_seen = format_us(self.last_us);
        alert
    }
}

/// The memory of one rule across batches.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleState {
    /// threshold: the hits inside the window, per group.
    windows: HashMap<String, VecDeque<Hit>>,
    /// threshold with `distinct`: how often each value occurs in a group's
    /// window, kept beside it so a hit costs O(1), not a pass over the
    /// window. Not stored: rebuilt from the window when missing.
    #[serde(skip)]
    distinct: HashMap<String, HashMap<String, u32>>,
    /// threshold: groups over it, with their newest hit (µs): while hits
    /// keep coming within the window, each one belongs to the same burst.
    tripped: HashMap<String, i64>,
    /// first_seen: key → newest time seen (µs).
    baseline: HashMap<String, i64>,
    /// first_seen: when the baseline started learning (µs).
    learning_since: Option<i64>,
    /// dedup: open incidents, per dedup key.
    open: HashMap<String, Open>,
    /// sequence: the steps made so far, per `by` key (the first is the
    /// start of the window).
    #[serde(default)]
    progress: HashMap<String, Vec<Hit>>,
    /// A key being looked up.
    #[serde(skip)]
    scratch: String,
}

/// The values of the keys at `idx` of `hit` as one string (a map key).
fn join_key(hit: &Hit, idx: &[usize]) -> String {
    let mut key = String::new();
    write_key(&mut key, hit, idx);
    key
}

/// [`join_key`] into `key`, emptied first.
fn write_key(key: &mut String, hit: &Hit, idx: &[usize]) {
    key.clear();
    for (n, v) in hit.key_values(idx).enumerate() {
        if n > 0 {
            key.push('\u{1f}');
        }
        key.push_str(v.unwrap_or("\u{2400}"));
    }
}

/// What evaluating a batch produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Alerts raised by this batch, as they were raised: what the daemon
    /// delivers.
    pub new: Vec<Alert>,
    /// Alerts that can no longer change, in their final form: an alert
    /// without dedup as it is raised, a deduplicated incident once its TTL
    /// has passed. What hunting prints.
    pub closed: Vec<Alert>,
}

/// The value `distinct` counts in a hit, if it has one.
fn distinct_value(hit: &Hit, d: usize) -> Option<&str> {
    hit.key(d)
}

/// Drops a window's hits at or before `cutoff`, keeping its counts.
fn trim(
    win: &mut VecDeque<Hit>,
    mut counts: Option<&mut HashMap<String, u32>>,
    d: Option<usize>,
    cutoff: i64,
) {
    while win.front().is_some_and(|h| h.ts_us <= cutoff) {
        let old = win.pop_front().expect("checked non-empty");
        if let (Some(counts), Some(v)) = (
            counts.as_deref_mut(),
            d.and_then(|d| distinct_value(&old, d)),
        ) && let Some(n) = counts.get_mut(v)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(v);
            }
        }
    }
}

impl RuleState {
    /// Feeds a batch of hits (in time order) through the rule's memory.
    /// Every step costs O(1) per hit (amortised) whatever the state holds;
    /// what grows with time is pruned at the end of the batch.
    pub fn feed(&mut self, rule: &Rule, hits: Vec<Hit>, out: &mut Outcome) {
        let newest = hits.last().map(|h| h.ts_us);
        for hit in hits {
            let fired: Vec<Hit> = match (rule.threshold, rule.sequence_within_us) {
                (Some((count, window)), _) => self.threshold(rule, hit, count, window),
                (None, Some(within)) => self.sequence(rule, hit, within),
                (None, None) => vec![hit],
            };
            if fired.is_empty() {
                continue;
            }
            // A key seen before opens no incident, but joins the one
            // its first sighting opened.
            if rule.first_seen_learn_us.is_some()
                && !self.first_seen(rule, &fired)
                && !self.is_open(rule, &fired)
            {
                continue;
            }
            self.raise(rule, fired, out);
        }
        let Some(now) = newest else { return };
        // Groups whose window has emptied are forgotten.
        if let Some((_, window)) = rule.threshold {
            self.windows
                .retain(|_, w| w.back().is_some_and(|h| h.ts_us > now - window));
        }
        self.forget(rule, now, out);
    }

    /// After the windows were pruned to `now`: drops the state that hits
    /// at `now` or later cannot need (counts of forgotten windows, bursts,
    /// baseline keys past `learn`) and closes incidents past their TTL.
    fn forget(&mut self, rule: &Rule, now: i64, out: &mut Outcome) {
        let windows = &self.windows;
        self.distinct.retain(|g, _| windows.contains_key(g));
        if let Some((_, window)) = rule.threshold {
            self.tripped
                .retain(|_, last| *last > now.saturating_sub(window));
        }
        if let Some(remember) = rule.first_seen_remember_us {
            self.baseline
                .retain(|_, t| *t > now.saturating_sub(remember));
        }
        if let Some(within) = rule.sequence_within_us {
            self.progress.retain(|_, steps| {
                steps
                    .first()
                    .is_some_and(|h| h.ts_us >= now.saturating_sub(within))
            });
        }
        if let Some(ttl) = rule.dedup_ttl_us {
            self.close_before(now.saturating_sub(ttl), out);
        }
    }

    /// Closes the incidents that began at or before `cutoff`.
    fn close_before(&mut self, cutoff: i64, out: &mut Outcome) {
        let expired = self.open.extract_if(|_, o| o.first_us <= cutoff);
        out.closed.extend(expired.map(|(_, o)| o.into_alert()));
    }

    /// Everything at or before `now - window` can no longer matter to hits
    /// at `now` or later: forgets it, and closes the incidents whose TTL has
    /// passed (into `out.closed`). Hunting calls this as its input moves on.
    pub fn expire(&mut self, rule: &Rule, now: i64, out: &mut Outcome) {
        if let Some((_, window)) = rule.threshold {
            let d = rule.keys.distinct;
            for (group, win) in &mut self.windows {
                trim(win, self.distinct.get_mut(group), d, now - window);
            }
            self.windows.retain(|_, w| !w.is_empty());
        }
        self.forget(rule, now, out);
    }

    /// When the earliest open incident began (µs): its alert, still to be
    /// closed, sorts before anything that starts later.
    pub fn earliest_open(&self) -> Option<i64> {
        self.open.values().map(|o| o.first_us).min()
    }

    /// Closes every open incident (the end of a hunt).
    pub fn finish(&mut self) -> Vec<Alert> {
        self.open.drain().map(|(_, o)| o.into_alert()).collect()
    }

    /// A sequence: a hit of step 0 starts (or starts again) its key's run;
    /// a hit of the next step within `within` of the start extends it; the
    /// last step fires with every step's hit.
    fn sequence(&mut self, rule: &Rule, mut hit: Hit, within: i64) -> Vec<Hit> {
        let step: usize = rule
            .keys
            .step
            .and_then(|i| hit.key(i))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let last = rule.file.sequence.as_ref().map_or(0, |q| q.steps.len() - 1);
        let group = join_key(&hit, &rule.keys.sequence);
        // Kept across batches: its columns are copied out of its batch.
        hit.own();
        if step == 0 {
            self.progress.insert(group, vec![hit]);
            return Vec::new();
        }
        let Some(steps) = self.progress.get_mut(&group) else {
            return Vec::new();
        };
        if steps.len() != step || hit.ts_us - steps[0].ts_us > within {
            return Vec::new();
        }
        steps.push(hit);
        if step < last {
            return Vec::new();
        }
        self.progress.remove(&group).unwrap_or_default()
    }

    fn threshold(&mut self, rule: &Rule, hit: Hit, count: u64, window: i64) -> Vec<Hit> {
        // The group key in a reused string: copied only for a new group.
        let mut group = std::mem::take(&mut self.scratch);
        write_key(&mut group, &hit, &rule.keys.group);
        let fired = self.threshold_in(rule, hit, count, window, &group);
        self.scratch = group;
        fired
    }

    fn threshold_in(
        &mut self,
        rule: &Rule,
        mut hit: Hit,
        count: u64,
        window: i64,
        group: &str,
    ) -> Vec<Hit> {
        let now = hit.ts_us;
        if let Some(last) = self.tripped.get_mut(group) {
            if *last > now - window {
                *last = now;
                return vec![hit];
            }
            self.tripped.remove(group);
        }
        let d = rule.keys.distinct;
        if !self.windows.contains_key(group) {
            self.windows.insert(group.to_string(), VecDeque::new());
        }
        let win = self.windows.get_mut(group).expect("inserted above");
        let mut counts = d.map(|d| {
            if !self.distinct.contains_key(group) {
                let mut m = HashMap::new();
                for v in win.iter().filter_map(|h| distinct_value(h, d)) {
                    *m.entry(v.to_string()).or_insert(0) += 1;
                }
                self.distinct.insert(group.to_string(), m);
            }
            self.distinct.get_mut(group).expect("inserted above")
        });
        if let (Some(c), Some(v)) = (
            counts.as_deref_mut(),
            d.and_then(|d| distinct_value(&hit, d)),
        ) {
            match c.get_mut(v) {
                Some(n) => *n += 1,
                None => {
                    c.insert(v.to_string(), 1);
                }
            }
        }
        // Kept across batches: its columns are copied out of its batch.
        hit.own();
        win.push_back(hit);
        trim(win, counts.as_deref_mut(), d, now - window);
        let reached = match counts {
            Some(c) => c.len() as u64 >= count,
            None => win.len() as u64 >= count,
        };
        if reached {
            // The window's hits fire together; with dedup, later ones join
            // the burst's alert, else the window starts over.
            if rule.dedup_ttl_us.is_some() {
                self.tripped.insert(group.to_string(), now);
            }
            self.distinct.remove(group);
            self.windows
                .remove(group)
                .map(Vec::from)
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// Whether the first-seen key of `fired` is new (outside learning).
    fn first_seen(&mut self, rule: &Rule, fired: &[Hit]) -> bool {
        let learn = rule.first_seen_learn_us.unwrap_or(0);
        let remember = rule.first_seen_remember_us.unwrap_or(learn);
        let last = fired.last().expect("a firing has hits");
        let now = last.ts_us;
        let since = *self.learning_since.get_or_insert(fired[0].ts_us);
        // Most hits are of known keys: looked up without a new string.
        let key = &mut self.scratch;
        write_key(key, last, &rule.keys.first_seen);
        // A stale entry counts as unknown; stale ones are pruned per batch.
        let previous = match self.baseline.get_mut(key.as_str()) {
            Some(t) => Some(std::mem::replace(t, now)),
            None => self.baseline.insert(key.clone(), now),
        };
        let learning = now < since + learn;
        let known = previous.is_some_and(|t| t > now - remember);
        !learning && !known
    }

    /// Whether `fired` belongs to an incident that is open (within its TTL).
    fn is_open(&self, rule: &Rule, fired: &[Hit]) -> bool {
        let Some(ttl) = rule.dedup_ttl_us else {
            return false;
        };
        if self.open.is_empty() {
            return false;
        }
        let last_us = fired.last().expect("a firing has hits").ts_us;
        self.open
            .get(&join_key(&fired[0], &rule.keys.dedup))
            .is_some_and(|o| o.first_us > last_us - ttl)
    }

    fn raise(&mut self, rule: &Rule, fired: Vec<Hit>, out: &mut Outcome) {
        let first = &fired[0];
        let (first_us, last_us) = (first.ts_us, fired.last().expect("a firing has hits").ts_us);
        let count = fired.len() as u64;
        if let Some(ttl) = rule.dedup_ttl_us {
            // Looked up in a reused string: folding into an open incident
            // copies no key.
            write_key(&mut self.scratch, first, &rule.keys.dedup);
            let k = self.scratch.as_str();
            // An incident is open for `ttl` from its first event; one past
            // it is closed (and a new one begins).
            if self
                .open
                .get(k)
                .is_some_and(|o| o.first_us <= last_us - ttl)
                && let Some(o) = self.open.remove(k)
            {
                out.closed.push(o.into_alert());
            }
            if let Some(open) = self.open.get_mut(k) {
                // Folded in place: nothing is copied per event.
                open.last_us = open.last_us.max(last_us);
                let a = &mut open.alert;
                a.count += count;
                a.audit_ids.extend(
                    fired
                        .iter()
                        .filter_map(|h| h.audit_id().map(str::to_string)),
                );
                return;
            }
        }
        let dedup_key = rule.dedup_ttl_us.map(|_| self.scratch.clone());
        let key_idx: Vec<usize> = if rule.dedup_ttl_us.is_some() {
            rule.keys.dedup.clone()
        } else if rule.threshold.is_some() {
            rule.keys.group.clone()
        } else {
            rule.keys.first_seen.clone()
        };
        let key: BTreeMap<String, String> = key_idx
            .iter()
            .filter_map(|&i| Some((rule.keys.names[i].clone(), first.key(i)?.to_string())))
            .collect();
        let anchor = first
            .audit_id()
            .map_or_else(|| first.ts_us.to_string(), str::to_string);
        let id = format!(
            "{:016x}",
            fnv1a(&[rule.id(), dedup_key.as_deref().unwrap_or(""), &anchor])
        );
        let f = |n: &str| first.field(n).map(str::to_string);
        let command = match first.field("subresource") {
            Some("exec" | "attach") => first.field("request_uri").and_then(exec_command),
            _ => None,
        };
        let alert = Alert {
            id,
            rule: rule.id().to_string(),
            title: rule.file.title.clone(),
            severity: rule.file.severity,
            guardduty_type: rule.file.guardduty_type.clone(),
            mitre_tactic: rule.file.mitre.as_ref().map(|m| m.tactic.clone()),
            cluster: f("cluster"),
            who: f("who"),
            arn: f("arn"),
            session: f("session").filter(|s| !s.is_empty()),
            source_ip: f("source_ip"),
            user_agent: f("user_agent"),
            verb: f("verb"),
            resource: f("resource"),
            subresource: f("subresource"),
            namespace: f("namespace"),
            name: f("name"),
            request_uri: f("request_uri"),
            command,
            key,
            first_seen: format_us(first_us),
            last_seen: format_us(last_us),
            count,
            audit_ids: fired
                .iter()
                .filter_map(|h| h.audit_id().map(str::to_string))
                .collect(),
        };
        out.new.push(alert.clone());
        match dedup_key {
            Some(k) => {
                let open = Open {
                    alert,
                    first_us,
                    last_us,
                };
                self.open.insert(k, open);
            }
            None => out.closed.push(alert),
        }
    }
}
