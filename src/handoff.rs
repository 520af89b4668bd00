//! Reloads and binary upgrades without a refused connection or a dropped request: the running
//! process hands its listening sockets to a successor and drains.
//!
//! On SIGHUP (a reload: the same binary, `/proc/self/exe`, even if the file on disk has been
//! replaced since) or SIGUSR2 (an upgrade: the file the process was started from), the running
//! process starts its successor with the same arguments and environment and with both listening
//! sockets open in it, named in `STRANGLER_LISTEN_FDS` (`public:N,admin:M`). They are the same
//! kernel sockets: a connection waiting in the accept queue is taken by whichever process
//! accepts next, so none is refused while the two overlap, and none is lost when the old one
//! closes its copy. The successor reads the configuration file afresh — so a reload applies
//! every setting, listeners, limits, tokens and all; a listener whose configured address
//! changed is bound anew and the inherited socket closed. Once it serves, the successor says
//! `READY=1` on a datagram socket its predecessor named in `STRANGLER_HANDOFF_NOTIFY`; the
//! predecessor then tells the service manager the new main PID, closes its admin listener and
//! drains as on SIGTERM (answers say `Connection: close` for `[shutdown] drain_delay`, at least
//! [`HANDOFF_DRAIN`], then what is in flight finishes and the mirrored writes still queued are shipped).
//!
//! A successor that fails — a configuration file with a mistake, a store that cannot be
//! opened, a binary that does not run — exits with its error on the same standard error, or is
//! stopped after [`HANDOFF_TIMEOUT`]; the running process says so and keeps serving.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The inherited listening sockets, `NAME:FD` pairs separated by commas.
pub const LISTEN_FDS: &str = "STRANGLER_LISTEN_FDS";
/// Where a successor says it serves: a datagram socket (`@name` for Linux's abstract namespace).
pub const HANDOFF_NOTIFY: &str = "STRANGLER_HANDOFF_NOTIFY";
/// The shortest drain after a hand-off, whatever `[shutdown] drain_delay` says: long enough for
/// clients on busy keep-alive connections to be answered `Connection: close` before the idle
/// connections left are closed (closing a connection as its client sends on it fails that
/// request — with no drain at all, the hand-off test saw 3 such failures).
pub const HANDOFF_DRAIN: Duration = Duration::from_secs(1);
/// How long a successor has to start serving (a large catalog on a slow store takes a while).
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a successor is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// SIGHUP: the same binary reads the configuration again.
    Reload,
    /// SIGUSR2: the binary now at the path this one was started from.
    Upgrade,
}

/// Listening sockets a predecessor handed over.
#[derive(Debug, Default)]
pub struct Inherited {
    public: Option<std::net::TcpListener>,
    admin: Option<std::net::TcpListener>,
}

impl Inherited {
    /// Takes the sockets named in [`LISTEN_FDS`], if any. Called once, at start.
    pub fn from_env() -> anyhow::Result<Self> {
        let Some(value) = std::env::var_os(LISTEN_FDS) else {
            return Ok(Self::default());
        };
        let fix = "it is set by a running strangler for the process it hands its sockets to; do not set it yourself";
        let value = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{LISTEN_FDS} is not text; {fix}"))?;
        let mut inherited = Self::default();
        let mut taken = Vec::new();
        for pair in value.split(',').filter(|p| !p.is_empty()) {
            let (name, fd) = pair
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("{LISTEN_FDS}: `{pair}` is not NAME:FD; {fix}"))?;
            let fd: i32 = fd.parse().ok().filter(|fd| *fd > 2).ok_or_else(|| {
                anyhow::anyhow!("{LISTEN_FDS}: `{fd}` is not a descriptor; {fix}")
            })?;
            let slot = match name {
                "public" => &mut inherited.public,
                "admin" => &mut inherited.admin,
                _ => anyhow::bail!("{LISTEN_FDS}: unknown listener `{name}`; {fix}"),
            };
            if taken.contains(&fd) || slot.is_some() {
                anyhow::bail!(
                    "{LISTEN_FDS}: `{pair}` names a listener or a descriptor twice; {fix}"
                );
            }
            taken.push(fd);
            *slot = Some(fd::adopt(fd).with_context(|| format!("{LISTEN_FDS}: {pair}; {fix}"))?);
        }
        Ok(inherited)
    }

    /// The public listener: the inherited one if it is on `addr`, else a new one.
    pub async fn public(&mut self, addr: SocketAddr) -> anyhow::Result<TcpListener> {
        take(&mut self.public, addr, "the facade", "--listen").await
    }

    /// The admin listener: the inherited one if it is on `addr`, else a new one.
    pub async fn admin(&mut self, addr: SocketAddr) -> anyhow::Result<TcpListener> {
        take(&mut self.admin, addr, "the admin listener", "--admin").await
    }
}

async fn take(
    inherited: &mut Option<std::net::TcpListener>,
    addr: SocketAddr,
    what: &str,
    flag: &str,
) -> anyhow::Result<TcpListener> {
    if let Some(listener) = inherited.take() {
        let at = listener.local_addr()?;
        // Port 0 asks for any port: the one already held is as good as a new one.
        if at.ip() == addr.ip() && (addr.port() == 0 || addr.port() == at.port()) {
            listener.set_nonblocking(true)?;
            return Ok(TcpListener::from_std(listener)?);
        }
        tracing::warn!(was = %at, now = %addr, "{what}'s address changed in the configuration: listening on the new one; the old one closes with the process that held it");
    }
    crate::serve::bind(addr, what, flag).await
}

/// What the running process keeps to start a successor: its own copies of the listening
/// sockets, and how it was started.
pub struct Handoff {
    public: OwnedFd,
    admin: OwnedFd,
    /// The file this process was started from (an upgrade runs what is there now).
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Handoff {
    pub fn new(public: &TcpListener, admin: &TcpListener) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot tell which file this process runs")?;
        // Linux names a replaced file `PATH (deleted)`; the upgrade wants what is at PATH now.
        let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
            Some(path) => PathBuf::from(path),
            None => exe,
        };
        Ok(Self {
            public: public.as_fd().try_clone_to_owned()?,
            admin: admin.as_fd().try_clone_to_owned()?,
            exe,
            args: std::env::args_os().skip(1).collect(),
        })
    }

    /// Starts a successor and waits until it serves (its process id), fails, or `stop` turns
    /// true (then it is stopped).
    pub async fn start(&self, why: Why, stop: &mut watch::Receiver<bool>) -> Result<u32, String> {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "strangler-handoff-{}-{}",
            std::process::id(),
            strangler_catalog::clock::now_ms()
        );
        let bound = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| std::os::unix::net::UnixDatagram::bind_addr(&a))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UnixDatagram::from_std(s)
            })
            .map_err(|e| format!("cannot open the socket a successor reports on: {e}"))?;
        let program = match why {
            Why::Reload => PathBuf::from("/proc/self/exe"),
            Why::Upgrade => self.exe.clone(),
        };
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&self.args)
            .env(
                LISTEN_FDS,
                format!(
                    "public:{},admin:{}",
                    self.public.as_raw_fd(),
                    self.admin.as_raw_fd()
                ),
            )
            .env(HANDOFF_NOTIFY, format!("@{name}"))
            .kill_on_drop(false);
        let spawned = fd::inheritable(&[&self.public, &self.admin], || command.spawn());
        let mut child = spawned.map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, program = %program.display(), ?why, "a successor is starting on this process's listening sockets");
        let mut buf = [0u8; 512];
        let deadline = tokio::time::sleep(HANDOFF_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                got = bound.recv(&mut buf) => {
                    let Ok(n) = got else { continue };
                    let said = String::from_utf8_lossy(&buf[..n]);
                    let from_it = said.lines().any(|l| l == format!("MAINPID={pid}"));
                    if from_it && said.lines().any(|l| l == "READY=1") {
                        return Ok(pid);
                    }
                }
                status = child.wait() => {
                    return Err(match status {
                        Ok(s) => format!("the successor exited ({s}) before it served; its messages above say why"),
                        Err(e) => format!("the successor could not be waited for: {e}"),
                    });
                }
                () = &mut deadline => {
                    let _ = child.start_kill();
                    return Err(format!("the successor did not serve within {} s; it was stopped", HANDOFF_TIMEOUT.as_secs()));
                }
                _ = stop.wait_for(|s| *s) => {
                    let _ = child.start_kill();
                    return Err("this process is stopping; the successor was stopped".to_owned());
                }
            }
        }
    }
}

/// Tells the predecessor, if this process is a successor, that it serves. True if it was one.
pub fn tell_predecessor(status: &str) -> bool {
    let Some(target) = std::env::var_os(HANDOFF_NOTIFY) else {
        return false;
    };
    crate::notify::send_to(
        &target,
        &format!("READY=1\nMAINPID={}\nSTATUS={status}", std::process::id()),
    );
    true
}

/// Set once a successor serves: this process drains without telling the service manager (the
/// successor is its main process now) and closes its admin listener at once.
pub static HANDED_OFF: AtomicBool = AtomicBool::new(false);

/// Serves hand-offs until one succeeds (then [`HANDED_OFF`] and `stop` are set) or the process
/// stops.
pub async fn on_signals(handoff: Handoff, stop_tx: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut usr2)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
    ) else {
        tracing::warn!("cannot watch SIGHUP and SIGUSR2: reloads and upgrades need a restart");
        return;
    };
    let mut stop = stop_tx.subscribe();
    loop {
        let why = tokio::select! {
            _ = hup.recv() => Why::Reload,
            _ = usr2.recv() => Why::Upgrade,
            _ = stop.wait_for(|s| *s) => return,
        };
        tracing::info!(?why, "starting a successor");
        crate::notify::notify("RELOADING=1\nSTATUS=starting a successor");
        match handoff.start(why, &mut stop).await {
            Ok(pid) => {
                tracing::info!(successor = pid, "the successor serves; this process drains");
                crate::notify::notify(&format!(
                    "MAINPID={pid}\nREADY=1\nSTATUS=pid {pid} took over the listeners"
                ));
                HANDED_OFF.store(true, Ordering::Relaxed);
                let _ = stop_tx.send(true);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "the reload or upgrade failed; this process keeps serving");
                crate::notify::notify(&format!(
                    "READY=1\nSTATUS=serving; the last reload failed: {e}"
                ));
            }
        }
    }
}

/// The two places a descriptor is handled by number; the only unsafe code of the binary.
#[allow(unsafe_code)]
mod fd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    /// Takes ownership of inherited descriptor `fd`, checked to be a listening stream socket
    /// and made close-on-exec again.
    pub fn adopt(fd: RawFd) -> anyhow::Result<std::net::TcpListener> {
        let mut listening: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `listening`, which is that size;
        // an fd that is not open or not a socket makes it fail, which is checked.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                std::ptr::addr_of_mut!(listening).cast(),
                &mut len,
            )
        };
        if got != 0 {
            anyhow::bail!(
                "descriptor {fd} is not a socket: {}",
                std::io::Error::last_os_error()
            );
        }
        if listening != 1 {
            anyhow::bail!("descriptor {fd} is not a listening socket");
        }
        // SAFETY: the descriptor is open (getsockopt succeeded), was inherited across exec for
        // this purpose, and nothing else in this process owns it: the names are checked to be
        // distinct and this runs once, at start.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec(&owned, true)?;
        let listener = std::net::TcpListener::from(owned);
        listener.local_addr()?;
        Ok(listener)
    }

    /// Runs `f` (a spawn) with `fds` inherited by processes started meanwhile; close-on-exec
    /// again afterwards, whatever `f` returned.
    pub fn inheritable<T>(
        fds: &[&OwnedFd],
        f: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        for fd in fds {
            set_cloexec(fd, false)?;
        }
        let result = f();
        for fd in fds {
            let _ = set_cloexec(fd, true);
        }
        result
    }

    fn set_cloexec(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
        let flags = if on { libc::FD_CLOEXEC } else { 0 };
        // SAFETY: F_SETFD on a descriptor this process owns (borrowed for the call) touches only
        // its close-on-exec flag.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
