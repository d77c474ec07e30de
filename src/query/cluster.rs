//! The lake on a cluster: Apache DataFusion Ballista, the same engine
//! scaled out. `eksaudit cluster scheduler` and `eksaudit cluster executor`
//! are Ballista's scheduler and executor with eksaudit's functions (they
//! travel by name, so every node must know them) and S3 through the
//! aws-config chain; `eksaudit query --remote df://HOST:PORT --lake LAKE`
//! sends the plan there.
//!
//! Only the lake distributes: it is a Parquet listing table, which
//! Ballista serializes. Raw logs and CloudWatch are decoded on one machine
//! (ingest them into the lake first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::object_store::ObjectStore;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use super::lake::{DayBounds, listing_table, register};
use super::{config, equip};
use crate::error::Result;
use crate::lake::Lake;
use crate::lake::s3::S3Settings;

/// The DataFusion 55.2 rule that breaks map lookups inside structs over
/// Parquet (see `Query::plan`). The plan is optimized again on the
/// scheduler, which cannot tell which queries need it gone: left out
/// there, and on every node.
const TRAP: &str = "extract_leaf_expressions";

/// Object stores of a node: local files, and each `s3://bucket` made on
/// first use from the node's S3 settings.
#[derive(Debug)]
pub struct Stores {
    local: DefaultObjectStoreRegistry,
    s3: S3Settings,
    buckets: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    pub fn new(s3: S3Settings) -> Arc<Self> {
        Arc::new(Self {
            local: DefaultObjectStoreRegistry::new(),
            s3,
            buckets: RwLock::new(HashMap::new()),
        })
    }

    fn runtime(self: &Arc<Self>) -> datafusion::error::Result<Arc<RuntimeEnv>> {
        RuntimeEnvBuilder::new()
            .with_object_store_registry(self.clone())
            .build_arc()
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.local.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.local.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if url.scheme() != "s3" {
            return self.local.get_store(url);
        }
        let bucket = url.host_str().unwrap_or_default().to_string();
        if let Some(store) = self.buckets.read().expect("not poisoned").get(&bucket) {
            return Ok(store.clone());
        }
        let store = self
            .s3
            .store(&bucket)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.buckets
            .write()
            .expect("not poisoned")
            .insert(bucket, store.clone());
        Ok(store)
    }
}

/// `state` with eksaudit's functions and without the trap rule.
fn equipped(state: SessionState) -> datafusion::error::Result<SessionState> {
    let rules = state
        .optimizer()
        .rules
        .iter()
        .filter(|r| r.name() != TRAP)
        .cloned()
        .collect();
    let mut ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state)
            .with_optimizer_rules(rules)
            .build(),
    );
    equip(&mut ctx).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(ctx.state())
}

/// Runs a Ballista scheduler until the process ends.
pub async fn run_scheduler(
    bind: SocketAddr,
    external_host: String,
    executor_timeout_seconds: u64,
    s3: S3Settings,
) -> anyhow::Result<()> {
    let stores = Stores::new(s3);
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host,
        executor_timeout_seconds,
        expire_dead_executor_interval_seconds: executor_timeout_seconds.div_ceil(3).max(1),
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(move |config: SessionConfig| {
        let state = ballista_core::utils::default_session_builder(config)?;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(stores.runtime()?)
            .build();
        equipped(state)
    }));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, bind, Arc::new(config)).await?;
    Ok(())
}

/// Where an executor listens and whom it serves.
pub struct ExecutorOptions {
    pub scheduler: SocketAddr,
    pub bind_host: String,
    pub external_host: Option<String>,
    pub port: u16,
    pub grpc_port: u16,
    pub work_dir: Option<String>,
    pub heartbeat_seconds: u64,
    pub vcores: usize,
}

/// Runs a Ballista executor until the process ends.
pub async fn run_executor(opts: ExecutorOptions, s3: S3Settings) -> anyhow::Result<()> {
    let stores = Stores::new(s3);
    let state = equipped(
        SessionStateBuilder::new()
            .with_default_features()
            .with_runtime_env(stores.runtime()?)
            .build(),
    )?;
    let config = ExecutorProcessConfig {
        scheduler_host: opts.scheduler.ip().to_string(),
        scheduler_port: opts.scheduler.port(),
        bind_host: opts.bind_host,
        external_host: opts.external_host,
        port: opts.port,
        grpc_port: opts.grpc_port,
        work_dir: opts.work_dir,
        vcores: opts.vcores,
        executor_heartbeat_interval_seconds: opts.heartbeat_seconds.max(1),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| stores.runtime())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}

/// A session whose queries run on the Ballista scheduler at `url`
/// (`df://host:port`), with the lake as `audit`. Days are pruned by
/// `dt`, `cluster`, `--since/--until` and time predicates ([`DayBounds`]
/// runs here, before the plan is sent).
pub async fn remote_session(
    url: &str,
    lake: &Lake,
    partitions: usize,
    since_us: Option<i64>,
    until_us: Option<i64>,
    s3: S3Settings,
) -> Result<SessionContext> {
    let stores = Stores::new(s3);
    // The static planner: Ballista 55's adaptive one (its default) cannot
    // recover from a lost executor; a job that loses one mid-stage never
    // ends (apache/datafusion-ballista#1986). The static one runs the lost
    // tasks, and the stages whose output died with it, again.
    let session = SessionConfig::new_with_ballista().with_ballista_adaptive_query_planner(false);
    let state = SessionStateBuilder::new()
        .with_config(config(session, partitions))
        .with_default_features()
        .with_runtime_env(stores.runtime()?)
        .build();
    let mut ctx = SessionContext::remote_with_state(url, equipped(state)?).await?;
    // Ballista's upgrade of the state puts its own function list in place
    // of the state's: the functions go in again.
    equip(&mut ctx)?;
    ctx.add_optimizer_rule(Arc::new(DayBounds));
    register(&ctx, Arc::new(listing_table(lake)?), since_us, until_us)?;
    Ok(ctx)
}
