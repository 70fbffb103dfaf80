//! Files under the run directory (/run/cloudha): records, the IMDS token, the OCI session.
//! One writer for all of them: a temporary with a name no other process uses, in the same
//! directory, created exclusively and without following a symlink, mode 0600, then renamed
//! over the target (rename replaces a symlink planted there, it never writes through it).
//! Directories are made 0700 and must be real directories of ours. Readers do not follow a
//! symlink either, and read at most [`READ_MAX`].

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

/// Records and caches are a few kB; more is not ours.
pub const READ_MAX: u64 = 1 << 20;

fn refuse(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::other(format!("{}: {why}", path.display()))
}

/// Make `dir` (and missing parents) 0700, and check that it is a directory owned by us (not a
/// symlink someone planted); a directory of ours that others may enter is tightened.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(refuse(
            dir,
            "not a directory (a symlink?); refusing to use it",
        ));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(refuse(dir, "owned by another user; refusing to use it"));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Replace `path` atomically with `data`, readable by its owner only.
pub fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| refuse(path, "has no directory"))?;
    ensure_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| refuse(path, "has no file name"))?
        .to_string_lossy();
    // pid + random: two processes (a monitor during a start) never share a temporary.
    let tmp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Create or refresh a record whose existence and mtime are the information.
pub fn touch(path: &Path) -> std::io::Result<()> {
    write(path, b"")
}

/// The bytes of a regular file of at most [`READ_MAX`], opened without blocking (a FIFO at
/// the path must not hang an action). `follow`: whether a symlink at the path may be followed
/// (an admin's configuration: yes; our own run files: never). Errors say what is wrong with
/// the file, without its path (callers name it).
pub fn read_regular(path: &Path, follow: bool) -> std::io::Result<Vec<u8>> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > READ_MAX {
        return Err(std::io::Error::other(format!(
            "it has {} bytes, more than the {READ_MAX} read",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(READ_MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The text of one of our run files: [`read_regular`] without following a symlink.
pub fn read(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular(path, false)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// When the record was last written (a symlink is not a record).
pub fn modified(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_file().then(|| meta.modified().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_atomic_and_never_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("run");
        let rec = run.join("vip").join("r1.checked");
        write(&rec, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&rec), 0o600);
        assert_eq!(mode(&run.join("vip")), 0o700);
        assert_eq!(read(&rec).unwrap(), "x");
        // A symlink planted at the record: replaced, its target untouched, never read.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::remove_file(&rec).unwrap();
        std::os::unix::fs::symlink(&victim, &rec).unwrap();
        assert!(read(&rec).is_err(), "a symlink is not followed");
        assert!(modified(&rec).is_none());
        write(&rec, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !std::fs::symlink_metadata(&rec)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A symlinked directory is refused, a loose one tightened.
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, run.join("crs")).unwrap();
        assert!(write(&run.join("crs").join("r.state"), b"online").is_err());
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
        std::fs::set_permissions(run.join("vip"), std::fs::Permissions::from_mode(0o777)).unwrap();
        touch(&rec).unwrap();
        assert_eq!(mode(&run.join("vip")), 0o700);
    }

    #[test]
    fn concurrent_writers_never_tear_or_leave_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r").join("token");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let body = format!("{i}").repeat(4096);
                    for _ in 0..50 {
                        write(&path, body.as_bytes()).unwrap();
                        let seen = read(&path).unwrap();
                        assert_eq!(seen.len(), 4096);
                        assert!(seen.chars().all(|c| c == seen.chars().next().unwrap()));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(d.path().join("r"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["token"], "no temporary left behind");
    }
}
