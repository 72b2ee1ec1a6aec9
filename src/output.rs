//! Where the command's output goes, and the checks made before any work.
//!
//! * Text on standard output and standard error goes through [`out`] and
//!   [`err`] (the `say!` and `note!` macros): a closed pipe (`| head -1`)
//!   never panics, it only silences the rest, so a training run still
//!   writes its weights and exits quietly.
//! * Every output path is checked with [`check_writable`] before the first
//!   iteration or sample, and compared with the inputs and the other
//!   outputs ([`check_distinct`]).
//! * Weights that cannot be written where asked are saved to a fallback
//!   path in the temporary directory ([`save_weights`]), which the error
//!   names.
//! * [`OutFile`] streams a large output (samples) to `PATH.tmp` and renames
//!   it over `PATH` at the end, as `io::write_atomic` does for small ones.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard output. After a write error (a closed pipe,
/// a full disk) standard output is silent for the rest of the run.
pub fn out(text: &str) {
    write_to(&mut io::stdout().lock(), text, &STDOUT_CLOSED);
}

/// Writes `text` to standard error, silenced after an error as [`out`].
pub fn err(text: &str) {
    write_to(&mut io::stderr().lock(), text, &STDERR_CLOSED);
}

fn write_to(w: &mut dyn Write, text: &str, closed: &AtomicBool) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .is_err()
    {
        closed.store(true, Ordering::Relaxed);
    }
}

/// `println!` to standard output that survives a closed pipe.
macro_rules! say {
    ($($t:tt)*) => {
        $crate::output::out(&format!("{}\n", format_args!($($t)*)))
    };
}

/// `eprintln!` to standard error that survives a closed pipe.
macro_rules! note {
    ($($t:tt)*) => {
        $crate::output::err(&format!("{}\n", format_args!($($t)*)))
    };
}

pub(crate) use {note, say};

/// Checks, before any work, that `path` can be written as `what` (for
/// example "weights file"): missing parent directories are created, a
/// directory is refused, and the parent directory must accept a new file (a
/// probe file is created and removed). An existing device or FIFO is
/// written in place later and is not probed.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::new(format!("cannot write the {what} {}: {e}", path.display()))
    };
    if path.as_os_str().is_empty() {
        return Err(fail(&"empty path"));
    }
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(fail(&"it is a directory")),
        Ok(m) if !m.is_file() => return Ok(()),
        _ => {}
    }
    let Some(name) = path.file_name() else {
        return Err(fail(&"the path names no file"));
    };
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let mut probe_name = std::ffi::OsString::from(".");
    probe_name.push(name);
    probe_name.push(format!(".{}.probe", std::process::id()));
    let probe = dir.join(probe_name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| fail(&e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Whether `a` and `b` name the same file: the same inode when both exist,
/// else the same absolute path once their directories are resolved.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
        #[cfg(not(unix))]
        {
            let _ = (ma, mb);
        }
    }
    let resolve = |p: &Path| -> Option<PathBuf> {
        let dir = fs::canonicalize(parent(p)).ok()?;
        Some(dir.join(p.file_name()?))
    };
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Refuses an output that is one of the inputs or another output, naming
/// both (so `sample g.dcw --out g.dcw` cannot replace the weights with CSV).
/// Devices (`/dev/null`, `/dev/stdout`) may be named more than once.
pub fn check_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    let is_device = |p: &Path| fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir());
    for (i, (what, out)) in outputs.iter().enumerate() {
        if is_device(out) {
            continue;
        }
        for (in_what, input) in inputs {
            if same_file(out, input) {
                return Err(Error::new(format!(
                    "refusing to overwrite the {in_what} {} with the {what}: give another output path",
                    input.display()
                )));
            }
        }
        for (other_what, other) in &outputs[..i] {
            if same_file(out, other) {
                return Err(Error::new(format!(
                    "the {other_what} and the {what} are the same file {}: give two paths",
                    out.display()
                )));
            }
        }
    }
    Ok(())
}

/// Where weights go when their path cannot be written: the temporary
/// directory (`TMPDIR`), under a name with the process id.
pub fn fallback_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "weights".into(), |n| n.to_string_lossy().into_owned());
    let name = if name.ends_with(".dcw") {
        name
    } else {
        format!("{name}.dcw")
    };
    std::env::temp_dir().join(format!("diffctl-rescued-{}-{name}", std::process::id()))
}

/// Where the weights were written.
#[derive(Debug)]
pub struct Saved {
    pub path: PathBuf,
    /// Why the asked-for path failed, when the weights went to the fallback.
    pub failure: Option<String>,
}

impl Saved {
    /// The error to end the run with when the fallback was used.
    pub fn error(&self, asked: &Path) -> Option<Error> {
        self.failure.as_ref().map(|why| {
            Error::new(format!(
                "cannot write the weights file {}: {why}; the weights were saved to {} instead",
                asked.display(),
                self.path.display()
            ))
        })
    }
}

/// Writes the weights atomically to `path`, or, when that fails, to
/// [`fallback_path`]. Fails only when both fail.
pub fn save_weights(path: &Path, bytes: &[u8]) -> Result<Saved> {
    let first = match crate::io::write_atomic(path, bytes) {
        Ok(()) => {
            return Ok(Saved {
                path: path.to_path_buf(),
                failure: None,
            })
        }
        Err(e) => e,
    };
    let why = first
        .to_string()
        .strip_prefix(&format!("{}: ", path.display()))
        .map(str::to_owned)
        .unwrap_or_else(|| first.to_string());
    let rescue = fallback_path(path);
    match crate::io::write_atomic(&rescue, bytes) {
        Ok(()) => Ok(Saved {
            path: rescue,
            failure: Some(why),
        }),
        Err(e) => Err(Error::new(format!(
            "cannot write the weights file {}: {why}; the fallback failed too ({e}): the weights are lost",
            path.display()
        ))),
    }
}

/// An output file written as a stream: to `PATH.tmp`, renamed over `PATH`
/// by [`OutFile::commit`] (removed if dropped before). An existing device or
/// FIFO is written in place.
pub struct OutFile {
    path: PathBuf,
    tmp: Option<PathBuf>,
    file: io::BufWriter<fs::File>,
}

impl OutFile {
    pub fn create(path: &Path) -> Result<Self> {
        let fail = |e: io::Error| Error::new(format!("{}: {e}", path.display()));
        if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(fail)?;
            return Ok(OutFile {
                path: path.to_path_buf(),
                tmp: None,
                file: io::BufWriter::with_capacity(1 << 16, file),
            });
        }
        fs::create_dir_all(parent(path)).map_err(fail)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let file = fs::File::create(&tmp).map_err(fail)?;
        Ok(OutFile {
            path: path.to_path_buf(),
            tmp: Some(tmp),
            file: io::BufWriter::with_capacity(1 << 16, file),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::new(format!("{}: {e}", self.path.display())))
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let fail = |e: io::Error| Error::new(format!("{}: {e}", self.path.display()));
        self.file.flush().map_err(fail)?;
        if let Some(tmp) = self.tmp.take() {
            let done = self
                .file
                .get_ref()
                .sync_all()
                .and_then(|()| fs::rename(&tmp, &self.path));
            if let Err(e) = done {
                let _ = fs::remove_file(&tmp);
                return Err(fail(e));
            }
        }
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("diffctl-output-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writable_checks_refuse_what_cannot_be_written() {
        let d = dir("writable");
        check_writable(&d.join("a/b/w.dcw"), "weights file").unwrap();
        assert!(d.join("a/b").is_dir());
        assert_eq!(
            fs::read_dir(d.join("a/b")).unwrap().count(),
            0,
            "probe left"
        );
        let e = check_writable(&d, "plot").unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let file = d.join("file");
        fs::write(&file, "x").unwrap();
        let e = check_writable(&file.join("w.dcw"), "weights file")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot write the weights file"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn same_files_are_recognised() {
        let d = dir("same");
        let a = d.join("a.dcw");
        fs::write(&a, "x").unwrap();
        assert!(same_file(&a, &d.join("./a.dcw")));
        assert!(same_file(&d.join("new.csv"), &d.join("./new.csv")));
        assert!(!same_file(&a, &d.join("b.dcw")));
        assert!(check_distinct(&[("weights file", &a)], &[("samples", &a)]).is_err());
        assert!(check_distinct(&[], &[("a", &d.join("x")), ("b", &d.join("x"))]).is_err());
        assert!(check_distinct(&[("weights file", &a)], &[("samples", &d.join("s.csv"))]).is_ok());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn out_file_commits_or_leaves_nothing() {
        let d = dir("outfile");
        let p = d.join("s.csv");
        let mut f = OutFile::create(&p).unwrap();
        f.write(b"x0\n1\n").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"x0\n1\n");
        let mut f = OutFile::create(&d.join("t.csv")).unwrap();
        f.write(b"partial").unwrap();
        drop(f);
        assert!(!d.join("t.csv").exists() && !d.join("t.csv.tmp").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
