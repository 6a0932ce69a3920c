//! Pseudo-terminals: allocation (posix_openpt), window size, the EOF character.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use shoal_agent_proto::PtySize;

/// A new pty: (master, slave), both CLOEXEC, the slave not our controlling terminal, the
/// window size set.
pub fn open(size: PtySize) -> io::Result<(OwnedFd, OwnedFd)> {
    let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(context(
            "cannot allocate a pseudo-terminal (is /dev/pts mounted?)",
            io::Error::last_os_error(),
        ));
    }
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    if unsafe { libc::grantpt(fd) } != 0 || unsafe { libc::unlockpt(fd) } != 0 {
        return Err(context(
            "cannot unlock the pseudo-terminal",
            io::Error::last_os_error(),
        ));
    }
    let mut name = [0 as libc::c_char; 128];
    let rc = unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(context(
            "cannot name the pseudo-terminal",
            io::Error::from_raw_os_error(rc),
        ));
    }
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        let path = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        return Err(context(
            &format!("cannot open {path}"),
            io::Error::last_os_error(),
        ));
    }
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    resize(master.as_raw_fd(), size)?;
    Ok((master, slave))
}

/// Set the window size (the kernel sends SIGWINCH to the terminal's foreground group).
pub fn resize(master: RawFd, size: PtySize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's EOF character (^D unless changed): what "closing stdin" means on a pty.
pub fn eof_char(master: RawFd) -> u8 {
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(master, &mut t) } == 0 && t.c_cc[libc::VEOF] != 0 {
        t.c_cc[libc::VEOF]
    } else {
        4
    }
}

/// The terminal's foreground process group, if any.
pub fn foreground_group(master: RawFd) -> Option<libc::pid_t> {
    let pgrp = unsafe { libc::tcgetpgrp(master) };
    (pgrp > 0).then_some(pgrp)
}
