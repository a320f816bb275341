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
//!
//! A payload of 1,024 bytes or more (an answer with a signed verdict, about 1.4 KiB) is still
//! kept aside, and h2 then flushes to make room before it takes the next frame: its head and
//! payload arrive as two writes, then a flush, while the trailers and any other stream's frames
//! wait for the flush h2 makes at the end of its turn. That first flush is put off: it is
//! recognised by the writes before it (two or more since the last flush; the end-of-turn flush
//! follows the one write of h2's buffer, or none), and what it would have sent leaves with the
//! end-of-turn flush instead, one `write` per turn rather than one more per signed answer. The
//! flush put off is owed, never skipped: the task is woken so it is polled again, and the next
//! read, flush or shutdown pays it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

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
    /// Writes since the last flush: two or more mean a payload h2 kept aside.
    writes: u8,
    /// A flush was put off; the next read, flush or shutdown makes it.
    owed: bool,
}

/// A flush is put off only while this much room is left for what follows it: a signed answer
/// with its frame heads, and more.
const ROOM: usize = 4 * 1024;

impl<T: AsyncWrite> CoalescedWrites<T> {
    /// Wraps an accepted connection.
    pub fn new(stream: T) -> Self {
        Self {
            inner: BufWriter::with_capacity(CAPACITY, stream),
            writes: 0,
            owed: false,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.owed {
            // A flush that cannot finish now has registered for the socket's room; reading
            // goes on meanwhile, and the next read or flush tries again.
            if let Poll::Ready(flushed) = Pin::new(&mut self.inner).poll_flush(cx) {
                self.owed = false;
                flushed?;
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes = self.writes.saturating_add(1);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// What lifts h2's copy threshold (see the module's comment).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let kept_aside = std::mem::take(&mut self.writes) >= 2;
        if kept_aside && CAPACITY - self.inner.buffer().len() >= ROOM {
            // h2 making room mid-turn (see the module's comment): its end-of-turn flush follows.
            // Should anything stop the turn first, the task is polled again and pays the debt.
            if !self.owed {
                self.owed = true;
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(Ok(()));
        }
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.owed = false;
        Poll::Ready(flushed)
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
        // Two writes then a flush: h2 making room mid-turn, put off; the turn's last flush
        // (no write of its own here) sends it all.
        conn.flush().await.unwrap();
        assert!(conn.owed);
        conn.flush().await.unwrap();
        assert!(conn.inner.buffer().is_empty());

        let mut client = client;
        let mut got = vec![0u8; 7 + 1300];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..7], b"headers");
        assert!(got[7..].iter().all(|b| *b == 7));
    }

    /// A client and the accepted end of its connection, wrapped.
    async fn connected() -> (TcpStream, CoalescedWrites<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, CoalescedWrites::new(accepted))
    }

    /// Pending the owed flush, the client must see nothing; a short read attempt tells.
    async fn nothing_arrives(client: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(std::time::Duration::from_millis(50), client.read(&mut byte))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_flush_making_room_mid_turn_leaves_with_the_turns_last_flush() {
        let (mut client, mut conn) = connected().await;

        // h2 with a payload kept aside: its buffer, the payload, then a flush to make room.
        conn.write_all(b"head").await.unwrap();
        conn.write_all(&[7u8; 1300]).await.unwrap();
        conn.flush().await.unwrap();
        assert!(conn.owed, "the flush making room is put off");
        assert_eq!(conn.inner.buffer().len(), 4 + 1300);
        assert!(nothing_arrives(&mut client).await);

        // The end of the turn: the trailers, one write, and a flush that writes everything.
        conn.write_all(b"trailers").await.unwrap();
        conn.flush().await.unwrap();
        assert!(!conn.owed);
        assert!(conn.inner.buffer().is_empty());
        let mut got = vec![0u8; 4 + 1300 + 8];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4 + 1300..], b"trailers");
    }

    #[tokio::test]
    async fn a_flush_put_off_is_paid_by_the_next_read_after_the_task_is_woken() {
        let (mut client, mut conn) = connected().await;

        conn.write_all(b"head").await.unwrap();
        conn.write_all(&[7u8; 1300]).await.unwrap();
        let woken = std::sync::Arc::new(WakeCount::default());
        let waker = std::task::Waker::from(std::sync::Arc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut conn).poll_flush(&mut cx).is_ready());
        assert_eq!(
            woken.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the task is woken so it is polled again"
        );
        assert!(nothing_arrives(&mut client).await);

        // The task polled again reads first: the debt is paid before anything is read.
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        conn.read_exact(&mut got).await.unwrap();
        assert!(!conn.owed);
        let mut sent = vec![0u8; 4 + 1300];
        client.read_exact(&mut sent).await.unwrap();
        assert_eq!(&sent[..4], b"head");
    }

    #[tokio::test]
    async fn one_write_then_a_flush_is_written_at_once_and_every_payload_of_a_turn_leaves_together()
    {
        let (mut client, mut conn) = connected().await;

        // An answer below the threshold: h2 writes its buffer once and flushes.
        conn.write_all(b"small answer").await.unwrap();
        conn.flush().await.unwrap();
        assert!(!conn.owed);
        let mut got = [0u8; 12];
        client.read_exact(&mut got).await.unwrap();

        // Payloads kept aside for three answers in one turn: each flush making room is put
        // off while the buffer has room, and the turn's last flush writes them all.
        for _ in 0..3 {
            conn.write_all(b"head").await.unwrap();
            conn.write_all(&[7u8; 1300]).await.unwrap();
            conn.flush().await.unwrap();
            assert!(conn.owed);
        }
        assert!(nothing_arrives(&mut client).await);
        conn.write_all(b"trailers").await.unwrap();
        conn.flush().await.unwrap();
        assert!(!conn.owed && conn.inner.buffer().is_empty());
        let mut got = vec![0u8; 3 * (4 + 1300) + 8];
        client.read_exact(&mut got).await.unwrap();

        // Put off only while room is left: a turn that fills the buffer is written as it goes.
        for _ in 0..(CAPACITY / 1304) {
            conn.write_all(b"head").await.unwrap();
            conn.write_all(&[7u8; 1300]).await.unwrap();
            conn.flush().await.unwrap();
        }
        assert!(
            CAPACITY - conn.inner.buffer().len() >= ROOM || !conn.owed,
            "never more than the room held back"
        );
    }

    #[derive(Default)]
    struct WakeCount(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for WakeCount {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
