//! containers/storage lock files (`images.lock`, `layers.lock`, ...), design doc §3.
//!
//! c/storage takes classic fcntl record locks (`F_SETLKW`) on the whole file; imaged takes
//! open-file-description locks (`F_OFD_SETLKW`), which conflict with them (verified, §3.3)
//! and, unlike classic locks, belong to one open file: closing another descriptor of the
//! same file never drops them. Threads of imaged are excluded from each other by an
//! in-process `RwLock` per file, taken first (as c/storage's `sync.RWMutex`).
//!
//! The first 64 bytes of a lock file are the last writer's token (§3.1): `[0..8)` u64 LE
//! Unix nanoseconds, `[8..16)` u64 LE per-process counter, `[16..20)` u32 LE pid,
//! `[20..64)` random. A writer rewrites it ([`WriteGuard::touch`]) after each file it
//! replaced and before unlocking; readers compare it ([`LockFile::token`]) to decide
//! whether to re-read.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

/// Length of the last-writer token.
pub(crate) const TOKEN_LEN: usize = 64;

/// The bytes at the start of a lock file (shorter when the file is shorter).
pub(crate) type Token = Vec<u8>;

/// One c/storage lock file.
#[derive(Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
    /// A read-only store's lock: opened `O_RDONLY`, never write-locked or created.
    read_only: bool,
    /// Excludes imaged's own threads (fcntl locks don't, per process for classic locks).
    inproc: RwLock<()>,
    /// A descriptor kept open to read tokens without locking (`None` when the file is
    /// missing in a read-only store).
    reader: Option<File>,
}

/// A held shared lock.
#[derive(Debug)]
pub(crate) struct ReadGuard<'a> {
    _file: File,
    _g: RwLockReadGuard<'a, ()>,
}

/// A held exclusive lock.
#[derive(Debug)]
pub(crate) struct WriteGuard<'a> {
    file: File,
    _g: RwLockWriteGuard<'a, ()>,
}

fn flock(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Whether an error of a non-blocking lock attempt means "held by someone else".
fn is_busy(e: Errno) -> bool {
    matches!(e, Errno::EAGAIN | Errno::EACCES)
}

impl LockFile {
    /// Opens (creating it `0644`, as c/storage does, unless `read_only`) the lock file.
    pub(crate) fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let reader = match Self::open_fd(path, read_only) {
            Ok(f) => Some(f),
            Err(e) if read_only && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_path_buf(),
            read_only,
            inproc: RwLock::new(()),
            reader,
        })
    }

    fn open_fd(path: &Path, read_only: bool) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.read(true).custom_flags(libc::O_CLOEXEC);
        if !read_only {
            o.write(true).create(true).mode(0o644);
        }
        o.open(path)
    }

    /// The lock file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current last-writer token (`pread` of 64 bytes; no lock needed: a writer's
    /// `pwrite` of 64 bytes is atomic for this purpose, and a torn read only causes a
    /// spurious reload).
    pub(crate) fn token(&self) -> io::Result<Token> {
        let Some(f) = &self.reader else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; TOKEN_LEN];
        let mut n = 0;
        while n < TOKEN_LEN {
            match f.read_at(&mut buf[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        Ok(buf)
    }

    fn lock_fd(&self, kind: libc::c_int, wait: bool) -> io::Result<Option<File>> {
        let file = Self::open_fd(&self.path, self.read_only)?;
        let fl = flock(kind);
        loop {
            let r = if wait {
                fcntl(&file, FcntlArg::F_OFD_SETLKW(&fl))
            } else {
                fcntl(&file, FcntlArg::F_OFD_SETLK(&fl))
            };
            match r {
                Ok(_) => return Ok(Some(file)),
                Err(Errno::EINTR) => {}
                Err(e) if !wait && is_busy(e) => return Ok(None),
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }

    /// A shared lock, waiting for writers.
    pub(crate) fn read(&self) -> io::Result<ReadGuard<'_>> {
        let g = self
            .inproc
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = self
            .lock_fd(libc::F_RDLCK, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        Ok(ReadGuard { _file: file, _g: g })
    }

    /// A shared lock if nobody holds an exclusive one now; `None` otherwise.
    pub(crate) fn try_read(&self) -> io::Result<Option<ReadGuard<'_>>> {
        let g = match self.inproc.try_read() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        Ok(self
            .lock_fd(libc::F_RDLCK, false)?
            .map(|file| ReadGuard { _file: file, _g: g }))
    }

    /// An exclusive lock, waiting for every holder (tests; the store bounds its wait with
    /// [`LockFile::write_until`]).
    #[cfg(test)]
    pub(crate) fn write(&self) -> io::Result<WriteGuard<'_>> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: lock of a read-only store", self.path.display()),
            ));
        }
        let g = self
            .inproc
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = self
            .lock_fd(libc::F_WRLCK, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        Ok(WriteGuard { file, _g: g })
    }

    /// An exclusive lock, waiting until `deadline` at most (retrying every 10 ms, as
    /// c/storage does on errors): a process that holds the lock for longer (a hung podman)
    /// makes this fail with `TimedOut` instead of blocking imaged forever.
    pub(crate) fn write_until(&self, deadline: std::time::Instant) -> io::Result<WriteGuard<'_>> {
        loop {
            if let Some(g) = self.try_write()? {
                return Ok(g);
            }
            if std::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "held by another process for too long",
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// An exclusive lock if nobody holds one now; `None` otherwise.
    pub(crate) fn try_write(&self) -> io::Result<Option<WriteGuard<'_>>> {
        let g = match self.inproc.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        Ok(self
            .lock_fd(libc::F_WRLCK, false)?
            .map(|file| WriteGuard { file, _g: g }))
    }
}

impl WriteGuard<'_> {
    /// Writes a fresh last-writer token at offset 0 and returns it.
    pub(crate) fn touch(&self) -> io::Result<Token> {
        let token = new_token();
        self.file.write_all_at(&token, 0)?;
        Ok(token.to_vec())
    }
}

/// A new last-writer token (layout in the module docs).
pub(crate) fn new_token() -> [u8; TOKEN_LEN] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut t = [0u8; TOKEN_LEN];
    let nanos = u64::try_from(imaged_core::time::now()).unwrap_or(0);
    t[0..8].copy_from_slice(&nanos.to_le_bytes());
    t[8..16].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    t[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    for b in &mut t[20..] {
        *b = fastrand::u8(..);
    }
    t
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn token_layout() {
        let before = u64::try_from(imaged_core::time::now()).unwrap();
        let a = new_token();
        let b = new_token();
        let after = u64::try_from(imaged_core::time::now()).unwrap();
        let nanos = u64::from_le_bytes(a[0..8].try_into().unwrap());
        assert!(before <= nanos && nanos <= after);
        let ca = u64::from_le_bytes(a[8..16].try_into().unwrap());
        let cb = u64::from_le_bytes(b[8..16].try_into().unwrap());
        assert_eq!(cb, ca + 1);
        assert_eq!(
            u32::from_le_bytes(a[16..20].try_into().unwrap()),
            std::process::id()
        );
        assert_ne!(a[20..], b[20..], "44 random bytes");
    }

    #[test]
    fn touch_then_token() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.lock");
        let l = LockFile::open(&p, false).unwrap();
        assert_eq!(l.token().unwrap(), Vec::<u8>::new());
        let w = l.write().unwrap();
        let t = w.touch().unwrap();
        drop(w);
        assert_eq!(l.token().unwrap(), t);
        assert_eq!(std::fs::read(&p).unwrap(), t);
    }

    #[test]
    fn in_process_exclusion() {
        let d = tempfile::tempdir().unwrap();
        let l = LockFile::open(&d.path().join("x.lock"), false).unwrap();
        let r1 = l.try_read().unwrap().expect("first reader");
        let r2 = l.try_read().unwrap().expect("readers share");
        assert!(l.try_write().unwrap().is_none());
        drop((r1, r2));
        let w = l.try_write().unwrap().expect("free now");
        assert!(l.try_read().unwrap().is_none());
        drop(w);
    }

    /// A second open file description (as another process would have) conflicts.
    #[test]
    fn ofd_locks_conflict_between_descriptions() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let a = LockFile::open(&p, false).unwrap();
        let b = LockFile::open(&p, false).unwrap();
        let w = a.write().unwrap();
        assert!(b.try_read().unwrap().is_none());
        drop(w);
        let r = b.try_read().unwrap().expect("released");
        assert!(a.try_write().unwrap().is_none());
        drop(r);
    }

    /// A lock held by someone else for too long: the bounded wait gives up with
    /// `TimedOut`; once it is released the wait succeeds.
    #[test]
    fn bounded_write_wait_gives_up_on_a_held_lock() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("y.lock");
        let holder = LockFile::open(&p, false).unwrap();
        let waiter = LockFile::open(&p, false).unwrap();
        let held = holder.write().unwrap();
        let soon = std::time::Instant::now() + std::time::Duration::from_millis(50);
        match waiter.write_until(soon) {
            Ok(_) => panic!("must time out while the lock is held"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
        }
        drop(held);
        let later = std::time::Instant::now() + std::time::Duration::from_secs(5);
        assert!(waiter.write_until(later).is_ok());
    }

    /// While imaged holds a lock, a classic (non-OFD) fcntl lock of another process —
    /// what podman takes — conflicts; after release it is granted.
    #[test]
    fn conflicts_with_classic_locks_of_another_process() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.lock");
        let l = LockFile::open(&p, false).unwrap();
        let classic = |exclusive: bool| {
            let kind = if exclusive { "LOCK_EX" } else { "LOCK_SH" };
            std::process::Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import fcntl,sys\nf=open(sys.argv[1],'r+')\n\
                     try:\n  fcntl.lockf(f, fcntl.{kind}|fcntl.LOCK_NB)\n\
                     except OSError:\n  sys.exit(3)\n"
                ))
                .arg(&p)
                .stdin(std::process::Stdio::null())
                .status()
                .expect("python3 runs (apt-get install python3)")
                .code()
        };
        assert_eq!(classic(true), Some(0));
        let w = l.write().unwrap();
        assert_eq!(classic(true), Some(3), "exclusive vs our write lock");
        assert_eq!(classic(false), Some(3), "shared vs our write lock");
        drop(w);
        let r = l.read().unwrap();
        assert_eq!(classic(false), Some(0), "shared vs our read lock");
        assert_eq!(classic(true), Some(3), "exclusive vs our read lock");
        drop(r);
        assert_eq!(classic(true), Some(0));
    }
}
