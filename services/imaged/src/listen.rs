//! Binding the listeners: unix sockets (directory 0750, socket 0660 from the moment it
//! appears at its path, stale sockets replaced, a live one refused) and TCP (port 0
//! allowed; the bound address is reported).

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, UnixListener};

use crate::config::Listen;

/// A bound listener.
#[derive(Debug)]
pub(crate) enum Bound {
    /// A unix socket and the file it created.
    Unix(UnixListener, SocketFile),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Bound {
    /// The URL clients use (with the real port for `tcp://…:0`).
    pub(crate) fn url(&self) -> String {
        match self {
            Bound::Unix(_, f) => format!("unix://{}", f.path.display()),
            Bound::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".to_owned(),
            },
        }
    }
}

/// A socket file this daemon created; [`SocketFile::remove`] deletes it only while it is
/// still the same file (another daemon may have replaced it).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Removes the socket file if it is still ours.
    pub(crate) fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(md) if md.dev() == self.dev && md.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), "cannot remove socket: {e}");
                }
            }
            Ok(_) => {
                tracing::warn!(path = %self.path.display(), "socket replaced by another process; left alone")
            }
            Err(_) => {}
        }
    }
}

/// Binds every listener, in order. On error, sockets already created are removed.
pub(crate) async fn bind_all(listen: &[Listen]) -> Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for l in listen {
        let r = match l {
            Listen::Unix(path) => bind_unix(path).map(|(s, f)| Bound::Unix(s, f)),
            Listen::Tcp(addr) => TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on tcp://{addr}"))
                .map(Bound::Tcp),
        };
        match r {
            Ok(b) => {
                tracing::info!(url = %b.url(), "listening");
                bound.push(b);
            }
            Err(e) => {
                for b in &bound {
                    if let Bound::Unix(_, f) = b {
                        f.remove();
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(bound)
}

fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile)> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // The umask may have narrowed the mode: set it exactly.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
            .with_context(|| format!("cannot chmod {}", dir.display()))?;
    }
    remove_if_stale(path)?;
    let listener = bind_private_then_rename(path)?;
    let md = std::fs::symlink_metadata(path)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
        },
    ))
}

/// Binds the socket in a fresh private (0700) directory next to `path`, sets its mode to
/// 0660 there, then renames it into place: nobody can connect before the mode is right,
/// whatever the umask (which is process-wide, so not changed around bind).
fn bind_private_then_rename(path: &Path) -> Result<UnixListener> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Short names: the temporary path must fit in sun_path (108 bytes) too.
    let private = parent.join(format!(".imaged-{}", std::process::id()));
    if let Err(e) = std::fs::remove_dir_all(&private)
        && e.kind() != io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("cannot remove {}", private.display()));
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("cannot create {}", private.display()))?;
    let tmp = private.join("s");
    let r = (|| {
        let listener = UnixListener::bind(&tmp)
            .with_context(|| format!("cannot listen on unix://{}", path.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("cannot chmod {}", tmp.display()))?;
        // NOREPLACE: whatever appeared at `path` since the stale check is left alone.
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &tmp,
            nix::fcntl::AT_FDCWD,
            path,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .with_context(|| format!("cannot move the socket to {}", path.display()))?;
        Ok(listener)
    })();
    if let Err(e) = std::fs::remove_dir_all(&private) {
        tracing::warn!(path = %private.display(), "cannot remove the private bind directory: {e}");
    }
    r
}

/// A socket file nobody accepts on is removed; a live one is an error; anything else at
/// that path is left alone and is an error.
fn remove_if_stale(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if !md.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!("another imaged is listening on unix://{}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::warn!(path = %path.display(), "removing stale socket (nobody accepting)");
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale {}", path.display()))
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot check whether {} is in use", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unix_modes_stale_and_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("run/imaged/s.sock");
        let bound = bind_all(&[Listen::Unix(sock.clone())]).await.expect("bind");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&sock), 0o660);
        assert_eq!(mode(sock.parent().expect("parent")), 0o750);
        assert_eq!(bound[0].url(), format!("unix://{}", sock.display()));

        let err = bind_all(&[Listen::Unix(sock.clone())])
            .await
            .expect_err("live");
        assert!(
            err.to_string().contains("another imaged is listening"),
            "{err}"
        );

        drop(bound); // the file stays: stale
        assert!(sock.exists());
        let again = bind_all(&[Listen::Unix(sock.clone())])
            .await
            .expect("stale replaced");
        let Bound::Unix(_, file) = &again[0] else {
            panic!("unix")
        };
        file.remove();
        assert!(!sock.exists());

        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").expect("write");
        let err = bind_all(&[Listen::Unix(plain.clone())])
            .await
            .expect_err("not a socket");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert!(plain.exists(), "never removed");
    }

    /// Issue 11: the socket never appears at its final path with the mode bind(2) gave it
    /// (0777 minus the umask): it is bound elsewhere and only renamed into place, already
    /// 0660. inotify on the directory sees every name created in it.
    #[tokio::test]
    async fn socket_appears_at_its_path_only_with_its_final_mode() {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("s.sock");
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
        inotify
            .add_watch(
                dir.path(),
                AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB,
            )
            .expect("watch");
        let bound = bind_all(&[Listen::Unix(sock.clone())]).await.expect("bind");
        let mut events = Vec::new();
        while let Ok(batch) = inotify.read_events() {
            events.extend(batch.into_iter().filter_map(|e| {
                (e.name.as_deref() == Some(std::ffi::OsStr::new("s.sock"))).then_some(e.mask)
            }));
        }
        assert_eq!(
            events,
            [AddWatchFlags::IN_MOVED_TO],
            "s.sock must only be renamed into place, never created or chmod'ed there"
        );
        let md = std::fs::symlink_metadata(&sock).expect("stat");
        assert!(md.file_type().is_socket());
        assert_eq!(md.permissions().mode() & 0o777, 0o660);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            [std::ffi::OsString::from("s.sock")],
            "no private directory left"
        );
        // The listener accepts on the renamed file.
        std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        drop(bound);
    }

    #[tokio::test]
    async fn tcp_port_zero_reports_real_port() {
        let bound = bind_all(&[Listen::Tcp("127.0.0.1:0".parse().expect("addr"))])
            .await
            .expect("bind");
        let url = bound[0].url();
        assert!(
            url.starts_with("tcp://127.0.0.1:") && !url.ends_with(":0"),
            "{url}"
        );
    }

    #[tokio::test]
    async fn failure_removes_sockets_already_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("a.sock");
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind_all(&[Listen::Unix(ok.clone()), Listen::Tcp(addr)])
            .await
            .expect_err("port taken");
        assert!(err.to_string().contains("cannot listen on tcp://"), "{err}");
        assert!(!ok.exists(), "the unix socket bound first was removed");
    }
}
