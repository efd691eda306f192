//! Listeners and the dispatcher thread that feeds them.
//!
//! The listener list is copy-on-write: the dispatcher takes a snapshot for
//! each event and calls listeners with no lock held, so a listener may add
//! or remove listeners (itself included) freely. The dispatcher thread is
//! started by the first [`ChannelHandle::add_listener`], after the channel
//! is fully set up, and stops when the channel closes.

use crate::channel::{lock, ChannelHandle, EventKind, WAIT_SLICE};
use crate::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Receives a channel's events on its dispatcher thread.
///
/// Every method has a default that ignores the event, so a listener
/// implements only what it needs. The `channel` argument lets a listener
/// call, send, or add and remove listeners.
///
/// ```
/// use isc::{ChannelHandle, Listener};
/// struct Printer;
/// impl Listener for Printer {
///     fn got(&self, _channel: &ChannelHandle, msg: &[u8]) -> i32 {
///         println!("{} bytes", msg.len());
///         0
///     }
/// }
/// ```
pub trait Listener: Send + Sync + 'static {
    /// The driver bound the channel.
    fn bound(&self, channel: &ChannelHandle) {
        let _ = channel;
    }

    /// The driver went away.
    fn unbound(&self, channel: &ChannelHandle) {
        let _ = channel;
    }

    /// The driver posted `msg`. The result code is written back into the
    /// message's slot: with several listeners, the first non-zero one wins.
    fn got(&self, channel: &ChannelHandle, msg: &[u8]) -> i32 {
        let _ = (channel, msg);
        0
    }
}

impl<L: Listener> Listener for Arc<L> {
    fn bound(&self, channel: &ChannelHandle) {
        (**self).bound(channel)
    }

    fn unbound(&self, channel: &ChannelHandle) {
        (**self).unbound(channel)
    }

    fn got(&self, channel: &ChannelHandle, msg: &[u8]) -> i32 {
        (**self).got(channel, msg)
    }
}

/// A listener made of a closure over posted messages.
///
/// ```
/// # use isc::FnListener;
/// let on_message = FnListener(|_ch: &isc::ChannelHandle, msg: &[u8]| msg.len() as i32);
/// ```
pub struct FnListener<F>(pub F);

impl<F> Listener for FnListener<F>
where
    F: Fn(&ChannelHandle, &[u8]) -> i32 + Send + Sync + 'static,
{
    fn got(&self, channel: &ChannelHandle, msg: &[u8]) -> i32 {
        (self.0)(channel, msg)
    }
}

/// Identifies a registered listener, for [`ChannelHandle::remove_listener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Snapshot = Arc<Vec<(ListenerId, Arc<dyn Listener>)>>;

/// The copy-on-write listener list and the condition the idle dispatcher
/// waits on.
#[derive(Default)]
pub(crate) struct Listeners {
    list: Mutex<Snapshot>,
    changed: Condvar,
    next: AtomicU64,
}

impl Listeners {
    pub fn add(&self, listener: Arc<dyn Listener>) -> ListenerId {
        let id = ListenerId(self.next.fetch_add(1, Ordering::Relaxed));
        let mut list = lock(&self.list);
        let mut next = Vec::clone(&list);
        next.push((id, listener));
        *list = Arc::new(next);
        self.changed.notify_all();
        id
    }

    pub fn remove(&self, id: ListenerId) -> bool {
        let mut list = lock(&self.list);
        let Some(pos) = list.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        let mut next = Vec::clone(&list);
        // The removed listener's Arc lives on in any snapshot being
        // dispatched, so removing one mid-call is safe.
        next.remove(pos);
        *list = Arc::new(next);
        true
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.list).is_empty()
    }

    pub fn snapshot(&self) -> Snapshot {
        Arc::clone(&lock(&self.list))
    }

    /// Removes every listener and wakes the dispatcher.
    pub fn clear(&self) {
        let mut list = lock(&self.list);
        *list = Arc::default();
        self.changed.notify_all();
    }

    /// Sleeps (at most one slice) while there are no listeners.
    fn wait_nonempty(&self) {
        let list = lock(&self.list);
        if list.is_empty() {
            let _ = self.changed.wait_timeout(list, WAIT_SLICE);
        }
    }
}

/// The dispatcher thread's body.
pub(crate) fn run(channel: ChannelHandle) {
    let inner = &*channel.0;
    while !inner.closed.load(Ordering::Acquire) {
        if inner.listeners.is_empty() {
            inner.listeners.wait_nonempty();
            continue;
        }
        match dispatch_batch(&channel) {
            Ok(true) => {}
            Ok(false) => {
                if let Err(Error::Closed) = inner.wait_posts(inner.rx(), WAIT_SLICE) {
                    break;
                }
            }
            // A corrupt ring or a dead transport: nothing more will come.
            Err(_) => break,
        }
    }
}

/// Delivers up to one batch of queued events; false if there were none.
///
/// Each event is copied out under the receive lock, delivered with no lock
/// held (so listeners may call anything on the channel), then consumed with
/// the listeners' result code.
fn dispatch_batch(channel: &ChannelHandle) -> crate::Result<bool> {
    const BATCH: usize = 64;
    let inner = &*channel.0;
    let mut msg = Vec::new();
    let mut delivered = 0;
    let result = (|| {
        while delivered < BATCH {
            let listeners = inner.listeners.snapshot();
            if listeners.is_empty() {
                // The last listener left: keep the rest queued for `recv`.
                break;
            }
            let kind = {
                let mut guard = inner.rx();
                let rx = guard.as_mut().ok_or(Error::Closed)?;
                let Some(kind) = inner.take_event(rx)? else {
                    break;
                };
                if let EventKind::Message(len) = kind {
                    msg.clear();
                    msg.extend_from_slice(&rx.buf[..len]);
                }
                rx.dispatching = true;
                kind
            };
            let rc = deliver(channel, &listeners, kind, &msg);
            let mut guard = inner.rx();
            let rx = guard.as_mut().ok_or(Error::Closed)?;
            rx.dispatching = false;
            inner.finish_event(rx, rc)?;
            delivered += 1;
        }
        Ok(())
    })();
    if delivered > 0 {
        if let Some(rx) = inner.rx().as_mut() {
            rx.dispatching = false;
            inner.release(rx)?;
        }
    }
    result.map(|()| delivered > 0)
}

/// The result code of a message whose listener panicked.
pub(crate) const PANIC_RC: i32 = -5; // -EIO

/// Calls every listener; a listener that panics is counted
/// ([`ChannelHandle::listener_panics`]) and stands for rc `-EIO`, and
/// delivery goes on.
fn deliver(channel: &ChannelHandle, listeners: &Snapshot, kind: EventKind, msg: &[u8]) -> i32 {
    let mut rc = 0;
    for (_, listener) in listeners.iter() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match kind {
            EventKind::Bound => {
                listener.bound(channel);
                0
            }
            EventKind::Unbound => {
                listener.unbound(channel);
                0
            }
            EventKind::Message(_) => listener.got(channel, msg),
        }));
        let r = r.unwrap_or_else(|_| {
            channel.0.listener_panics.fetch_add(1, Ordering::Relaxed);
            PANIC_RC
        });
        if rc == 0 && matches!(kind, EventKind::Message(_)) {
            rc = r;
        }
    }
    rc
}
