//! The only `unsafe` in sprig: thin wrappers over libc calls that std does not offer
//! (fork, setsid, signals, waitpid, dup2, poll, getifaddrs). Each returns `io::Result` built
//! from `errno`. The crate root denies `unsafe_code` everywhere else.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Result of [`fork`].
pub enum Fork {
    /// In the parent; the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// `fork(2)`. Only call while the process has one thread (sprig always has).
pub fn fork() -> io::Result<Fork> {
    // SAFETY: sprig is single-threaded, so the child inherits a consistent copy of every lock
    // and allocator state; fork has no memory-safety preconditions beyond that.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// `setsid(2)`: a new session without a controlling terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no pointers; only changes the process's session.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_exit(2)`: leave without running atexit handlers or flushing stdio (for the middle process
/// of a double fork, whose buffers belong to the parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust-managed memory.
    unsafe { libc::_exit(code) }
}

/// `umask(2)`; returns the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: no pointers; umask cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// `kill(2)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: no pointers; a bad pid or signal is reported through errno.
    if unsafe { libc::kill(pid, sig) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when a process with this pid exists (signal 0 probe; EPERM means it exists).
pub fn process_exists(pid: i32) -> bool {
    pid > 0
        && match kill(pid, 0) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() == Some(libc::EPERM),
        }
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: an exclusive advisory lock on an open file, held until
/// the file is closed (also when the process dies). `Ok(false)` when another open file holds
/// it. Never waits.
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    // SAFETY: no pointers; the fd is valid for the borrow of `file`.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Blocking `waitpid(pid, 0)`; returns the raw wait status.
pub fn wait_pid(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(status);
    }
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// One `waitpid(-1, WNOHANG)`: a child that has ended, or None when none has (or there are no
/// children at all).
pub fn reap_one() -> Option<(i32, ChildExit)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable c_int for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            let how = if libc::WIFEXITED(status) {
                ChildExit::Exited(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                ChildExit::Signaled(libc::WTERMSIG(status))
            } else {
                // Stopped/continued: not an exit; look for the next one.
                continue;
            };
            return Some((pid, how));
        }
        if pid == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

/// Points stdin, stdout and stderr at /dev/null (a daemon after startup).
pub fn stdio_to_dev_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..=2 {
        // SAFETY: both descriptors are open; dup2 replaces fd atomically and takes no pointers.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Write end of the self-pipe, read by the signal handler (-1 until installed).
static SIGNAL_PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: errno save/restore and write(2).
    let fd = SIGNAL_PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: errno_location returns this thread's errno slot; we restore it so the
        // interrupted code sees its own errno.
        let saved = unsafe { *libc::__errno_location() };
        let byte = sig as u8;
        // SAFETY: `byte` lives for the call; the pipe is nonblocking, so a full pipe drops the
        // byte (the loop only needs to learn "this signal happened at least once" and the
        // pipe holds thousands).
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *libc::__errno_location() = saved;
        }
    }
}

/// Creates the self-pipe and routes `signals` into it: the handler writes each signal's number
/// as one byte. Returns the nonblocking read end for the event loop. Call once.
pub fn signal_pipe(signals: &[i32]) -> io::Result<OwnedFd> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The write end lives as long as the process (the handler may run at any time).
    SIGNAL_PIPE_WRITE.store(
        std::os::fd::IntoRawFd::into_raw_fd(write),
        Ordering::Relaxed,
    );
    for &sig in signals {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
        // SAFETY: `action.sa_mask` is a valid sigset_t owned by us.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and outlives the call; the old action is not
        // wanted (null).
        if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(read)
}

/// Writes `bytes` to `fd` only if that cannot block: `poll(POLLOUT, 0)`, then one `write(2)`.
/// Returns the bytes written; `Ok(0)` when the descriptor cannot take data now (a pipe nobody
/// reads, a stopped terminal). For a pipe, POLLOUT means a free page, so one write of at most
/// `PIPE_BUF` bytes completes without waiting; callers keep `bytes` that short. Used for the
/// `--foreground` echo on stderr, which must never stall the event loop.
pub fn write_if_ready(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, writable pollfd for the duration of the call; timeout 0.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    if ready == -1 {
        return Err(io::Error::last_os_error());
    }
    if ready == 0 || pfd.revents & libc::POLLOUT == 0 {
        return Ok(0);
    }
    // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The addresses of every interface that is up, except loopback and unspecified ones, in the
/// order `getifaddrs(3)` lists them (duplicates included).
pub fn interface_addrs() -> io::Result<Vec<IpAddr>> {
    let mut addrs = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs only writes the head of a list it allocates; we free it below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut node = head;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*node };
        node = ifa.ifa_next;
        let flags = ifa.ifa_flags as libc::c_int;
        if flags & libc::IFF_UP == 0 || flags & libc::IFF_LOOPBACK != 0 || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose sa_family says its real
        // type; we read it as sockaddr_in/sockaddr_in6 only for the matching family.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if !addr.is_loopback() && !addr.is_unspecified() {
            addrs.push(addr);
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    Ok(addrs)
}

/// `geteuid(2)`.
pub fn euid() -> u32 {
    // SAFETY: no pointers; cannot fail.
    unsafe { libc::geteuid() }
}

/// `getegid(2)`.
pub fn egid() -> u32 {
    // SAFETY: no pointers; cannot fail.
    unsafe { libc::getegid() }
}

/// Makes a Lambda worker die with the daemon: in the child, after std has switched uid/gid
/// (a credential change clears the setting, so it must come after), `prctl(PR_SET_PDEATHSIG,
/// SIGKILL)`; if the daemon already died in between, the child exits at once.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Sends `sig` to the process group `pgid` (a worker leads its own group).
pub fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    kill(-pgid, sig)
}

/// The main thread's stack mapping in /proc/self/maps, as (start, end).
fn stack_mapping() -> io::Result<Option<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    // "START-END PERMS ... [stack]", addresses in hex.
    let range = maps.lines().find(|l| l.ends_with("[stack]")).and_then(|l| {
        let (lo, rest) = l.split_once('-')?;
        let (hi, _) = rest.split_once(' ')?;
        Some((
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        ))
    });
    Ok(range)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

/// `madvise(MADV_DONTNEED)` over [lo, hi). Callers guarantee nothing live is lost: anonymous
/// pages there hold no data anyone reads again, or the pages are clean file pages.
fn dont_need(lo: usize, hi: usize) -> io::Result<()> {
    // SAFETY: the range is page-aligned and inside one of this process's own mappings; the
    // callers' contracts (above) make dropping its pages invisible to the program.
    if unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the main thread's stack pages more than `keep` bytes below the caller's frame back to
/// the kernel (`madvise(MADV_DONTNEED)`): start-up (config, group, certificates) and a TLS
/// handshake run deeper than the idle event loop, and without this their pages stay resident
/// for the life of the process. The next touch of such a page maps a zero page (a minor fault).
/// Returns the bytes of the range given back; 0 when called off the main thread's stack.
pub fn trim_stack(keep: usize) -> io::Result<usize> {
    let Some((lo, hi)) = stack_mapping()? else {
        return Ok(0);
    };
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    if here < lo || here >= hi {
        return Ok(0);
    }
    let end = here.saturating_sub(keep) & !(page_size() - 1);
    if end <= lo {
        return Ok(0);
    }
    // [lo, end) is at least `keep` bytes below the current frame, where nothing live is kept
    // (the ABI promises nothing below the stack pointer beyond a 128-byte red zone; `keep`
    // also covers the frames of this call and of madvise itself). The next touch there gets a
    // zero page, which is all code may assume below its stack pointer.
    dont_need(lo, end)?;
    Ok(end - lo)
}

/// Unmaps this process's pages of its own code and read-only data (from the ELF header to the
/// end of the text: `__executable_start`..`etext`, which the linker defines) with
/// `madvise(MADV_DONTNEED)`. They are clean, never-written file pages: they stay in the page
/// cache, and what runs or is read next is mapped again on its first touch (a minor fault per
/// 64 KiB, no I/O unless the kernel evicted them meanwhile). The writable segments after the
/// text (relocated data, GOT) are not touched. Called once start-up is over, this leaves only
/// the code of device sessions and the idle loop resident (the link order groups it; see
/// musl/symbol-order.txt). Returns the bytes of the range.
pub fn release_text() -> io::Result<usize> {
    extern "C" {
        static __executable_start: u8;
        static etext: u8;
    }
    let page = page_size();
    // Only the addresses of the two linker-defined symbols are taken, never their bytes.
    let (start, end) = (
        std::ptr::addr_of!(__executable_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let (lo, hi) = (start & !(page - 1), end & !(page - 1));
    // Whole pages only: the page holding `etext` may continue into the writable segment.
    dont_need(lo, hi)?;
    Ok(hi - lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A pipe nobody reads fills up; `write_if_ready` then returns 0 instead of blocking.
    #[test]
    fn write_if_ready_never_blocks_on_a_full_pipe() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let line = [b'x'; 2048];
        let mut total = 0;
        let mut refused = false;
        // A Linux pipe holds 64 KiB by default (at most 1 MiB unless raised by root).
        for _ in 0..2048 {
            match write_if_ready(writer.as_fd(), &line).unwrap() {
                0 => {
                    refused = true;
                    break;
                }
                n => total += n,
            }
        }
        assert!(
            refused,
            "a full pipe took {total} bytes and still took more"
        );
        assert!(total > 0);
    }

    #[test]
    fn interface_addrs_leave_out_loopback() {
        let addrs = interface_addrs().unwrap();
        assert!(addrs
            .iter()
            .all(|a| !a.is_loopback() && !a.is_unspecified()));
    }
}
