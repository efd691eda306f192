//! C listeners and their dispatch.
//!
//! One facade listener, the [`Forwarder`], is registered per handle when it
//! opens: every event is therefore consumed (the facade would keep events
//! nobody listens to for `recv`, filling the ring). It hands each event to
//! the C listeners under the handle's *dispatch token*, a re-entrant,
//! first-come-first-served lock held for a whole event (and by
//! `add_listener` around its synchronous `bound`) but never across the
//! library's own locks while a callback runs. The token gives:
//!
//! - the `rm_listener` barrier: a listener removed while another thread
//!   holds the token may be in a callback; the remover waits until that
//!   holder has released it once, and every later event re-checks
//!   registration before each callback;
//! - serialisation of `add_listener`'s synchronous `bound` with dispatch,
//!   so `bound` and `unbind` alternate per listener;
//! - close from a callback: [`Shared`] is reference-counted and lives on in
//!   the forwarder after the handle is freed; the dispatcher sees `closed`
//!   and calls nothing more.

use crate::ffi::IscListenerOps;
use facade::{ChannelHandle, Listener};
use libc::{EBADF, EEXIST, ENOENT, ENOMEM};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

/// A registered C listener. `id` tells two registrations of the same pair
/// apart (removed and added again while an event is being dispatched).
#[derive(Clone, Copy)]
struct Entry {
    id: u64,
    ops: *const IscListenerOps,
    arg: *mut c_void,
}

// SAFETY: the pointers are the caller's; the library only compares them and
// passes them back to the caller's callbacks. The caller guarantees `ops`
// stays valid while registered (isc.h), on whatever thread the callbacks run.
unsafe impl Send for Entry {}

struct State {
    listeners: Vec<Entry>,
    next_id: u64,
    /// The bound state the listeners were told about.
    bound: bool,
    /// Dispatch token: holder and its re-entry depth.
    holder: Option<ThreadId>,
    depth: u32,
    /// Tickets of the token: handed out in order, served in order.
    next_ticket: u64,
    serving: u64,
}

/// State shared by a handle and its forwarder.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Set by `close` before the channel is torn down: no callback is
    /// called afterwards. Release/Acquire with the load in `deliver`.
    closed: AtomicBool,
}

/// Holding the dispatch token; released on drop (also on unwind).
pub(crate) struct Token<'a> {
    shared: &'a Shared,
}

impl Drop for Token<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.depth -= 1;
        if st.depth == 0 {
            st.holder = None;
            st.serving += 1;
            self.shared.changed.notify_all();
        }
    }
}

/// An event handed to the C listeners.
#[derive(Clone, Copy)]
enum Event<'m> {
    Bound,
    Unbound,
    Got(&'m [u8]),
}

impl Shared {
    /// `bound`: whether the channel was bound when it opened; a `BOUND`
    /// control message for that binding is then not reported again.
    pub fn new(bound: bool) -> Self {
        Self {
            state: Mutex::new(State {
                listeners: Vec::new(),
                next_id: 0,
                bound,
                holder: None,
                depth: 0,
                next_ticket: 0,
                serving: 0,
            }),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The state lock; a panic never leaves the state inconsistent (every
    /// update is a single step), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the dispatch token (at once if this thread holds it), in
    /// arrival order. `None` if the handle closed meanwhile.
    pub fn token(&self) -> Option<Token<'_>> {
        let me = thread::current().id();
        let mut st = self.lock();
        if st.holder == Some(me) {
            st.depth += 1;
            return Some(Token { shared: self });
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        while st.serving != ticket || st.holder.is_some() {
            if self.is_closed() {
                // Closed for good: every waiter gives up, so the ticket
                // order no longer matters.
                return None;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.holder = Some(me);
        st.depth = 1;
        Some(Token { shared: self })
    }

    /// Marks the handle closed: no callback runs after the one in progress,
    /// and threads waiting for the token give up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _st = self.lock();
        self.changed.notify_all();
    }

    /// `add_listener`: registers `(ops, arg)` and, if bound, calls its
    /// `bound` before returning, serialised with dispatch.
    pub fn add(&self, ops: *const IscListenerOps, arg: *mut c_void) -> Result<(), i32> {
        let token = self.token().ok_or(EBADF)?;
        let bound = {
            let mut st = self.lock();
            if st.listeners.iter().any(|e| e.ops == ops && e.arg == arg) {
                return Err(EEXIST);
            }
            st.listeners.try_reserve(1).map_err(|_| ENOMEM)?;
            let id = st.next_id;
            st.next_id += 1;
            st.listeners.push(Entry { id, ops, arg });
            st.bound
        };
        if bound && !self.is_closed() {
            // SAFETY: the caller passed a valid `ops` (checked non-NULL) that
            // stays valid while registered; we hold the token, so a
            // concurrent `rm_listener` waits for us before the caller may
            // free it.
            if let Some(f) = unsafe { (*ops).bound } {
                // SAFETY: the caller's callback, called as isc.h documents.
                unsafe { f(arg) };
            }
        }
        drop(token);
        Ok(())
    }

    /// `rm_listener`: unregisters `(ops, arg)`; off the token holder's
    /// thread, waits until a callback that may be running has returned.
    pub fn remove(&self, ops: *const IscListenerOps, arg: *mut c_void) -> Result<(), i32> {
        let me = thread::current().id();
        let mut st = self.lock();
        let pos = st
            .listeners
            .iter()
            .position(|e| e.ops == ops && e.arg == arg)
            .ok_or(ENOENT)?;
        st.listeners.remove(pos);
        if st.holder.is_some_and(|h| h != me) {
            // The holder may be calling this listener right now. Once it
            // releases the token, later events re-check registration.
            let held = st.serving;
            while st.serving == held {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        Ok(())
    }

    fn is_registered(&self, id: u64) -> bool {
        self.lock().listeners.iter().any(|e| e.id == id)
    }

    /// Hands one event to the C listeners registered when it starts; returns
    /// the first non-zero `got` result.
    fn deliver(&self, event: Event<'_>) -> i32 {
        let Some(_token) = self.token() else {
            return 0;
        };
        if self.is_closed() {
            return 0;
        }
        let snapshot = {
            let mut st = self.lock();
            match event {
                // Filter the control messages: a listener told `bound`
                // (e.g. by `add_listener`) is not told again.
                Event::Bound if st.bound => return 0,
                Event::Bound => st.bound = true,
                Event::Unbound if !st.bound => return 0,
                // Unbound before the callbacks run, so a listener added
                // from `unbind` is not told `bound`.
                Event::Unbound => st.bound = false,
                Event::Got(_) => {}
            }
            st.listeners.clone()
        };
        let mut copy = Vec::new();
        let mut rc = 0;
        for entry in snapshot {
            if self.is_closed() {
                // Closed by a callback: the handle is gone.
                break;
            }
            if !self.is_registered(entry.id) {
                continue;
            }
            // SAFETY: registered, so the caller keeps `ops` valid; we hold
            // the token, so a `rm_listener` from another thread waits for us.
            let ops = unsafe { *entry.ops };
            match event {
                Event::Bound => {
                    if let Some(f) = ops.bound {
                        // SAFETY: the caller's callback, called as isc.h documents.
                        unsafe { f(entry.arg) };
                    }
                }
                Event::Unbound => {
                    if let Some(f) = ops.unbind {
                        // SAFETY: as above.
                        unsafe { f(entry.arg) };
                    }
                }
                Event::Got(msg) => {
                    if let Some(f) = ops.got {
                        // A fresh writable copy for each listener, never a
                        // dangling pointer (also for an empty message).
                        copy.clear();
                        copy.reserve(msg.len().max(1));
                        copy.extend_from_slice(msg);
                        // SAFETY: `copy` holds `msg.len()` (<= msz <= 65536)
                        // initialised bytes and lives across the call.
                        let r = unsafe { f(copy.as_mut_ptr().cast(), msg.len() as u32, entry.arg) };
                        if rc == 0 {
                            rc = r;
                        }
                    }
                }
            }
        }
        rc
    }
}

/// The facade listener of a handle: forwards every event to the C listeners.
pub(crate) struct Forwarder(pub Arc<Shared>);

impl Listener for Forwarder {
    fn bound(&self, _: &ChannelHandle) {
        // A panic must not unwind into the facade's thread (nor into C):
        // the event is dropped.
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.deliver(Event::Bound)));
    }

    fn unbound(&self, _: &ChannelHandle) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.deliver(Event::Unbound)));
    }

    fn got(&self, _: &ChannelHandle, msg: &[u8]) -> i32 {
        catch_unwind(AssertUnwindSafe(|| self.0.deliver(Event::Got(msg)))).unwrap_or(0)
    }
}
