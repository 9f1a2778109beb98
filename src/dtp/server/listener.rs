//! The listening socket. `[::]` listens on both families (IPV6_V6ONLY off,
//! whatever the system default); where IPv6 is missing, `0.0.0.0` instead.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel keeps for us.
const BACKLOG: u32 = 1024;

/// Bind `addr`, not listening yet: [`listen`] once the service is ready to
/// serve (until then a connection is refused, not left waiting). The second
/// value says when the address was replaced, for the log.
pub fn bind(addr: SocketAddr) -> io::Result<(TcpSocket, Option<String>)> {
    match bind_exactly(addr) {
        Ok(listener) => Ok((listener, None)),
        Err(e) if is_any_v6(addr) && ipv6_unavailable(&e) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            let listener = bind_exactly(v4)?;
            Ok((
                listener,
                Some(format!(
                    "cannot listen on {addr} ({e}): no IPv6 here, listening on {v4} instead"
                )),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Start listening on a socket [`bind`] returned (inside the runtime).
pub fn listen(socket: TcpSocket) -> io::Result<TcpListener> {
    socket.listen(BACKLOG)
}

fn bind_exactly(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    if is_any_v6(addr) {
        dual_stack(&socket)?;
    }
    socket.bind(addr)?;
    Ok(socket)
}

fn is_any_v6(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unspecified())
}

fn ipv6_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

/// IPv4 clients too on a `[::]` socket (net.ipv6.bindv6only may say otherwise).
fn dual_stack(socket: &TcpSocket) -> io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket descriptor, an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An address to connect to for reaching a service bound to `bound`
/// (a wildcard is reached over loopback).
pub fn reachable(bound: SocketAddr) -> SocketAddr {
    match bound {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn wildcard_v6_takes_v4_clients() {
        let (socket, note) = bind("[::]:0".parse().unwrap()).unwrap();
        let listener = listen(socket).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
        let (a, b) = tokio::join!(listener.accept(), connect);
        b.unwrap();
        let peer = a.unwrap().1.ip();
        if note.is_none() {
            assert_eq!(
                peer.to_canonical(),
                std::net::IpAddr::from(Ipv4Addr::LOCALHOST)
            );
        }
    }

    #[test]
    fn wildcards_are_reached_over_loopback() {
        assert_eq!(
            reachable("[::]:5".parse().unwrap()),
            "127.0.0.1:5".parse().unwrap()
        );
        assert_eq!(
            reachable("0.0.0.0:5".parse().unwrap()),
            "127.0.0.1:5".parse().unwrap()
        );
        assert_eq!(
            reachable("[::1]:5".parse().unwrap()),
            "[::1]:5".parse().unwrap()
        );
    }
}
