//! The supplementary groups of a unix-socket peer as the kernel recorded them when it
//! connected (`SO_PEERGROUPS`, Linux 4.13+). The only `unsafe` in the daemon: one
//! `getsockopt` call, which neither `nix` nor `rustix` wraps.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` from `<asm-generic/socket.h>` (the value on every architecture but
/// alpha, mips, parisc and sparc, which imaged does not build for).
#[cfg(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The peer's supplementary groups, fixed at its `connect(2)`: later `setgroups` calls
/// of the peer, or another process reusing its PID, do not change them.
pub(crate) fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let capacity = groups.len() * size_of::<libc::gid_t>();
        let mut len = libc::socklen_t::try_from(capacity)
            .map_err(|_| io::Error::other("too many supplementary groups"))?;
        #[allow(unsafe_code)]
        // SAFETY: `fd` is an open socket for the duration of the call (borrowed); the
        // kernel writes at most `len` bytes into `groups`, which holds `capacity` bytes,
        // and sets `len` to the size it wrote, or to the size it needs with ERANGE.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if r == 0 {
            groups.truncate(len.min(capacity) / size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && len > capacity && len <= 1 << 20 {
            groups.resize(len.div_ceil(size_of::<libc::gid_t>()), 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reads_the_groups_of_a_connected_peer() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut want: Vec<u32> = nix::unistd::getgroups()
            .expect("getgroups")
            .into_iter()
            .map(nix::unistd::Gid::as_raw)
            .collect();
        let mut got = peer_groups(a.as_fd()).expect("SO_PEERGROUPS");
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn not_a_socket_is_an_error() {
        let f = std::fs::File::open("/dev/null").expect("open");
        assert!(peer_groups(f.as_fd()).is_err());
    }
}
