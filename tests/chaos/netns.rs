//! Network namespaces made in-process, each joined to the test by a TUN device,
//! so that a hub and an engine can run on two hosts of their own with a link
//! between them that the test impairs itself ([`crate::impair`]).
//!
//! A network namespace belongs to a thread on Linux: a thread that calls
//! `unshare(CLONE_NEWNET)` moves itself into a new, empty one, and every thread
//! it starts afterwards (a hub's loop, an engine's) is born there and opens its
//! sockets there. [`Host::new`] does exactly that on a thread of its own:
//! unshares, brings `lo` up, opens `/dev/net/tun` as a point-to-point interface
//! (`IFF_TUN | IFF_NO_PI`: whole IPv4 packets, no header) with a local and a
//! peer address, hands back the TUN's file descriptor, and stays there to
//! run what the test starts in the namespace ([`Host::run`]). The namespace
//! lives as long as the threads and sockets in it. No `ip` command and no
//! `tc` are needed: the addresses are set with the classic interface ioctls,
//! and the impairment is done on the TUN fds in user space, which works on
//! kernels built without `netem`.
//!
//! It needs root (CAP_SYS_ADMIN for `unshare`, CAP_NET_ADMIN for the TUN and
//! the addresses) and `/dev/net/tun`. [`require`] checks both first and says
//! which is missing.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// The environment variable that lets a machine without root or TUN skip the
/// namespace tests (they fail otherwise, saying what they need).
pub const SKIP_VAR: &str = "POSELINK_SKIP_NETNS";

/// Whether the namespace tests can run here: `Ok(true)` to run, `Ok(false)`
/// when they may not and [`SKIP_VAR`] is set to 1 (said on stderr), and `Err`
/// with a sentence saying what is missing otherwise.
pub fn require() -> Result<bool, String> {
    let missing = missing();
    match (missing, std::env::var(SKIP_VAR).as_deref() == Ok("1")) {
        (None, _) => Ok(true),
        (Some(why), true) => {
            eprintln!("SKIPPED ({SKIP_VAR}=1): {why}");
            Ok(false)
        }
        (Some(why), false) => Err(format!(
            "{why}; run the tests as root on a kernel with TUN (CI does), \
             or set {SKIP_VAR}=1 to skip them knowingly"
        )),
    }
}

/// What keeps namespaces from being made here, if anything: tried for real on
/// a throw-away thread (an unprivileged user namespace does not count: the
/// TUN device must be opened too).
fn missing() -> Option<String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("the network-namespace tests need /dev/net/tun, and it is missing".into());
    }
    let tried = std::thread::spawn(|| -> Result<(), String> {
        unshare_net().map_err(|e| {
            format!("the network-namespace tests need root (CAP_SYS_ADMIN) to unshare a network namespace: {e}")
        })?;
        open_tun(c"plkprobe").map(drop).map_err(|e| {
            format!("the network-namespace tests need root (CAP_NET_ADMIN) to open /dev/net/tun: {e}")
        })
    })
    .join();
    match tried {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(_) => Some("the namespace probe thread panicked".into()),
    }
}

/// A job run on a host's namespace thread.
type Job = Box<dyn FnOnce() + Send>;

/// One side of the link: a namespace with `lo` and a TUN interface, and a
/// thread living in it that runs what the test starts there
/// ([`run`](Host::run)): a hub, an engine, whose own threads are then born in
/// the namespace too.
pub struct Host {
    tun: Option<OwnedFd>,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    /// Most jobs one host runs, and the longest its thread waits for the next:
    /// bounds for a test that forgets to drop it.
    const MAX_JOBS: usize = 64;
    const MAX_IDLE: Duration = Duration::from_secs(10 * 60);

    /// Makes a namespace on a new thread with `lo` up and a TUN interface
    /// `local` ↔ `peer` (point to point, /32).
    pub fn new(local: Ipv4Addr, peer: Ipv4Addr) -> io::Result<Host> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{local}"))
            .spawn(move || {
                let made = (|| {
                    unshare_net()?;
                    let ctl = Ctl::new()?;
                    ctl.up(c"lo")?;
                    let tun = open_tun(c"plk0")?;
                    ctl.set_addr(c"plk0", libc::SIOCSIFADDR, local)?;
                    ctl.set_addr(c"plk0", libc::SIOCSIFDSTADDR, peer)?;
                    ctl.set_addr(c"plk0", libc::SIOCSIFNETMASK, Ipv4Addr::BROADCAST)?;
                    ctl.up(c"plk0")?;
                    Ok::<_, io::Error>(tun)
                })();
                let ok = made.is_ok();
                let _ = ready_tx.send(made);
                if !ok {
                    return;
                }
                for _ in 0..Self::MAX_JOBS {
                    match rx.recv_timeout(Self::MAX_IDLE) {
                        Ok(job) => job(),
                        Err(_) => return, // dropped (or forgotten)
                    }
                }
            })?;
        let tun = ready
            .recv()
            .map_err(|_| io::Error::other("the namespace thread ended"))??;
        Ok(Host {
            tun: Some(tun),
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// The TUN's descriptor (once): IPv4 packets the namespace sends out of
    /// the interface are read from it, packets written to it arrive there.
    pub fn take_tun(&mut self) -> OwnedFd {
        self.tun.take().expect("the TUN fd is taken once")
    }

    /// Runs `f` on the namespace's thread and returns what it returns.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .as_ref()
            .expect("the host is running")
            .send(job)
            .expect("the namespace thread takes jobs");
        rx.recv().expect("the job ran (it panicked?)")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare only changes the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `ifreq` naming `name` (shorter than IFNAMSIZ), the rest zeroed.
fn ifreq(name: &CStr) -> libc::ifreq {
    // SAFETY: ifreq is plain data (arrays, integers, a union of them and a
    // pointer); all zeroes is a valid value of it.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &s) in r.ifr_name.iter_mut().zip(name.to_bytes()) {
        *d = s as libc::c_char;
    }
    r
}

/// Opens `/dev/net/tun` as the TUN interface `name` in the calling thread's
/// namespace, non-blocking (the impairer polls it).
fn open_tun(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a plain open of a NUL-terminated path; the fd is owned at once.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut r = ifreq(name);
    r.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `r` is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A datagram socket in the namespace, for the interface ioctls.
struct Ctl(OwnedFd);

impl Ctl {
    fn new() -> io::Result<Ctl> {
        // SAFETY: a plain socket(2); the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Ctl(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sets an address of the interface (`SIOCSIFADDR`, `SIOCSIFDSTADDR` or
    /// `SIOCSIFNETMASK`).
    fn set_addr(&self, name: &CStr, request: libc::c_ulong, addr: Ipv4Addr) -> io::Result<()> {
        let mut r = ifreq(name);
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(addr).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_in is no larger than sockaddr (16 bytes each), and
        // the union field is a sockaddr.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&sin as *const libc::sockaddr_in).cast::<u8>(),
                (&mut r.ifr_ifru.ifru_addr as *mut libc::sockaddr).cast::<u8>(),
                std::mem::size_of::<libc::sockaddr_in>(),
            );
        }
        self.ioctl(request, &mut r)
    }

    /// Brings the interface up (and running).
    fn up(&self, name: &CStr) -> io::Result<()> {
        let mut r = ifreq(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { r.ifr_ifru.ifru_flags };
        r.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, &mut r)
    }

    fn ioctl(&self, request: libc::c_ulong, r: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request used here reads or writes one ifreq.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request as _, r as *mut libc::ifreq) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
