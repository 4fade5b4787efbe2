//! Reading and writing data files: IDX (MNIST), `.npy`, integer CSV, and safetensors checkpoints.
//!
//! Every reader returns a `Result`: a file that is missing, truncated or malformed gives a typed
//! [`IoError`] whose message names the file and the problem, never a panic. Every writer is atomic
//! (see [`atomic_write`]): a reader of the destination sees the old file or the complete new one,
//! never a half-written one.
//!
//! ```
//! use nabla::io::{read_npy, write_npy};
//! use nabla::Tensor;
//! let dir = std::env::temp_dir().join(format!("nabla-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("x.npy");
//! let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
//! write_npy(&path, &x).unwrap();
//! let y = read_npy(&path).unwrap();
//! assert_eq!((y.dims(), y.to_vec::<f32>()), (x.dims(), x.to_vec::<f32>()));
//!
//! // A bad file is an error that names it, not a panic.
//! std::fs::write(&path, b"not numpy").unwrap();
//! let err = read_npy(&path).unwrap_err();
//! assert!(err.to_string().contains("x.npy"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

pub mod checkpoint;
mod csv;
mod idx;
mod npy;

pub use checkpoint::{Checkpoint, CheckpointError, load_checkpoint, save_checkpoint};
pub use csv::{IntCsv, read_digits_csv, read_int_csv};
pub use idx::{IdxArray, IdxData, read_idx, read_idx_images, read_idx_labels};
pub use npy::{NpyArray, NpyData, read_npy, read_npy_array, write_npy};

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A data file that could not be read or written.
///
/// The message is one line that starts with the file's path:
/// `data/train-images-idx3-ubyte.gz: truncated: header says 60000×28×28 (47040000 bytes) but 1000 bytes follow`.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The operating system refused (missing file, permissions, disk full, …).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file's contents are not valid for its format (bad magic number, truncated, corrupt).
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A valid file that uses a feature this reader does not support (big-endian or
    /// Fortran-ordered `.npy`, an unsupported element type).
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported, and what to do instead.
        reason: String,
    },
    /// A text file with a bad line.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

impl IoError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            IoError::Io { path, .. }
            | IoError::Format { path, .. }
            | IoError::Unsupported { path, .. }
            | IoError::Parse { path, .. } => path,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> IoError {
        IoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, reason: impl Into<String>) -> IoError {
        IoError::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> IoError {
        IoError::Unsupported {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// `a×b×c` for messages.
pub(crate) fn times(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "a scalar".to_string();
    }
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// A file opened for reading, transparently gunzipped when it starts with the gzip magic bytes.
pub(crate) struct Source {
    path: PathBuf,
    reader: Box<dyn Read>,
    gzip: bool,
    /// The file's size on disk (for regular files).
    pub(crate) file_len: Option<u64>,
}

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source, IoError> {
        let file = File::open(path).map_err(|e| IoError::io(path, e))?;
        let meta = file.metadata().map_err(|e| IoError::io(path, e))?;
        let file_len = meta.is_file().then_some(meta.len());
        let mut buf = BufReader::with_capacity(1 << 16, file);
        let head = buf.fill_buf().map_err(|e| IoError::io(path, e))?;
        let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(buf))
        } else {
            Box::new(buf)
        };
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            gzip,
            file_len,
        })
    }

    /// Whether the file is gzip-compressed.
    pub(crate) fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Reads until `buf` is full or the data ends; the number of bytes read.
    pub(crate) fn read_fully(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let mut n = 0;
        while n < buf.len() {
            match self.reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        Ok(n)
    }

    /// Reads at most `limit` bytes (fewer when the data ends first), growing the buffer as data
    /// arrives so a lying header cannot make us allocate more than the file holds.
    pub(crate) fn read_up_to(&mut self, limit: u64) -> Result<Vec<u8>, IoError> {
        // A plain file's size bounds what can follow; a gzip stream's does not (a header can
        // promise gigabytes of a few bytes): start small there and grow with the data, so no
        // allocation exceeds about twice what was actually read.
        let start = match (self.gzip, self.file_len) {
            (false, Some(len)) => limit.min(len),
            _ => limit.min(1 << 16),
        };
        let mut out = Vec::with_capacity(start as usize);
        (&mut self.reader)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| self.read_error(e))?;
        Ok(out)
    }

    /// Number of bytes left after the expected data (counted up to 1 MiB).
    pub(crate) fn trailing_bytes(&mut self) -> Result<u64, IoError> {
        std::io::copy(&mut (&mut self.reader).take(1 << 20), &mut std::io::sink())
            .map_err(|e| self.read_error(e))
    }

    /// Reads everything that is left.
    pub(crate) fn read_rest(&mut self) -> Result<Vec<u8>, IoError> {
        let mut out = Vec::new();
        self.reader
            .read_to_end(&mut out)
            .map_err(|e| self.read_error(e))?;
        Ok(out)
    }

    fn read_error(&self, e: std::io::Error) -> IoError {
        use std::io::ErrorKind::*;
        if self.gzip && matches!(e.kind(), InvalidInput | InvalidData | UnexpectedEof) {
            IoError::format(&self.path, format!("corrupt or truncated gzip data: {e}"))
        } else {
            IoError::io(&self.path, e)
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write was committed.
struct TempGuard {
    path: Option<PathBuf>,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes a file atomically: `write` fills a new temporary file in the destination's folder, which
/// is flushed to disk (`fsync`) and then renamed over `path`; the folder is synced too, so the
/// rename survives a crash. Readers of `path` see either the old file or the complete new one.
///
/// On any error, including one returned by `write`, the temporary file is removed and `path` is
/// left as it was.
///
/// ```
/// use std::io::Write;
/// let dir = std::env::temp_dir().join(format!("nabla-atomic-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("notes.txt");
/// nabla::io::atomic_write(&path, |w| w.write_all(b"hello")).unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
///
/// // A failed write leaves the old contents and no stray file.
/// let failed = nabla::io::atomic_write(&path, |w| {
///     w.write_all(b"half")?;
///     Err(std::io::Error::other("disk on fire"))
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello");
/// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn atomic_write(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let name = path.file_name().ok_or_else(|| {
        IoError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the destination has no file name",
            ),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| IoError::io(path, e))?;
    let mut guard = TempGuard {
        path: Some(tmp.clone()),
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut w).map_err(|e| IoError::io(path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| IoError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| IoError::io(path, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| IoError::io(path, e))?;
    guard.path = None;
    sync_dir(&dir).map_err(|e| IoError::io(path, e))
}

/// The process id in the name of a temporary file of [`atomic_write`]
/// (`.NAME.PID.N.tmp`), if `name` is one.
fn temp_file_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let counter = parts.next()?;
    let pid = parts.next()?;
    let target = parts.next()?;
    if target.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) || counter.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is alive; `None` where this cannot be told (no `/proc`).
fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Removes the temporary files that [`atomic_write`] left in `dir` when its process was killed
/// mid-write (`.NAME.PID.N.tmp` whose process is gone). Files of live processes, and every file
/// where liveness cannot be told, are kept. Returns the files removed.
pub fn remove_stale_temp_files(dir: impl AsRef<Path>) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir.as_ref())? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(temp_file_pid) else {
            continue;
        };
        if process_alive(pid) == Some(false) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    removed.sort();
    Ok(removed)
}

/// Makes a rename in `dir` durable. Filesystems that cannot sync a folder are accepted.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        match File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        atomic_write(&path, |w| w.write_all(b"one")).unwrap();
        atomic_write(&path, |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let err = atomic_write(&path, |w| {
            w.write_all(&[7u8; 3 << 20])?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("a.bin: boom"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.bin"]);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // pid_max is at most 2^22 on Linux: this process cannot exist
        let dead = ".checkpoint.safetensors.4999999.3.tmp";
        let mine = format!(".checkpoint.safetensors.{}.0.tmp", std::process::id());
        for f in [
            dead,
            &mine,
            "checkpoint.safetensors",
            ".other.tmp",
            ".a.b.tmp",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        assert_eq!(temp_file_pid(dead), Some(4_999_999));
        assert_eq!(temp_file_pid(".loss.png.12.0.tmp"), Some(12));
        assert_eq!(temp_file_pid(".other.tmp"), None);
        let removed = remove_stale_temp_files(d).unwrap();
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, [d.join(dead)]);
        }
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![
            mine,
            "checkpoint.safetensors".into(),
            ".other.tmp".into(),
            ".a.b.tmp".into(),
        ];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn atomic_write_into_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("a.bin");
        let err = atomic_write(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(matches!(err, IoError::Io { .. }));
        assert!(err.to_string().contains("missing/a.bin"), "{err}");
    }

    #[test]
    fn failed_rename_removes_the_temporary_file() {
        // Renaming a file over a non-empty folder fails after the data was written.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("taken");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("inside"), b"keep").unwrap();
        assert!(atomic_write(&dest, |w| w.write_all(b"x")).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["taken"]);
        assert_eq!(std::fs::read(dest.join("inside")).unwrap(), b"keep");
    }
}
