//! The served directory: which names mean which files, and nothing outside it.
//!
//! Names are checked twice. [`check_name`] (the protocol's rule) lets through only plain file
//! names: no separators, no `..`, no drive letters, no device names. Then the file system has
//! its say: a name that is a symbolic link is accepted only if it leads to a regular file inside
//! the root (checked on the canonical path), and only regular files are served. The verbs agree
//! on links: one leading out of the root is `bad-name` for `GET`, `PUT` and `DELETE` alike,
//! and `LIST` leaves it out. A link to a file inside the root is listed and read through;
//! `DELETE` removes the link, and `PUT` replaces the link with the new file (a rename never
//! writes through a link): the file it led to is untouched.
//!
//! Uploads are written to a temporary file in the root, `.upload-<pid>-<n>.part` (a name no
//! request can reach: names starting with `.` are refused, and `LIST` skips them), and renamed
//! over the target only once complete and verified. `rename` replaces the target atomically on
//! Unix and, through `MoveFileExW(MOVEFILE_REPLACE_EXISTING)`, on Windows: a reader sees the
//! old version or the new one, never a mix.

use crate::protocol::{check_name, Code, Refusal};
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The most entries a `LIST` reply holds (the rest are left out, with a warning in the log).
pub const MAX_LIST: usize = 100_000;

const TEMP_PREFIX: &str = ".upload-";
const TEMP_SUFFIX: &str = ".part";

/// The served directory, as a canonical path.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
}

/// An `io` refusal: the error's text, without the path (the client knows the name).
pub fn io_refusal(what: &str, e: &io::Error) -> Refusal {
    Refusal::new(Code::Io, format!("{what}: {e}"))
}

impl Root {
    /// The directory `dir`, which must exist.
    pub fn open(dir: &Path) -> io::Result<Root> {
        let dir = fs::canonicalize(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("--root {}: {e}", dir.display())))?;
        if !dir.is_dir() {
            let msg = format!("--root {}: not a directory", dir.display());
            return Err(io::Error::new(ErrorKind::InvalidInput, msg));
        }
        Ok(Root { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The regular file `name` names, for reading: `(the name's path, the file's real path)`
    /// (they differ for a symbolic link inside the root).
    ///
    /// # Errors
    ///
    /// `bad-name` for a refused name or a link leading out of the root; `not-found` if there is
    /// no such regular file.
    pub fn existing(&self, name: &str) -> Result<(PathBuf, PathBuf), Refusal> {
        check_name(name)?;
        let path = self.dir.join(name);
        let not_found = || Refusal::new(Code::NotFound, format!("no file {name:?}"));
        let meta = fs::symlink_metadata(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => not_found(),
            _ => io_refusal(name, &e),
        })?;
        if !meta.file_type().is_symlink() {
            return match meta.is_file() {
                true => Ok((path.clone(), path)),
                false => Err(not_found()),
            };
        }
        // A link: followed only to a regular file inside the root.
        let real = fs::canonicalize(&path).map_err(|_| not_found())?;
        if !real.starts_with(&self.dir) {
            let msg = format!("{name:?} is a link that leads out of the served directory");
            return Err(Refusal::new(Code::BadName, msg));
        }
        match fs::metadata(&real) {
            Ok(meta) if meta.is_file() => Ok((path, real)),
            _ => Err(not_found()),
        }
    }

    /// Where an upload of `name` is renamed to. A link is replaced, not followed; and only a
    /// link that `GET` would read through (to a regular file inside the root): `PUT` agrees
    /// with `GET` and `DELETE` on the links it refuses, although replacing them would write
    /// nothing outside the root.
    ///
    /// # Errors
    ///
    /// `bad-name` for a refused name, a directory, a link leading out of the root, or a link
    /// to no regular file (to a directory, or to nothing); `io` if the name cannot be looked up.
    pub fn target(&self, name: &str) -> Result<PathBuf, Refusal> {
        check_name(name)?;
        let path = self.dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(path), // a new file
            Err(e) => return Err(io_refusal(name, &e)),
        };
        if meta.is_dir() {
            let msg = format!("{name:?} is a directory");
            return Err(Refusal::new(Code::BadName, msg));
        }
        if meta.file_type().is_symlink() {
            match self.existing(name) {
                Ok(_) => {}
                Err(refusal) if refusal.code == Code::BadName => return Err(refusal),
                Err(_) => {
                    let msg = format!(
                        "{name:?} is a link to no file of the served directory (to a \
                         directory, or to nothing); it is not replaced"
                    );
                    return Err(Refusal::new(Code::BadName, msg));
                }
            }
        }
        Ok(path)
    }

    /// A new temporary file in the root, for an upload.
    pub fn temp_file(&self) -> io::Result<(PathBuf, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}", std::process::id());
            let path = self.dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((path, file)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the temporary files a server left (killed mid-upload); returns how many. Run at
    /// start: one server per root.
    pub fn remove_stale_temps(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The files a client may get: `(name, size)`, sorted by name. Names [`check_name`]
    /// refuses, directories, and links leading out of the root are left out.
    pub fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no request could name it
            };
            if let Ok((_, real)) = self.existing(&name) {
                if let Ok(meta) = fs::metadata(real) {
                    files.push((name, meta.len()));
                }
            }
            if files.len() == MAX_LIST {
                log::warn!("LIST: more than {MAX_LIST} files; the rest are left out");
                break;
            }
        }
        files.sort_unstable();
        Ok(files)
    }
}
