//! `eksaudit cluster scheduler|executor`: Ballista nodes that know
//! eksaudit's functions and read lakes on disk or S3.

use std::process::ExitCode;

use super::{ClusterArgs, ClusterCommand};
use crate::lake::s3::S3Settings;
use crate::query::cluster::{ExecutorOptions, run_executor, run_scheduler};

pub const AFTER_HELP: &str = "\
A cluster for lakes too big for one machine: one scheduler, any number of
executors, each its own process (Apache DataFusion Ballista). Every node
reads the lake itself: a folder all of them see at the same path (NFS, a
shared volume), or s3://, with credentials from the AWS chain on each node
(IRSA or Pod Identity on EKS).

  eksaudit cluster scheduler --bind 0.0.0.0:50050
  eksaudit cluster executor --scheduler sched-host:50050 --bind 0.0.0.0 --external-host exec-1
  eksaudit query --remote df://sched-host:50050 --lake s3://bucket/eks-lake \"select ...\"

Queries over the lake only (raw logs are decoded on one machine: ingest
them first). Days are pruned on the cluster as locally: by `dt`, `cluster`,
--since/--until and time predicates. An executor that dies mid-query is noticed
after --executor-timeout; its tasks are run again on the others, or the
query fails with the scheduler's error when none is left.

An executor started before its scheduler waits for it (--scheduler-wait,
60 s by default), then exits with an error if it never answered.

No authentication or TLS between nodes: keep them on a private network.
Ballista's messages go to stderr: warnings and errors unless RUST_LOG
says otherwise (RUST_LOG=info shows each task).";

/// Ballista's own messages on stderr, at `warn` unless RUST_LOG says
/// otherwise, each with its UTC time.
fn init_logging() {
    use std::io::Write;
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Warn)
        .parse_default_env()
        .format(|f, r| {
            writeln!(
                f,
                "{} {:5} {}: {}",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                r.level(),
                r.target(),
                r.args()
            )
        })
        .init();
}

/// Returns once the scheduler accepts a connection; an error after
/// `wait` without one. Ballista's executor gives up at once when the
/// scheduler is not listening yet (it may start after it, as pods do).
async fn wait_for_scheduler(
    at: std::net::SocketAddr,
    wait: std::time::Duration,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let mut said = false;
    loop {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::net::TcpStream::connect(at),
        );
        let why = match attempt.await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer to a connection".into(),
        };
        if started.elapsed() >= wait {
            anyhow::bail!(
                "the scheduler at {at} did not answer in {} s: {why}",
                wait.as_secs()
            );
        }
        if !said {
            eprintln!("eksaudit: waiting for the scheduler at {at}");
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()?;
    runtime.block_on(async {
        match args.command {
            ClusterCommand::Scheduler(a) => {
                let s3 = S3Settings::load(&a.aws.connection(8)).await;
                let host = a.external_host.unwrap_or_else(|| a.bind.ip().to_string());
                eprintln!("eksaudit: Ballista scheduler on {}", a.bind);
                run_scheduler(a.bind, host, a.executor_timeout, s3).await
            }
            ClusterCommand::Executor(a) => {
                let wait = std::time::Duration::from_secs(a.scheduler_wait);
                wait_for_scheduler(a.scheduler, wait).await?;
                let s3 = S3Settings::load(&a.aws.connection(8)).await;
                let opts = ExecutorOptions {
                    scheduler: a.scheduler,
                    external_host: a.external_host.or_else(|| Some(a.bind.clone())),
                    bind_host: a.bind,
                    port: a.port,
                    grpc_port: a.grpc_port,
                    work_dir: a.work_dir,
                    heartbeat_seconds: a.heartbeat,
                    vcores: a
                        .concurrent_tasks
                        .unwrap_or_else(crate::query::default_partitions),
                };
                eprintln!(
                    "eksaudit: Ballista executor on port {} for scheduler {}",
                    opts.port, opts.scheduler
                );
                run_executor(opts, s3).await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
