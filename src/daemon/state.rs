//! The daemon's state, in one file replaced atomically: where each source
//! stands, every rule's memory (windows, baselines, open incidents), and the
//! outbox of alerts not yet acknowledged by every sink. Events read and the
//! alerts they raised are committed together, so a crash loses neither and
//! a restart never raises an alert twice.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::follow::{self, Followed};
use crate::alerts::{Alert, RuleState};
use crate::error::{Error, Result};
use crate::source::cloudwatch::Cursor;

/// 2: followed files by fingerprint, file sinks' committed lengths.
/// A version-1 state is read and moved over (see [`Store::load`]).
const VERSION: u32 = 2;
const FILE: &str = "state.json";

/// An alert waiting for sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub alert: Alert,
    /// Sinks that acknowledged it.
    pub done: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Where CloudWatch pulls start on a first run (ms).
    pub start_ms: i64,
    /// CloudWatch cursor per log group key.
    pub cursors: BTreeMap<String, Cursor>,
    /// Version 1's followed files by path (read, then moved to `files`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offsets: BTreeMap<String, u64>,
    /// Followed files by fingerprint (see `follow`).
    #[serde(default)]
    pub files: BTreeMap<String, Followed>,
    /// File sinks: the file's length after the last alert acknowledged
    /// (committed), by sink name.
    #[serde(default)]
    pub sink_files: BTreeMap<String, SinkMark>,
    /// Every rule's memory, as read from the file. While the daemon runs
    /// the engine holds it (one copy, not two) and [`Store::save`] writes
    /// the engine's.
    #[serde(default, skip_serializing)]
    pub rules: BTreeMap<String, RuleState>,
    pub outbox: Vec<Pending>,
    /// When the state was last committed (ms), for the checkpoint-age metric.
    #[serde(default)]
    pub saved_ms: i64,
}

impl State {
    pub fn new(start_ms: i64) -> Self {
        Self {
            version: VERSION,
            start_ms,
            cursors: BTreeMap::new(),
            offsets: BTreeMap::new(),
            files: BTreeMap::new(),
            sink_files: BTreeMap::new(),
            rules: BTreeMap::new(),
            outbox: Vec::new(),
            saved_ms: 0,
        }
    }
}

/// A file sink's file as of the last committed acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkMark {
    pub len: u64,
    pub dev: u64,
    pub ino: u64,
}

/// The state directory: created owner-only, holding `state.json`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        let io = |e| Error::io(dir.display().to_string(), e);
        fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn load(&self) -> Result<Option<State>> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path.display().to_string(), e)),
        };
        let bad = |reason: String| Error::Checkpoint {
            path: path.display().to_string(),
            reason,
        };
        let mut state: State = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match state.version {
            VERSION => {}
            1 => {
                // Offsets by path become offsets by fingerprint, for the
                // files that are still there and still that long.
                for (path, offset) in std::mem::take(&mut state.offsets) {
                    let found = follow::scan(&[PathBuf::from(&path)]);
                    if let Some(f) = found.into_iter().find(|f| !f.rotated && f.len >= offset) {
                        state
                            .files
                            .insert(f.fingerprint.clone(), Followed::at(&f, offset));
                    }
                }
                state.version = VERSION;
            }
            v => {
                return Err(bad(format!(
                    "version {v} is not {VERSION} (or 1, which is moved over)"
                )));
            }
        }
        Ok(Some(state))
    }

    /// Writes `state` with the rules' memory `rules`: temp file
    /// (owner-only), fsync, rename, fsync of the directory.
    pub fn save(&self, state: &mut State, rules: &BTreeMap<String, RuleState>) -> Result<()> {
        #[derive(Serialize)]
        struct Saved<'a> {
            #[serde(flatten)]
            state: &'a State,
            rules: &'a BTreeMap<String, RuleState>,
        }
        state.saved_ms = crate::source::cloudwatch::now_ms();
        let path = self.path();
        let io = |e| Error::io(path.display().to_string(), e);
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let f = options.open(&tmp).map_err(io)?;
        // Written as it is serialised: no copy of the whole state in memory.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
        serde_json::to_writer(&mut out, &Saved { state, rules }).map_err(|e| io(e.into()))?;
        let f = out.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_state_moves_its_offsets_to_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, "{\"a\":1}\n{\"a\":2}\n").unwrap();
        let gone = dir.path().join("gone.log");
        let v1 = serde_json::json!({
            "version": 1,
            "start_ms": 5,
            "cursors": {},
            "offsets": {log.display().to_string(): 8, gone.display().to_string(): 3},
            "rules": {},
            "outbox": []
        });
        let store = Store::open(&dir.path().join("state")).unwrap();
        std::fs::write(store.path(), v1.to_string()).unwrap();
        let state = store.load().unwrap().unwrap();
        assert_eq!(state.version, VERSION);
        assert!(state.offsets.is_empty());
        let files: Vec<(&str, u64)> = state
            .files
            .values()
            .map(|f| (f.path.as_str(), f.offset))
            .collect();
        assert_eq!(files, vec![(log.to_str().unwrap(), 8)]);
    }
}
