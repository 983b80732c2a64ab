//! WatchEvents: the engine's committed events fan out to every watcher through one
//! `tokio::sync::broadcast` channel.
//!
//! The engine gets [`EventHub::sink`] (`Engine::with_events`). A watcher that falls more
//! than the channel's capacity behind receives an `EVENT_TYPE_LAGGED` event with the
//! number of dropped events and continues with the oldest event still buffered.
//! [`EventHub::close`] ends every stream (daemon shutdown) so connections can drain.

use std::sync::Arc;

use imaged_core::engine::EventSink;
use imaged_core::ops;
use imaged_proto::imaged::v1 as pb;
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::Status;

use super::convert;

/// Default number of events buffered per watcher before it lags.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;

/// The fan-out point of committed events.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<ops::Event>>,
    closed: watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl EventHub {
    /// A hub buffering `capacity` events per watcher (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (closed, _) = watch::channel(false);
        Self { tx, closed }
    }

    /// The sink to give to `Engine::with_events`. Sending never blocks the engine.
    pub fn sink(&self) -> EventSink {
        let tx = self.tx.clone();
        Arc::new(move |e: &ops::Event| {
            // No watcher is not an error.
            let _ = tx.send(Arc::new(e.clone()));
        })
    }

    /// Publishes an event (what the sink does; for tests and other producers).
    pub fn publish(&self, e: &ops::Event) {
        let _ = self.tx.send(Arc::new(e.clone()));
    }

    /// Number of current watchers.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Ends every stream, now and later.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A stream of the events of `types` (all when empty), plus LAGGED events.
    pub fn subscribe(
        &self,
        types: Vec<pb::EventType>,
    ) -> impl Stream<Item = Result<pb::Event, Status>> + Send + 'static {
        let state = Watch {
            rx: self.tx.subscribe(),
            closed: self.closed.subscribe(),
            types,
        };
        futures_util::stream::unfold(state, |mut w| async move {
            let next = w.next().await?;
            Some((Ok(next), w))
        })
    }
}

struct Watch {
    rx: broadcast::Receiver<Arc<ops::Event>>,
    closed: watch::Receiver<bool>,
    types: Vec<pb::EventType>,
}

impl Watch {
    async fn next(&mut self) -> Option<pb::Event> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            tokio::select! {
                changed = self.closed.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                r = self.rx.recv() => match r {
                    Ok(e) => {
                        let t = convert::event_type(e.kind);
                        if self.types.is_empty() || self.types.contains(&t) {
                            return Some(convert::event(&e));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => return Some(convert::lagged(n)),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn ev(kind: ops::EventKind, name: &str) -> ops::Event {
        ops::Event {
            kind,
            image_id: None,
            name: name.into(),
            time: 1,
            reclaimed_bytes: 0,
        }
    }

    #[tokio::test]
    async fn filters_types() {
        let hub = EventHub::new(16);
        let mut s = Box::pin(hub.subscribe(vec![pb::EventType::Delete]));
        let sink = hub.sink();
        sink(&ev(ops::EventKind::Tag, "a"));
        sink(&ev(ops::EventKind::Delete, "b"));
        let e = s.next().await.expect("an event").expect("ok");
        assert_eq!(
            (e.r#type, e.name.as_str()),
            (pb::EventType::Delete as i32, "b")
        );
    }

    #[tokio::test]
    async fn lagging_watcher_gets_lagged_then_continues() {
        let hub = EventHub::new(2);
        let mut s = Box::pin(hub.subscribe(vec![]));
        for i in 0..5 {
            hub.publish(&ev(ops::EventKind::Tag, &format!("n{i}")));
        }
        let first = s.next().await.expect("event").expect("ok");
        assert_eq!(first.r#type, pb::EventType::Lagged as i32);
        assert_eq!(first.dropped, 3);
        let names: Vec<String> = [s.next().await, s.next().await]
            .into_iter()
            .map(|e| e.expect("event").expect("ok").name)
            .collect();
        assert_eq!(names, ["n3", "n4"]);
    }

    #[tokio::test]
    async fn close_ends_streams() {
        let hub = EventHub::new(4);
        let mut s = Box::pin(hub.subscribe(vec![]));
        assert_eq!(hub.watchers(), 1);
        hub.close();
        assert!(s.next().await.is_none());
        let mut late = Box::pin(hub.subscribe(vec![]));
        assert!(
            late.next().await.is_none(),
            "streams opened after close end at once"
        );
    }
}
