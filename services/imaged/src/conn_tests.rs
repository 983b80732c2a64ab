//! Tests of `conn`, on virtual time (tokio's paused clock): deterministic, no sleeping.

use std::collections::VecDeque;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

fn limits() -> Limits {
    Limits {
        max_connections: 3,
        max_connections_per_peer: 2,
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
    }
}

fn table() -> Arc<Table> {
    Table::new(limits(), Arc::new(Stats::default()))
}

use crate::authority::PREFACE;

#[test]
fn limits_per_peer_and_in_total() {
    let t = table();
    let a1 = t.admit(PeerKey::Uid(1)).expect("first of uid 1");
    let _a2 = t.admit(PeerKey::Uid(1)).expect("second of uid 1");
    assert!(t.admit(PeerKey::Uid(1)).is_none(), "uid 1 at its limit");
    let _b1 = t.admit(PeerKey::Uid(2)).expect("uid 2 has room");
    assert!(t.admit(PeerKey::Uid(3)).is_none(), "total limit");
    assert_eq!(t.over_limit_reason(), "max_connections");
    assert_eq!(t.stats().open.load(Ordering::Relaxed), 3);
    drop(a1);
    assert_eq!(t.stats().open.load(Ordering::Relaxed), 2);
    assert_eq!(t.over_limit_reason(), "max_connections_per_peer");
    let _a3 = t.admit(PeerKey::Uid(1)).expect("a place was freed");
}

/// A listener that hands out prepared results, then fails with EMFILE forever.
struct Fake {
    queue: VecDeque<io::Result<(DuplexStream, PeerKey)>>,
    ends: Vec<DuplexStream>,
}

impl Accept for Fake {
    type Io = DuplexStream;
    async fn accept(&mut self) -> io::Result<Accepted<DuplexStream>> {
        tokio::task::yield_now().await;
        match self.queue.pop_front() {
            Some(r) => r.map(|(s, k)| (s, Ok((k, None)))),
            None => Err(io::Error::from_raw_os_error(libc::EMFILE)),
        }
    }
}

impl Fake {
    fn with(keys: &[PeerKey]) -> Self {
        let mut f = Fake {
            queue: VecDeque::new(),
            ends: Vec::new(),
        };
        for &k in keys {
            let (server, client) = tokio::io::duplex(64);
            f.queue.push_back(Ok((server, k)));
            f.ends.push(client);
        }
        f
    }
}

/// Issue 11: EMFILE from accept makes the loop wait (10 ms doubling to 1 s), never spin:
/// over 60 virtual seconds it calls accept a bounded number of times.
#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_instead_of_spinning() {
    use futures_util::StreamExt;
    let t = table();
    let stream = incoming(Fake::with(&[]), Arc::clone(&t));
    let mut stream = std::pin::pin!(stream);
    let r = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
    assert!(r.is_err(), "nothing to accept");
    let calls = t.stats().accept_calls.load(Ordering::Relaxed);
    let errors = t.stats().accept_errors.load(Ordering::Relaxed);
    // 10+20+…+640 ms (7 waits, 1.27 s), then one a second: 7 + 59 = 66 at most.
    assert!((60..=67).contains(&calls), "accept calls: {calls}");
    assert!(
        calls - errors <= 1,
        "every call failed but maybe a pending one: {calls} calls, {errors} errors"
    );
}

/// Over a limit, a connection is accepted and closed at once, and the loop goes on to
/// the next one.
#[tokio::test(start_paused = true)]
async fn over_the_limit_a_connection_is_closed_and_the_next_one_served() {
    use futures_util::StreamExt;
    let t = table();
    let keys = [
        PeerKey::Uid(1),
        PeerKey::Uid(1),
        PeerKey::Uid(1),
        PeerKey::Uid(2),
    ];
    let mut fake = Fake::with(&keys);
    let mut ends = std::mem::take(&mut fake.ends);
    let stream = incoming(fake, Arc::clone(&t));
    let mut stream = std::pin::pin!(stream);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(
            stream
                .next()
                .await
                .expect("a connection")
                .expect("infallible"),
        );
    }
    let stats = t.stats();
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 3);
    assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
    // The third of uid 1 was closed: its client reads the end at once.
    let mut buf = [0u8; 1];
    assert_eq!(ends[2].read(&mut buf).await.expect("read"), 0);
    // The served ones are open.
    ends[0].write_all(b"x").await.expect("write");
    let mut got = [0u8; 1];
    conns[0].read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"x");
}

fn conn(t: &Arc<Table>) -> (Conn<DuplexStream>, DuplexStream) {
    let (server, client) = tokio::io::duplex(256);
    let permit = t.admit(PeerKey::Uid(7)).expect("room");
    (Conn::new(server, None, permit, t.limits), client)
}

/// A connection whose client sent the HTTP/2 preface and the server read it.
async fn after_preface(t: &Arc<Table>) -> (Conn<DuplexStream>, DuplexStream) {
    let (mut c, mut client) = conn(t);
    client.write_all(PREFACE).await.expect("preface");
    let mut buf = [0u8; PREFACE_LEN];
    c.read_exact(&mut buf).await.expect("preface read");
    (c, client)
}

/// Issue 11: a connection that never sends the HTTP/2 preface is closed after the
/// handshake timeout.
#[tokio::test(start_paused = true)]
async fn silent_connection_is_closed_after_the_handshake_timeout() {
    let t = table();
    let (mut c, _client) = conn(&t);
    let start = Instant::now();
    let mut buf = [0u8; 8];
    let err = c.read(&mut buf).await.expect_err("timed out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(start.elapsed(), limits().handshake_timeout);
    assert_eq!(t.stats().timed_out.load(Ordering::Relaxed), 1);
    drop(c);
    assert_eq!(
        t.stats().open.load(Ordering::Relaxed),
        0,
        "its place is freed"
    );
}

/// A connection with a call in flight is never idle; once the last call ends it is
/// closed after the idle timeout.
#[tokio::test(start_paused = true)]
async fn idle_timeout_counts_from_the_end_of_the_last_call() {
    let t = table();
    let (mut c, _client) = after_preface(&t).await;

    let call = c.info.activity.begin();
    let mut one = [0u8; 1];
    // A long call: an hour of virtual time passes, the connection stays open.
    let r = tokio::time::timeout(Duration::from_secs(3600), c.read(&mut one)).await;
    assert!(r.is_err(), "not closed while a call is in flight: {r:?}");
    let ended = Instant::now();
    drop(call);
    let err = c.read(&mut one).await.expect_err("idle");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(ended.elapsed(), limits().idle_timeout);
}

/// The wake-up when the last call ends arms the idle timer even if the reader is
/// already waiting.
#[tokio::test(start_paused = true)]
async fn a_waiting_reader_is_woken_when_the_last_call_ends() {
    let t = table();
    let (mut c, _client) = after_preface(&t).await;
    let call = c.info.activity.begin();
    let activity = Arc::clone(&c.info.activity);
    let reader = tokio::spawn(async move {
        let mut one = [0u8; 1];
        c.read(&mut one).await.map_err(|e| e.kind())
    });
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert!(!reader.is_finished());
    assert_eq!(activity.calls.load(Ordering::SeqCst), 1);
    drop(call);
    assert_eq!(
        reader.await.expect("join"),
        Err(io::ErrorKind::TimedOut),
        "closed idle_timeout after the call ended"
    );
}
