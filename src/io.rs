//! Reading input files and writing output files atomically.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest file `read` accepts (weights files are far smaller).
const MAX_READ: u64 = 1 << 32;

/// The bytes of `path`, with the path in any error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if meta.is_dir() {
        return Err(Error::new(format!("{}: is a directory", path.display())));
    }
    if meta.len() > MAX_READ {
        return Err(Error::new(format!(
            "{}: file too large ({} bytes)",
            path.display(),
            meta.len()
        )));
    }
    fs::read(path).map_err(|e| io_error(path, &e))
}

/// Writes `bytes` to `path` atomically (see `diffctl_trainer::io::write_atomic`:
/// temporary file, flush, rename; devices and FIFOs are written in place),
/// with the path in any error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    diffctl_trainer::io::write_atomic(path, bytes).map_err(|e| io_error(path, &e))
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(format!("writing to standard output: {e}"))),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::new(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("diffctl-io-{}", std::process::id()));
        let path = dir.join("sub").join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!dir.join("sub").join("a.txt.tmp").exists());
        assert!(read(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A device is written in place, never replaced by a file: /dev/full
    /// stays a device and the write reports the device's error.
    #[test]
    fn devices_are_written_in_place() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return; // not a Linux machine
        }
        let err = write_atomic(full, b"x").unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
        assert!(
            !fs::metadata(full).unwrap().is_file(),
            "/dev/full was replaced by a file"
        );
        write_atomic(Path::new("/dev/null"), b"fine").unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }
}
