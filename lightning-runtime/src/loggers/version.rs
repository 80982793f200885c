//! The folder layout every logger shares: `save_dir/name/version_N`, with `N` the next free number.

use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where one logger writes: `save_dir/name/version_N`.
#[derive(Clone, Debug)]
pub(crate) struct VersionedDir {
    save_dir: PathBuf,
    name: String,
    version: usize,
}

impl VersionedDir {
    /// Picks the next free version under `save_dir/name` now, so that [`log_dir`](Self::log_dir) is known
    /// before anything is written (the folder itself is made at the first write).
    pub fn new(save_dir: PathBuf, name: String) -> Result<Self> {
        let mut dir = VersionedDir { save_dir, name, version: 0 };
        dir.version = next_version(&dir.root_dir())?;
        Ok(dir)
    }

    pub fn save_dir(&self) -> &Path {
        &self.save_dir
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> usize {
        self.version
    }

    pub fn set_version(&mut self, version: usize) {
        self.version = version;
    }

    /// `save_dir/name`, or `save_dir` alone when the name is empty (as Lightning does).
    pub fn root_dir(&self) -> PathBuf {
        if self.name.is_empty() {
            self.save_dir.clone()
        } else {
            self.save_dir.join(&self.name)
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root_dir().join(format!("version_{}", self.version))
    }

    /// Makes the log folder (and its parents) if missing.
    pub fn create(&self) -> Result<PathBuf> {
        let dir = self.log_dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_error("cannot create the log folder", &dir, e))?;
        Ok(dir)
    }
}

/// One more than the highest `version_<digits>` folder in `root`; 0 when there is none or `root` does not
/// exist yet. Files and other names are ignored, as Lightning ignores them.
pub(crate) fn next_version(root: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(_) if root.exists() && !root.is_dir() => {
            return Err(Error::Config(format!(
                "the logger folder {} is a file, not a folder: choose another save_dir or name",
                root.display()
            )))
        }
        Err(e) => return Err(io_error("cannot list the logger folder", root, e)),
    };
    let mut next = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list the logger folder", root, e))?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|name| name.strip_prefix("version_")) else { continue };
        // `version_` + digits only: `version_1_old` or `version_x` are someone else's folders.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A file named `version_3` does not hold a run; following symlinks keeps linked runs counted.
        if !entry.path().is_dir() {
            continue;
        }
        if let Ok(number) = number.parse::<usize>() {
            next = next.max(number.saturating_add(1));
        }
    }
    Ok(next)
}

/// An I/O error that names what was being done and the path: `Error::Io`'s message is the `io::Error`'s
/// alone, and a bare "Permission denied (os error 13)" does not say which file.
pub(crate) fn io_error(what: &str, path: &Path, error: io::Error) -> Error {
    Error::Io(io::Error::new(error.kind(), format!("{what} {}: {error}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_version_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(next_version(&root.join("missing")).unwrap(), 0);
        for dir in ["version_0", "version_4", "version_x", "version_", "version_2_old", "other"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("version_9"), b"a file").unwrap();
        assert_eq!(next_version(root).unwrap(), 5);
    }

    #[test]
    fn a_file_in_place_of_the_folder_is_a_config_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("logs");
        std::fs::write(&file, b"").unwrap();
        let error = next_version(&file).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{error}");
    }

    #[test]
    fn an_empty_name_logs_in_save_dir() {
        let dir = VersionedDir { save_dir: "logs".into(), name: String::new(), version: 2 };
        assert_eq!(dir.log_dir(), Path::new("logs/version_2"));
    }
}
