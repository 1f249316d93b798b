//! The data dir: created with owner-only permissions, checked for writability, and locked
//! so two node processes never share it (SQLite file, blobs and credentials belong to one
//! process; several nodes share a PostgreSQL database instead).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::NodeError;

/// Name of the lock file inside the data dir.
pub const LOCK_FILE_NAME: &str = "coworker.lock";

/// An exclusive hold on a data dir, released when dropped (or when the process dies: the
/// OS drops advisory locks with the file descriptor, so a crash never leaves a stale lock).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The locked data dir.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the data dir (0700 on Unix) if missing and checks that it is a writable directory.
pub fn prepare(path: &Path) -> Result<(), NodeError> {
    let fail = |message: String| NodeError::DataDir {
        path: path.display().to_string(),
        message,
        hint: "choose a writable directory with --data-dir or COWORKER_DATA_DIR (or fix its permissions)".into(),
    };
    if path.exists() && !path.is_dir() {
        return Err(fail("exists but is not a directory".into()));
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = path.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("is not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Takes the data dir's exclusive lock, or explains who holds it.
pub fn lock(path: &Path) -> Result<DataDirLock, NodeError> {
    let lock_path = path.join(LOCK_FILE_NAME);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| NodeError::Io {
            context: format!("opening {}", lock_path.display()),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            return Err(NodeError::DataDirLocked {
                path: path.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(NodeError::Io {
                context: format!("locking {}", lock_path.display()),
                source,
            });
        }
    }
    file.set_len(0).map_err(|source| NodeError::Io {
        context: "writing the lock file".into(),
        source,
    })?;
    writeln!(file, "pid {}", std::process::id()).map_err(|source| NodeError::Io {
        context: "writing the lock file".into(),
        source,
    })?;
    Ok(DataDirLock {
        _file: file,
        path: path.to_owned(),
    })
}

/// File in the data dir holding the URL of the node serving from it (`http://127.0.0.1:PORT`
/// for a wildcard listen address), so work commands next to a node started with `--listen`
/// find it. Written when the node serves, removed when it stops.
pub const NODE_URL_FILE: &str = "node.url";

/// The URL local clients reach a node listening on `addr` at: a wildcard address is
/// reached on loopback.
pub fn local_url(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// The URL a node serving from `data_dir` recorded, if one is running (or crashed without
/// removing it: the client's connection error then names the URL).
pub fn read_node_url(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(NODE_URL_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Writes `contents` to `path` readable by the owner only (0600 on Unix), replacing it.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("cw-lock-{}", std::process::id()));
        prepare(&dir).unwrap();
        let first = lock(&dir).unwrap();
        let err = lock(&dir).unwrap_err();
        assert!(matches!(err, NodeError::DataDirLocked { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        lock(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_where_the_dir_should_be_is_explained() {
        let file = std::env::temp_dir().join(format!("cw-notdir-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let err = prepare(&file.join("sub")).unwrap_err();
        assert!(err.to_string().contains("cannot create it"), "{err}");
        let err = prepare(&file).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        let _ = std::fs::remove_file(&file);
    }
}
