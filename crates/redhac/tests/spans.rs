//! Writes and lookups carry a span with the cache and the ack level, and no
//! span or event at any level carries a key or a value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redhac::testing::TestCluster;
use redhac::{AckLevel, CacheOptions, WriteOptions};

/// Everything written by the subscriber, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_carry_cache_and_ack_in_a_span_and_never_the_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_global_default(subscriber);

    let mut cluster = TestCluster::start(3, |b| {
        b.cache::<String>("sessions", CacheOptions::default())
    })
    .await
    .unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(20)).await.unwrap();
    let follower = (leader + 1) % 3;
    let sessions = cluster
        .member(follower)
        .cache::<String>("sessions")
        .unwrap();
    let all = WriteOptions::default().ack(AckLevel::All);
    sessions
        .put_with("secret-key-4711", "secret-value-0815".to_owned(), all)
        .await
        .unwrap();
    sessions.delete("secret-key-4711").await.unwrap();
    cluster.kill(leader);
    // A write that fails names its error in the span, still without the key.
    let _ = sessions
        .put_with(
            "secret-key-4712",
            "secret-value-0816".to_owned(),
            WriteOptions::default().timeout(Duration::from_millis(1)),
        )
        .await;
    cluster.shutdown().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("redhac.write")
            && text.contains("cache=\"sessions\"")
            && text.contains("ack=All"),
        "no write span with its cache and ack level in:\n{text}"
    );
    assert!(text.contains("op=\"delete\""), "{text}");
    for secret in ["secret-key", "secret-value"] {
        assert!(!text.contains(secret), "{secret} appears in the traces");
    }
}
