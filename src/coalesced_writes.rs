//! A gRPC connection whose answers leave in as few writes as HTTP/2 allows.
//!
//! h2 copies a DATA frame into its write buffer only below a threshold (256 bytes when the
//! connection says it takes vectored writes, 1,024 when it does not); a larger payload is kept
//! aside and the buffer must be written out before the next frame is taken. Every Baton answer
//! is larger than 256 bytes (about 325 without a verdict), so on a plain `TcpStream` each
//! answer cost its own `writev`, and often its trailers another: 1.7 system calls per answer
//! under load (`strace -c`, 16 connections × 8 streams), where the floor, whose empty answers
//! stay under the threshold, needs 0.7. Here the connection says it takes no vectored writes,
//! which lifts the threshold to 1,024, and gathers what h2 writes between two flushes in a
//! buffer of its own, so a payload kept aside still leaves with its frame head in one `write`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tonic::transport::server::Connected;

/// Room for h2's own write buffer (16 KiB) and an answer's payload it keeps aside (a signed
/// verdict's answer is about 1.4 KiB), so one flush of h2 is one `write`; a rare larger
/// payload (a big batch answer) is written straight after what is gathered. Allocated per
/// connection, beside h2's own 16 KiB.
const CAPACITY: usize = 24 * 1024;

/// A connection (TCP, or TLS over it) as h2 sees it: no vectored writes, writes gathered
/// until flushed. Over TLS, a flush's pieces then leave as one record rather than one each.
#[derive(Debug)]
pub struct CoalescedWrites<T> {
    inner: BufWriter<T>,
}

impl<T: AsyncWrite> CoalescedWrites<T> {
    /// Wraps an accepted connection.
    pub fn new(stream: T) -> Self {
        Self {
            inner: BufWriter::with_capacity(CAPACITY, stream),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// What lifts h2's copy threshold (see the module's comment).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The wrapped connection's peer, as tonic puts it in every request (`remote_addr()`, the
/// client certificate).
impl<T: Connected + AsyncWrite> Connected for CoalescedWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> T::ConnectInfo {
        self.inner.get_ref().connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_the_peer_is_still_known() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut conn = CoalescedWrites::new(accepted);
        assert!(
            !conn.is_write_vectored(),
            "h2 must copy answers below 1 KiB"
        );
        assert_eq!(
            conn.connect_info().remote_addr(),
            Some(client.local_addr().unwrap())
        );

        conn.write_all(b"headers").await.unwrap();
        conn.write_all(&[7u8; 1300]).await.unwrap();
        assert_eq!(
            conn.inner.buffer().len(),
            7 + 1300,
            "gathered, not yet written"
        );
        conn.flush().await.unwrap();
        assert!(conn.inner.buffer().is_empty());

        let mut client = client;
        let mut got = vec![0u8; 7 + 1300];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..7], b"headers");
        assert!(got[7..].iter().all(|b| *b == 7));
    }
}
