//! `LAKE/_eksaudit/manifest.json`: what is in the lake, and the run being
//! moved into place. Replaced whole (object stores put atomically), so a
//! reader or a killed writer sees the old manifest or the new one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path as FsPath;

use datafusion::object_store::ObjectStoreExt;
use datafusion::object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{Lake, META_DIR};
use crate::error::Result;
use crate::source::cloudwatch::{Cursor, Window};

const VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub version: u32,
    /// Files ingested, by [`fingerprint`].
    #[serde(default)]
    pub files: BTreeMap<String, Ingested>,
    /// CloudWatch log groups ingested, by group key (endpoint and name):
    /// where the next pull starts, as `fetch`'s checkpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cloudwatch: BTreeMap<String, Pulled>,
    /// A run recorded but maybe not yet moved into place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// One input file, ingested.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ingested {
    /// The path it was ingested from (for people; identity is the key).
    pub path: String,
    pub length: u64,
    pub run: String,
}

/// One log group's pull: its window and how far it got. Saved in the same
/// put as the files that hold the events before the cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pulled {
    pub window: Window,
    /// No --until: once done, the next run pulls from the end to its now.
    pub open_ended: bool,
    pub cursor: Cursor,
}

/// A run's moves (staging → partition) and the files they replace
/// (compaction), as recorded before any of them is done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub run: String,
    pub moves: Vec<(String, String)>,
    #[serde(default)]
    pub deletes: Vec<String>,
}

fn path() -> Path {
    Path::from(format!("{META_DIR}/manifest.json"))
}

impl Manifest {
    pub async fn load(lake: &Lake) -> Result<Self> {
        let bytes = match lake.store.get(&path()).await {
            Ok(got) => got.bytes().await.map_err(|e| lake.err(e))?,
            Err(datafusion::object_store::Error::NotFound { .. }) => {
                return Ok(Manifest {
                    version: VERSION,
                    ..Manifest::default()
                });
            }
            Err(e) => return Err(lake.err(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| lake.err(format!("{META_DIR}/manifest.json: {e}")))?;
        if manifest.version > VERSION {
            return Err(lake.err(format!(
                "{META_DIR}/manifest.json is version {}; this eksaudit knows up to {VERSION} (upgrade it)",
                manifest.version
            )));
        }
        Ok(manifest)
    }

    /// Replaces the manifest in one atomic put.
    pub async fn save(&self, lake: &Lake) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        lake.store
            .put(&path(), bytes.into())
            .await
            .map_err(|e| lake.err(format!("writing {META_DIR}/manifest.json: {e}")))?;
        Ok(())
    }

    /// Records `pending` (and whatever else changed), moves its files into
    /// place, then clears it: the commit of one run.
    pub async fn commit(&mut self, lake: &Lake, pending: Pending) -> Result<()> {
        self.pending = Some(pending);
        self.save(lake).await?;
        crate::failpoint::hit("lake-recorded");
        let pending = self.pending.take().expect("just set");
        lake.apply(&pending).await?;
        self.save(lake).await?;
        lake.clear_staging().await
    }
}

/// A file's identity for "already ingested": FNV-1a 64 of its first 64 KB
/// (compressed bytes as they are) and its length. Renaming or copying a
/// file keeps it; appending changes it.
pub fn fingerprint(path: &FsPath) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(64 << 10);
    (&mut file).take(64 << 10).read_to_end(&mut head)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &head {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{hash:016x}-{len}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"{\"kind\":\"Event\"}\n").unwrap();
        std::fs::write(&b, b"{\"kind\":\"Event\"}\n").unwrap();
        std::fs::write(&c, b"{\"kind\":\"Event\"}\n{}\n").unwrap();
        assert_eq!(fingerprint(&a).unwrap(), fingerprint(&b).unwrap());
        assert_ne!(fingerprint(&a).unwrap(), fingerprint(&c).unwrap());
    }
}
