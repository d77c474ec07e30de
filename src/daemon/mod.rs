//! `eksaudit daemon`: follows CloudWatch log groups and files, evaluates
//! every rule on micro-batches, and delivers alerts to sinks.
//!
//! One loop, one state file. Each tick: deliver what the outbox holds; read
//! what is new; evaluate; then commit the new read positions, the rules'
//! memory and the new alerts (into the outbox) in one atomic write; then
//! deliver. A crash before the commit re-reads the same events with the
//! same memory and raises the same alerts (same ids); after it, the alerts
//! wait in the outbox. An alert leaves the outbox only when every sink has
//! acknowledged it. The one window no local design can close: a crash
//! after a receiver accepted an alert and before the acknowledgement is
//! committed sends that alert again on restart, with the same id (and an
//! `Idempotency-Key` header), so receivers can drop the repeat.

mod config;
mod follow;
mod http;
mod sinks;
mod state;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::signal::unix::{SignalKind, signal};

pub use config::DaemonConfig;
use follow::Followed;
use http::Metrics;
use sinks::Sink;
use state::{Pending, State, Store};

use crate::alerts::{self, Engine, Rule};
use crate::decode::Decoder;
use crate::report::Report;
use crate::source::cloudwatch::{
    Chunker, Clients, Connection, Cursor, LogEvent, Puller, Window, now_ms,
};

/// Delivery attempts per alert and sink within one tick.
const ATTEMPTS: u32 = 3;

/// FilterLogEvents pages (up to 10,000 events each) read per log group per
/// tick.
const MAX_PAGES_PER_TICK: usize = 10;

fn log(msg: impl std::fmt::Display) {
    eprintln!(
        "{} eksaudit daemon: {msg}",
        alerts::engine::format_us(now_ms() * 1000)
    );
}

/// Rules and sinks as configured; rebuilt on SIGHUP.
fn load_rules(config: &DaemonConfig) -> anyhow::Result<Vec<Rule>> {
    let params = alerts::load_config(&config.path)?;
    Ok(alerts::load_rules(config.rules.as_deref(), &params)?)
}

fn build_sinks(config: &DaemonConfig) -> anyhow::Result<Vec<Sink>> {
    config
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| Sink::from_config(s, i).map_err(Into::into))
        .collect()
}

struct Daemon {
    config: DaemonConfig,
    defaults: Connection,
    engine: Engine,
    sinks: Vec<Sink>,
    store: Store,
    state: State,
    metrics: Arc<Metrics>,
    clients: Clients,
    /// Decodes what the rules read; made again when they change.
    decoder: Option<Decoder>,
    /// Sinks that failed: when to try again, and the delay that was used.
    backoff: BTreeMap<String, (Instant, Duration)>,
}

/// `daemon --check`: everything `run` reads before it starts, and nothing
/// it does after.
pub fn check(config_path: &Path, defaults: Connection) -> anyhow::Result<std::process::ExitCode> {
    let config = DaemonConfig::load(config_path, &defaults)?;
    let rules = load_rules(&config)?;
    let sinks = build_sinks(&config)?;
    println!(
        "{}: ok: {} rule(s), {} log group(s), {} followed path(s), {} sink(s); state in {}, /healthz and /metrics on {}",
        config_path.display(),
        rules.len(),
        config.groups.len(),
        config.follow.len(),
        sinks.len(),
        config.state_dir.display(),
        config.listen
    );
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn run(config_path: &Path, defaults: Connection) -> anyhow::Result<std::process::ExitCode> {
    crate::memory::allocate_large_blocks_apart();
    let config = DaemonConfig::load(config_path, &defaults)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Before anything can take long: a SIGTERM during start-up must be
        // handled, not kill the process.
        let signals = Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        };
        let store = Store::open(&config.state_dir)?;
        let mut state = match store.load()? {
            Some(s) => s,
            None => State::new(config.start_ms),
        };
        let rules = load_rules(&config)?;
        let sinks = build_sinks(&config)?;
        let metrics = Arc::new(Metrics::default());
        http::serve(config.listen, metrics.clone())
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let mut engine = Engine::new(rules);
        engine.states = std::mem::take(&mut state.rules);
        mark_new_file_sinks(&sinks, &mut state)?;
        store.save(&mut state, &engine.states)?;
        log(format_args!(
            "started: {} rule(s), {} log group(s), {} file(s), {} sink(s), {} alert(s) pending; metrics on http://{}/metrics",
            engine.rules().len(),
            config.groups.len(),
            config.follow.len(),
            sinks.len(),
            state.outbox.len(),
            config.listen
        ));
        let mut d = Daemon {
            config,
            defaults,
            engine,
            sinks,
            store,
            state,
            metrics,
            clients: Clients::default(),
            decoder: None,
            backoff: BTreeMap::new(),
        };
        d.main_loop(signals).await
    })
}

/// A file sink seen for the first time: its length now is where this
/// daemon's alerts begin, committed before any is written, so a crash before
/// the first acknowledgement cannot leave a line that is written again.
fn mark_new_file_sinks(sinks: &[Sink], state: &mut State) -> anyhow::Result<bool> {
    let mut changed = false;
    for sink in sinks {
        if let Sink::File { path } = sink
            && let std::collections::btree_map::Entry::Vacant(e) =
                state.sink_files.entry(sink.name())
        {
            let mark = sinks::mark_of(path).with_context(|| format!("{}", path.display()))?;
            e.insert(mark);
            changed = true;
        }
    }
    Ok(changed)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Daemon {
    async fn main_loop(&mut self, signals: Signals) -> anyhow::Result<std::process::ExitCode> {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        loop {
            if let Err(e) = self.tick().await {
                self.metrics.source_errors.fetch_add(1, Ordering::Relaxed);
                log(format_args!(
                    "{e:#} (nothing committed; retrying next tick)"
                ));
            }
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => self.reload(),
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
        // Drain: what is pending gets one more chance, then the state.
        self.backoff.clear();
        self.deliver().await;
        self.store.save(&mut self.state, &self.engine.states)?;
        log(format_args!(
            "stopped; {} alert(s) pending",
            self.state.outbox.len()
        ));
        Ok(std::process::ExitCode::SUCCESS)
    }

    fn reload(&mut self) {
        let reloaded = DaemonConfig::load(&self.config.path, &self.defaults)
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok((load_rules(&c)?, build_sinks(&c)?, c)))
            .and_then(|(rules, sinks, c)| {
                let mut next = self.state.clone();
                if mark_new_file_sinks(&sinks, &mut next)? {
                    self.store.save(&mut next, &self.engine.states)?;
                    self.state = next;
                }
                Ok((rules, sinks, c))
            });
        match reloaded {
            Ok((rules, sinks, config)) => {
                self.engine.set_rules(rules);
                self.decoder = None;
                self.sinks = sinks;
                // Sources keep their positions; new ones start now.
                self.config = DaemonConfig {
                    state_dir: self.config.state_dir.clone(),
                    listen: self.config.listen,
                    ..config
                };
                self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                log(format_args!(
                    "reloaded: {} rule(s)",
                    self.engine.rules().len()
                ));
            }
            Err(e) => {
                self.metrics.reload_errors.fetch_add(1, Ordering::Relaxed);
                log(format_args!(
                    "reload refused, old rules and sinks kept: {e:#}"
                ));
            }
        }
    }

    /// Sends the outbox, in order, to each sink; each acknowledgement is
    /// committed. A sink that fails stops (for this tick) without holding
    /// up the others; an alert leaves the outbox once every sink has it.
    async fn deliver(&mut self) {
        let Daemon {
            sinks,
            state,
            store,
            metrics,
            backoff,
            engine,
            ..
        } = self;
        for sink in sinks.iter() {
            let name = sink.name();
            // A sink that failed is left alone for a while (doubling up to
            // five minutes), so a hanging receiver does not stall reading.
            if backoff
                .get(&name)
                .is_some_and(|(at, _)| Instant::now() < *at)
            {
                continue;
            }
            for i in 0..state.outbox.len() {
                if state.outbox[i].done.contains(&name) {
                    continue;
                }
                let mark = state.sink_files.get(&name).copied();
                let mark = match sink.deliver(&state.outbox[i].alert, ATTEMPTS, mark).await {
                    Ok(m) => m,
                    Err(e) => {
                        metrics.sink_error(&name);
                        let delay = backoff.get(&name).map_or(Duration::from_secs(1), |(_, d)| {
                            (*d * 2).min(Duration::from_secs(300))
                        });
                        backoff.insert(name.clone(), (Instant::now() + delay, delay));
                        log(format_args!("{e}; its alerts wait (next try in {delay:?})"));
                        break;
                    }
                };
                backoff.remove(&name);
                crate::failpoint::hit("after-sink-write");
                // The acknowledgement and the file's new length, together.
                if let Some(m) = mark {
                    state.sink_files.insert(name.clone(), m);
                }
                state.outbox[i].done.push(name.clone());
                if let Err(e) = store.save(state, &engine.states) {
                    log(format_args!("{e}"));
                    return;
                }
            }
        }
        let names: Vec<String> = sinks.iter().map(Sink::name).collect();
        let before = state.outbox.len();
        state
            .outbox
            .retain(|p| !names.iter().all(|n| p.done.contains(n)));
        if state.outbox.len() != before
            && let Err(e) = store.save(state, &engine.states)
        {
            log(format_args!("{e}"));
        }
        metrics
            .pending
            .store(state.outbox.len() as u64, Ordering::Relaxed);
        metrics
            .checkpoint_ms
            .store(state.saved_ms, Ordering::Relaxed);
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        self.deliver().await;
        if self.state.outbox.len() >= self.config.max_pending {
            log(format_args!(
                "{} alerts wait for sinks (max_pending): not reading until they are delivered",
                self.state.outbox.len()
            ));
            return Ok(());
        }
        let report = Report::new();
        let (batches, cursors, files) = self.read(&report).await?;
        let counts = report.counts();
        for line in &counts.first {
            log(line);
        }
        let events: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if events == 0 && cursors.is_empty() && files == self.state.files {
            // Nothing new: nothing to evaluate, nothing to commit. An idle
            // daemon costs a directory listing and a poll per tick.
            return Ok(());
        }
        let committed = self.engine.states.clone();
        let outcome = match self.engine.evaluate(batches).await {
            Ok(o) => o,
            Err(e) => {
                // Nothing is committed: the rules' memory goes back too.
                self.engine.states = committed;
                return Err(e.into());
            }
        };
        // The commit: read positions, the rules' memory and the new alerts
        // together, or (if it cannot be written) none of them.
        let mut next = self.state.clone();
        let raised: Vec<String> = outcome.new.iter().map(|a| a.rule.clone()).collect();
        next.outbox
            .extend(outcome.new.into_iter().map(|alert| Pending {
                alert,
                done: Vec::new(),
            }));
        next.cursors.extend(cursors);
        next.files = files;
        if let Err(e) = self.store.save(&mut next, &self.engine.states) {
            self.engine.states = committed;
            return Err(e.into());
        }
        self.state = next;
        for rule in &raised {
            self.metrics.alert(rule);
        }
        self.metrics
            .checkpoint_ms
            .store(self.state.saved_ms, Ordering::Relaxed);
        self.metrics
            .events_in
            .fetch_add(events as u64, Ordering::Relaxed);
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .pending
            .store(self.state.outbox.len() as u64, Ordering::Relaxed);
        self.deliver().await;
        crate::memory::release_free_memory();
        Ok(())
    }

    /// Everything new in every source, with the positions after it
    /// (committed by the caller): CloudWatch cursors that moved, and every
    /// followed file's position.
    #[allow(clippy::type_complexity)]
    async fn read(
        &mut self,
        report: &Report,
    ) -> anyhow::Result<(
        Vec<RecordBatch>,
        BTreeMap<String, Cursor>,
        BTreeMap<String, Followed>,
    )> {
        if self.decoder.is_none() {
            self.decoder = Some(Decoder::new(self.engine.columns().await?));
        }
        let decoder = self.decoder.as_ref().expect("made above");
        let mut batches = Vec::new();
        let plan = follow::plan(follow::scan(&self.config.follow), &self.state.files);
        for note in &plan.notes {
            log(note);
        }
        let mut files = plan.keep;
        for (found, at) in plan.read {
            let read = follow::read_new(&found, at)
                .with_context(|| format!("reading {}", found.path.display()))?;
            let mut offset = at;
            if let Some((chunk, next)) = read {
                batches.push(decoder.decode(&chunk, report)?);
                offset = next;
                self.metrics
                    .newest_event_ms
                    .store(now_ms(), Ordering::Relaxed);
            }
            files.insert(found.fingerprint.clone(), Followed::at(&found, offset));
        }
        let mut cursors = BTreeMap::new();
        let window = Window {
            start_ms: self.state.start_ms,
            end_ms: now_ms(),
        };
        for spec in &self.config.groups {
            let key = spec.key();
            let mut cursor = self.state.cursors.get(&key).cloned().unwrap_or_default();
            let client = self.clients.get(&spec.connection).await;
            let mut puller = Puller::new(client, spec);
            puller.settle = self.config.settle;
            puller.max_tps = self.config.max_tps;
            let mut chunker = Chunker::new(&spec.log_group, None);
            let mut pages: Vec<Vec<LogEvent>> = Vec::new();
            let mut last = None;
            // A backlog (after downtime) is read over several ticks, so a
            // batch stays bounded in memory.
            let mut deliver = |page: &[LogEvent], next: &Cursor| {
                pages.push(page.to_vec());
                last = Some(next.clone());
                Ok(pages.len() < MAX_PAGES_PER_TICK)
            };
            puller.pull(window, &mut cursor, &mut deliver).await?;
            for page in &pages {
                if let Some(newest) = page.iter().map(|e| e.timestamp_ms).max() {
                    self.metrics
                        .newest_event_ms
                        .fetch_max(newest, Ordering::Relaxed);
                }
                batches.push(decoder.decode(&chunker.chunk(page, report), report)?);
            }
            if let Some(mut c) = last {
                c.done = false;
                cursors.insert(key, c);
            }
        }
        Ok((batches, cursors, files))
    }
}
