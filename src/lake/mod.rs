//! The audit lake: events as Hive-partitioned Parquet,
//! `LAKE/cluster=<name>/dt=<YYYY-MM-DD>/<run>-<n>.parquet`, readable as
//! they are by eksaudit, DuckDB, Spark, Athena and Trino.
//!
//! Writes are exactly once and atomically visible. A run writes its files
//! under `LAKE/_eksaudit/staging/` (a folder readers skip, with names no
//! `*.parquet` glob matches), then records them with the inputs they came
//! from in `LAKE/_eksaudit/manifest.json` (one atomic replace), then moves
//! them into their partitions, then clears the record. A run killed before
//! the record leaves only staging files (removed by the next run); killed
//! after it, the next run finishes the moves. Inputs already in the
//! manifest are skipped, so a rerun adds nothing.

pub mod ddl;
pub mod manifest;
pub mod s3;
pub mod write;

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::prefix::PrefixStore;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::schema::{Column, audit_schema, col};
use crate::source::cloudwatch::Connection;

pub use manifest::Manifest;

/// The folder of eksaudit's own files inside a lake (readers skip `_`).
pub const META_DIR: &str = "_eksaudit";
/// The partition columns, in path order.
pub const PARTITION_COLUMNS: [&str; 2] = [col::CLUSTER, DT];
/// The day partition column: `YYYY-MM-DD` (UTC) of `requestReceivedTimestamp`.
pub const DT: &str = "dt";

/// The columns of a lake file: the audit schema without `cluster` (it is
/// in the path), `source_line` as Int64 (Spark reads UInt64 as a decimal),
/// and `raw` last (files written without `--keep-raw` leave it out; it
/// reads as NULL there).
pub fn file_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let fields: Vec<Field> = audit_schema()
            .fields()
            .iter()
            .zip(Column::ALL)
            .filter(|(_, c)| *c != Column::Cluster)
            .map(|(f, c)| match c {
                Column::SourceLine => Field::new(f.name(), DataType::Int64, true),
                _ => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

/// The file schema without `raw` (what ingest writes by default).
pub fn file_schema_without_raw() -> SchemaRef {
    let s = file_schema();
    let fields: Vec<_> = s
        .fields()
        .iter()
        .filter(|f| f.name() != col::RAW)
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// The SQL select list of `schema`'s columns, quoted, with `source_line`
/// cast to the Arrow type `source_line_as` when given (Int64 in the lake,
/// UInt64 in the audit schema).
pub fn select_list(schema: &SchemaRef, source_line_as: Option<&str>) -> String {
    schema
        .fields()
        .iter()
        .map(|f| match (f.name().as_str(), source_line_as) {
            (col::SOURCE_LINE, Some(t)) => {
                format!("arrow_cast(\"{0}\", '{t}') as \"{0}\"", col::SOURCE_LINE)
            }
            (name, _) => format!("\"{name}\""),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lake's location, opened for reading or writing.
pub struct Lake {
    /// As the user wrote it (for messages).
    pub name: String,
    /// The lake's objects, by paths inside it.
    pub store: Arc<dyn ObjectStore>,
    /// The lake's folder on this machine (local lakes).
    pub local: Option<PathBuf>,
    /// An S3 lake's bucket (`s3://bucket`) and its store, for DataFusion.
    pub bucket: Option<(String, Arc<dyn ObjectStore>)>,
    /// Held while writing: one writer at a time.
    _lock: Option<File>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("name", &self.name).finish()
    }
}

/// One data file of the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: Path,
    pub cluster: String,
    pub dt: String,
    pub size: u64,
}

impl Lake {
    fn err(&self, reason: impl std::fmt::Display) -> Error {
        lake_error(&self.name, reason)
    }

    /// Opens a lake to read. A folder must exist.
    pub async fn open(location: &str, conn: &Connection) -> Result<Self> {
        Self::open_with(location, conn, false).await
    }

    /// Opens a lake to write: creates the folder, takes the writer's lock
    /// (a local lake's; on S3, one writer at a time is the user's to
    /// keep), and finishes or clears what a killed run left (see the
    /// module doc).
    pub async fn open_for_writing(location: &str, conn: &Connection) -> Result<(Self, Manifest)> {
        let lake = Self::open_with(location, conn, true).await?;
        let manifest = lake.recover().await?;
        Ok((lake, manifest))
    }

    async fn open_with(location: &str, conn: &Connection, write: bool) -> Result<Self> {
        if location.starts_with("s3://") {
            let (bucket, prefix) = s3::split(location)
                .ok_or_else(|| lake_error(location, "expected s3://BUCKET/PREFIX"))?;
            let store = s3::bucket_store(location, bucket, conn).await?;
            let inside: Arc<dyn ObjectStore> = if prefix.is_empty() {
                store.clone()
            } else {
                Arc::new(PrefixStore::new(store.clone(), prefix))
            };
            return Ok(Self {
                name: location.to_string(),
                store: inside,
                local: None,
                bucket: Some((format!("s3://{bucket}"), store)),
                _lock: None,
            });
        }
        let dir = FsPath::new(location);
        if write {
            std::fs::create_dir_all(dir.join(META_DIR)).map_err(|e| Error::io(location, e))?;
        } else if !dir.is_dir() {
            return Err(lake_error(location, "no such folder"));
        }
        let abs = std::fs::canonicalize(dir).map_err(|e| Error::io(location, e))?;
        let lock = if write {
            let path = abs.join(META_DIR).join("lock");
            let file = File::create(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
            if file.try_lock().is_err() {
                return Err(lake_error(
                    location,
                    format!(
                        "another eksaudit is writing this lake (it holds {}); one writer at a time",
                        path.display()
                    ),
                ));
            }
            Some(file)
        } else {
            None
        };
        let store = LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| lake_error(location, e))?
            .with_automatic_cleanup(true);
        Ok(Self {
            name: location.to_string(),
            store: Arc::new(store),
            local: Some(abs),
            bucket: None,
            _lock: lock,
        })
    }

    /// The lake's URL for DataFusion's listing table.
    pub fn url(&self) -> String {
        match &self.local {
            Some(dir) => format!("{}/", dir.display()),
            None => self.name.trim_end_matches('/').to_string() + "/",
        }
    }

    /// Every data file under the partition folders, in path order.
    pub async fn data_files(&self) -> Result<Vec<DataFile>> {
        let mut files: Vec<DataFile> = self
            .store
            .list(None)
            .map_err(|e| self.err(e))
            .try_filter_map(|meta| async move {
                Ok(partition_of(&meta.location).map(|(cluster, dt)| DataFile {
                    path: meta.location.clone(),
                    cluster,
                    dt,
                    size: meta.size,
                }))
            })
            .try_collect()
            .await?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Finishes a committed run's moves, clears uncommitted staging files.
    async fn recover(&self) -> Result<Manifest> {
        let mut manifest = Manifest::load(self).await?;
        if let Some(pending) = manifest.pending.take() {
            eprintln!(
                "eksaudit: lake {}: finishing run {} (stopped after it was recorded)",
                self.name, pending.run
            );
            self.apply(&pending).await?;
            manifest.save(self).await?;
        }
        self.clear_staging().await?;
        Ok(manifest)
    }

    /// Removes staged files no manifest records (a run that failed or
    /// was killed before its commit).
    pub async fn clear_staging(&self) -> Result<()> {
        let staging = Path::from(format!("{META_DIR}/staging"));
        let left: Vec<Path> = self
            .store
            .list(Some(&staging))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        for path in left {
            self.store.delete(&path).await.map_err(|e| self.err(e))?;
        }
        if let Some(dir) = &self.local {
            // Folders stay behind on a local disk (an object store has none).
            let _ = std::fs::remove_dir_all(dir.join(META_DIR).join("staging"));
        }
        Ok(())
    }

    /// Moves a recorded run's files into place and removes what it
    /// replaces. Idempotent: a move already done is skipped.
    pub async fn apply(&self, pending: &manifest::Pending) -> Result<()> {
        for (from, to) in &pending.moves {
            let (from, to) = (Path::from(from.as_str()), Path::from(to.as_str()));
            match self.store.rename(&from, &to).await {
                Ok(()) => {}
                Err(datafusion::object_store::Error::NotFound { .. })
                    if self.store.head(&to).await.is_ok() => {}
                Err(e) => return Err(self.err(format!("moving {from} to {to}: {e}"))),
            }
        }
        for gone in &pending.deletes {
            match self.store.delete(&Path::from(gone.as_str())).await {
                Ok(()) | Err(datafusion::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("removing {gone}: {e}"))),
            }
        }
        Ok(())
    }
}

pub(crate) fn lake_error(lake: &str, reason: impl std::fmt::Display) -> Error {
    Error::Lake {
        lake: lake.to_string(),
        reason: reason.to_string(),
    }
}

/// `(cluster, dt)` of a data file's path, `None` for anything else
/// (eksaudit's own files, hidden files, other layouts).
pub fn partition_of(path: &Path) -> Option<(String, String)> {
    let parts: Vec<_> = path.parts().collect();
    let [c, d, file] = parts.as_slice() else {
        return None;
    };
    let cluster = c.as_ref().strip_prefix("cluster=")?;
    let dt = d.as_ref().strip_prefix("dt=")?;
    let name = file.as_ref();
    (name.ends_with(".parquet") && !name.starts_with(['.', '_']))
        .then(|| (cluster.to_string(), dt.to_string()))
}

/// The path of a data file.
pub fn data_path(cluster: &str, dt: &str, name: &str) -> Path {
    Path::from(format!("cluster={cluster}/dt={dt}/{name}"))
}

/// Whether `name` can be a cluster's partition folder as it is: EKS's own
/// rule for cluster names (a letter or digit, then letters, digits, `-`
/// and `_`, at most 100), so no path needs escaping for any reader.
pub fn valid_cluster(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_from_paths() {
        let p = Path::from("cluster=prod/dt=2026-11-02/x-00001.parquet");
        assert_eq!(
            partition_of(&p),
            Some(("prod".to_string(), "2026-11-02".to_string()))
        );
        assert_eq!(partition_of(&Path::from("_eksaudit/manifest.json")), None);
        assert_eq!(
            partition_of(&Path::from("cluster=a/dt=2026-11-02/.x.parquet")),
            None
        );
        assert_eq!(
            partition_of(&Path::from("cluster=a/dt=2026-11-02/x.parquet.tmp")),
            None
        );
    }

    #[test]
    fn cluster_names() {
        assert!(valid_cluster("prod-eu_1"));
        assert!(!valid_cluster(""));
        assert!(!valid_cluster("-x"));
        assert!(!valid_cluster("a/b"));
        assert!(!valid_cluster("a=b"));
    }

    #[test]
    fn file_schema_is_for_every_reader() {
        let s = file_schema();
        assert!(s.field_with_name(col::CLUSTER).is_err());
        assert_eq!(
            s.field_with_name(col::SOURCE_LINE).unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(s.fields().last().unwrap().name(), col::RAW);
        assert!(file_schema_without_raw().field_with_name(col::RAW).is_err());
    }
}
