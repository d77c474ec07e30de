//! Turning command-line paths into the list of inputs to read: files as
//! named, directories walked recursively in name order, `-` for stdin.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File {
        path: PathBuf,
        /// Found by walking a directory rather than named by the user: a
        /// file that holds no audit log is then skipped, not reported.
        discovered: bool,
    },
}

impl Input {
    /// The name used in messages (`PATH:LINE: ...`).
    pub fn label(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Whether `input` is a Parquet file (by its magic bytes).
pub fn is_parquet(input: &Input) -> bool {
    use std::io::Read;
    let Input::File { path, .. } = input else {
        return false;
    };
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"PAR1"
}

/// Total size of the inputs on disk; `None` when stdin is among them.
pub fn total_size(inputs: &[Input]) -> Option<u64> {
    inputs
        .iter()
        .map(|i| match i {
            Input::Stdin => None,
            Input::File { path, .. } => Some(fs::metadata(path).map_or(0, |m| m.len())),
        })
        .sum()
}

/// Expands paths: a missing path is an error naming it.
pub fn expand_paths<S: AsRef<str>>(paths: &[S]) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let path = Path::new(p);
        let meta = fs::metadata(path).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(Input::File {
                path: path.to_path_buf(),
                discovered: false,
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Input>) -> Result<()> {
    let label = || dir.display().to_string();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(label(), e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io(label(), e))?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let meta = fs::metadata(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else if meta.is_file() {
            out.push(Input::File {
                path,
                discovered: true,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_names_it() {
        let err = expand_paths(&["/no/such/file.json"]).unwrap_err();
        assert!(err.to_string().starts_with("/no/such/file.json: "), "{err}");
    }

    #[test]
    fn directories_are_walked_in_order() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::create_dir(dir.path().join("b"))?;
        fs::write(dir.path().join("b/2.json"), "")?;
        fs::write(dir.path().join("a.json"), "")?;
        fs::write(dir.path().join(".hidden"), "")?;
        let root = dir.path().display().to_string();
        let inputs = expand_paths(&[root.as_str(), "-"]).expect("both exist");
        let names: Vec<String> = inputs.iter().map(|i| i.label()).collect();
        assert_eq!(names.len(), 3);
        assert!(names[0].ends_with("a.json"));
        assert!(names[1].ends_with("b/2.json"));
        assert_eq!(names[2], "<stdin>");
        Ok(())
    }
}
