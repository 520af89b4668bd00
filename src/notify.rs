//! The service manager's readiness protocol (systemd's `Type=notify`, `sd_notify(3)`): when
//! `NOTIFY_SOCKET` names a datagram socket, the process sends `READY=1` once its listeners
//! serve and `STOPPING=1` when its drain begins, each with a `STATUS=` line in words. Without
//! the variable nothing is sent; a message that cannot be sent is logged, never fatal.

use std::os::unix::net::UnixDatagram;

/// Sends `message` (newline-separated `KEY=value` lines) to the service manager, if any.
pub fn notify(message: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    send_to(&target, message);
}

/// Sends `message` to the datagram socket `target` (a path, or `@name` in Linux's abstract
/// namespace); a failure is logged.
pub fn send_to(target: &std::ffi::OsStr, message: &str) {
    if let Err(e) = send(target, message) {
        tracing::warn!(socket = ?target, error = %e, "the service manager was not told");
    }
}

fn send(target: &std::ffi::OsStr, message: &str) -> std::io::Result<usize> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    match bytes.split_first() {
        // `@name`: Linux's abstract namespace.
        #[cfg(target_os = "linux")]
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(message.as_bytes(), &addr)
        }
        _ => socket.send_to(message.as_bytes(), std::path::Path::new(target)),
    }
}
