//! Polling a future only when one of its own wakers fired.
//!
//! `block_on(ex.run(main))` polls `main` every time the event loop wakes, which is every time
//! any task was scheduled: once or twice per routed message. `app::run`'s main future holds the
//! listeners (broker, discovery, IPC) and each of them, re-polled, retried `accept4` (EAGAIN)
//! and re-armed its socket in epoll (`epoll_ctl`): 4 of the 13 syscalls per message
//! (ARCHITECTURE.md, "The path of a message, per message"). [`when_woken`] polls the wrapped
//! future only after a waker it handed out was woken, as the executor does for its tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// `fut`, polled the first time and then only after it was woken.
pub fn when_woken<F: Future>(fut: F) -> WhenWoken<F> {
    let flag = Arc::new(Flag {
        woken: AtomicBool::new(true),
        outer: Mutex::new(None),
    });
    WhenWoken {
        fut: Box::pin(fut),
        waker: Waker::from(flag.clone()),
        flag,
    }
}

/// See [`when_woken`].
pub struct WhenWoken<F> {
    fut: Pin<Box<F>>,
    flag: Arc<Flag>,
    /// The waker the inner future sees (wakes `flag`).
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    /// The waker of whoever polls the [`WhenWoken`].
    outer: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let outer = self.outer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = outer.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            let mut outer = this.flag.outer.lock().unwrap_or_else(|e| e.into_inner());
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.fut
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn polled_first_and_then_only_when_woken() {
        let polls = Rc::new(Cell::new(0));
        let stash: Rc<Cell<Option<Waker>>> = Rc::new(Cell::new(None));
        let (p, s) = (polls.clone(), stash.clone());
        let mut f = when_woken(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            s.set(Some(cx.waker().clone()));
            if p.get() == 2 {
                Poll::Ready(7)
            } else {
                Poll::Pending
            }
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        // Polled again without a wake-up of its own: the inner future is not.
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 1);
        stash.take().unwrap().wake();
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(7));
        assert_eq!(polls.get(), 2);
    }
}
