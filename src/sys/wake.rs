//! A self-pipe, for the backends whose system call has no wake-up of its own (poll, select).
//!
//! The read end sits in the backend's watch list under the token [`WAKE`](super::WAKE); the
//! waker writes one byte to the other end from any thread. The backend drains the read end when
//! it is reported and reports nothing for it: a wake-up only makes `wait` return. Bytes written
//! while earlier ones are unread add nothing, so wake-ups coalesce.
//!
//! Unix uses a socket pair; Windows, whose `select` and `WSAPoll` take sockets only, a UDP socket
//! on the loopback address connected to itself.

use super::events::{Events, Mode};
use super::{Backend, RawSource, Waker, WAKE};
use std::io::{self, ErrorKind};
use std::sync::Arc;

#[cfg(unix)]
pub(crate) type Socket = std::os::unix::net::UnixDatagram;
#[cfg(windows)]
pub(crate) type Socket = std::net::UdpSocket;

#[derive(Debug)]
pub(crate) struct WakePipe {
    read: Socket,
    write: Arc<Socket>,
}

impl WakePipe {
    pub(crate) fn new() -> io::Result<WakePipe> {
        let (read, write) = socket_pair()?;
        Ok(WakePipe {
            read,
            write: Arc::new(write),
        })
    }

    /// The descriptor to watch for READ.
    pub(crate) fn fd(&self) -> RawSource {
        super::raw_source(&self.read)
    }

    /// Reads every pending wake-up byte.
    pub(crate) fn drain(&self) {
        drain(&self.read);
    }

    pub(crate) fn waker(&self) -> Waker {
        let write = self.write.clone();
        Arc::new(move || match write.send(&[1]) {
            // A full buffer already holds a wake-up.
            Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        })
    }
}

/// A connected pair of non-blocking datagram sockets, `(read, write)`: one byte sent on `write`
/// makes `read` readable. Also the self-pipe of each signal handler (`sys::signal`).
pub(crate) fn socket_pair() -> io::Result<(Socket, Socket)> {
    #[cfg(unix)]
    let (read, write) = Socket::pair()?;
    #[cfg(windows)]
    let (read, write) = {
        let socket = Socket::bind("127.0.0.1:0")?;
        socket.connect(socket.local_addr()?)?;
        let write = socket.try_clone()?;
        (socket, write)
    };
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    Ok((read, write))
}

/// Reads every byte pending on the read end of a [`socket_pair`]; false if there was none.
pub(crate) fn drain(read: &Socket) -> bool {
    let mut buf = [0u8; 64];
    let mut any = false;
    while matches!(read.recv(&mut buf), Ok(n) if n > 0) {
        any = true;
    }
    any
}

/// The waker of a backend's self-pipe (kept in the slot `pipe` returns), which is created and
/// watched under [`WAKE`] the first time.
pub(crate) fn waker<B: Backend>(
    backend: &mut B,
    pipe: fn(&mut B) -> &mut Option<WakePipe>,
) -> io::Result<Waker> {
    if let Some(pipe) = pipe(backend) {
        return Ok(pipe.waker());
    }
    let new = WakePipe::new()?;
    // SAFETY: the pipe is stored in the backend just below, so it stays open as long as the
    // backend watches it.
    unsafe { backend.add(new.fd(), WAKE, Events::READ, Mode::Level)? };
    Ok(pipe(backend).insert(new).waker())
}
