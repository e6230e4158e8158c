//! Has the client gone?
//!
//! actix-web keeps awaiting a handler whose client has disconnected: it notices only when it
//! writes the answer. A handler that waits on PostgreSQL (`datastore_search_sql` with a heavy
//! query) would keep its connection and its query until the statement timeout, for nobody.
//! So each accepted connection's socket is remembered in the request's connection data
//! ([`remember`], from `app.rs`), and [`unless_gone`] races a handler's work against a watcher
//! that peeks at that socket every [`POLL`]: when the client has closed its end, the work is
//! dropped — which cancels whatever query it held (`db::CancelOnDrop`).

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

/// How often a waiting handler looks at its client's socket: one non-blocking syscall, so a
/// query is cancelled at most this long after its client left.
pub const POLL: Duration = Duration::from_millis(100);

/// The socket of one accepted connection.
///
/// Only the raw descriptor is kept, not a duplicate: a `dup` would keep the socket open (no FIN
/// to the client) after actix closed it. It is valid for as long as the connection is, and it is
/// read only while a handler of that connection is being polled — a handler is owned by the
/// connection's dispatcher, which owns the socket — so it never names a closed or reused
/// descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    fd: RawFd,
}

impl Peer {
    pub fn of(socket: &impl AsRawFd) -> Peer {
        Peer {
            fd: socket.as_raw_fd(),
        }
    }

    /// True once the client has closed its end (EOF) or the connection has failed. Bytes
    /// waiting (a pipelined request) or nothing to read yet (`EAGAIN`) mean it is still there;
    /// nothing is consumed (`MSG_PEEK`). A client that half-closes (`shutdown(SHUT_WR)`) and
    /// still waits for the answer looks gone; HTTP/1.1 clients do not do that.
    pub fn gone(&self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: `fd` is the connection's open socket (see the type's invariant) and the
        // buffer is valid for the one byte asked.
        let n = unsafe {
            libc::recv(
                self.fd,
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return n == 0;
        }
        let errno = std::io::Error::last_os_error().raw_os_error();
        !matches!(errno, Some(libc::EAGAIN | libc::EINTR)) && errno != Some(libc::EWOULDBLOCK)
    }
}

/// For `HttpServiceBuilder::on_connect_ext`: remember the accepted connection's socket.
pub fn remember(socket: &impl AsRawFd, data: &mut Extensions) {
    data.insert(Peer::of(socket));
}

/// `work`'s output, or None if `req`'s client went away first (then `work` has been dropped,
/// and with it any query it was waiting on). Without a remembered socket (a test service),
/// simply `work`.
pub async fn unless_gone<F: Future>(req: &HttpRequest, work: F) -> Option<F::Output> {
    let Some(peer) = req.conn_data::<Peer>().copied() else {
        return Some(work.await);
    };
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Some(out),
            _ = tokio::time::sleep(POLL) => {
                if peer.gone() {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// The peek tells a live, a chatty and a closed client apart, and consumes nothing.
    #[test]
    fn a_closed_client_is_gone_and_a_live_one_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let peer = Peer::of(&server);
        assert!(!peer.gone(), "connected, nothing sent");
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!peer.gone(), "bytes waiting");
        assert!(!peer.gone(), "still waiting: the peek consumed nothing");
        drop(client);
        std::thread::sleep(Duration::from_millis(20));
        // The bytes sent before the close are still unread: EOF comes after them.
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut &server, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        assert!(peer.gone(), "closed");
    }
}
