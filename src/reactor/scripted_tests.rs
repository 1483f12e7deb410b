//! The selector's failure paths that real pollers cannot produce on demand (a failed wait, a
//! poller refusing a change...), replayed through the scripted backend (`sys/scripted.rs`).

use crate::reactor::key::SelectorKey;
use crate::reactor::selector::Selector;
use crate::sys::events::{Events, EVENT_READ, EVENT_WRITE};
use crate::sys::scripted::Scripted;
use std::io::{self, ErrorKind};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener")
}

fn selector() -> Selector<Scripted> {
    Selector::new().unwrap()
}

fn script(sel: &mut Selector<Scripted>, batches: &[&[(SelectorKey, Events)]]) {
    for batch in batches {
        let batch = batch.iter().map(|(key, e)| (key.token.0, *e)).collect();
        sel.backend.batches.push_back(batch);
    }
}

#[test]
fn split_read_and_write_reports_merge_into_one_pair() -> io::Result<()> {
    let mut sel = selector();
    let key = sel.register(listener(), EVENT_READ | EVENT_WRITE, |_, _, _| Ok(()))?;
    let other = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    script(
        &mut sel,
        &[&[(key, EVENT_READ), (other, EVENT_READ), (key, EVENT_WRITE)]],
    );
    let ready = sel.select(Some(Duration::ZERO))?;
    assert_eq!(
        ready,
        [(key, EVENT_READ | EVENT_WRITE), (other, EVENT_READ)]
    );
    // The next poll starts afresh: no merging across polls.
    script(&mut sel, &[&[(key, EVENT_WRITE)]]);
    assert_eq!(sel.select(Some(Duration::ZERO))?, [(key, EVENT_WRITE)]);
    Ok(())
}

#[test]
fn readiness_outside_the_interest_is_dropped() -> io::Result<()> {
    let mut sel = selector();
    let key = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    script(
        &mut sel,
        &[&[(key, EVENT_WRITE)], &[(key, EVENT_READ | EVENT_WRITE)]],
    );
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    assert_eq!(sel.select(Some(Duration::ZERO))?, [(key, EVENT_READ)]);
    Ok(())
}

#[test]
fn stale_token_of_a_reused_slot_is_dropped() -> io::Result<()> {
    let mut sel = selector();
    let old = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    sel.unregister(&old)?;
    let new = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    assert_eq!(
        old.token.index(),
        new.token.index(),
        "the slot was not reused"
    );
    script(
        &mut sel,
        &[
            &[(old, EVENT_READ)],
            &[(old, EVENT_READ), (new, EVENT_READ)],
        ],
    );
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    assert_eq!(sel.select(Some(Duration::ZERO))?, [(new, EVENT_READ)]);
    // dispatch() of the stale key does nothing either.
    let called = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = called.clone();
    sel.set_callback(&new, move |_, _: &mut TcpListener, _| {
        flag.set(true);
        Ok(())
    })?;
    sel.dispatch(&old, EVENT_READ)?;
    assert!(!called.get(), "a stale key reached the new registration");
    sel.dispatch(&new, EVENT_READ)?;
    assert!(called.get());
    Ok(())
}

#[test]
fn empty_wake_ups_never_end_a_timed_select_early() -> io::Result<()> {
    let mut sel = selector();
    sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    let d = Duration::from_millis(30);
    let start = Instant::now();
    assert!(sel.select(Some(d))?.is_empty()); // every wait returns at once, empty
    assert!(start.elapsed() >= d, "returned after {:?}", start.elapsed());
    assert!(sel.backend.waits > 1, "it did not wait again");
    Ok(())
}

#[test]
fn empty_wake_ups_never_end_a_blocking_select() -> io::Result<()> {
    let mut sel = selector();
    let key = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    script(&mut sel, &[&[], &[], &[(key, EVENT_READ)]]);
    assert_eq!(sel.select(None)?, [(key, EVENT_READ)]);
    assert_eq!(sel.backend.waits, 3);
    Ok(())
}

#[test]
fn interrupted_waits_are_retried() -> io::Result<()> {
    let mut sel = selector();
    let key = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    sel.backend.interrupts = 2;
    script(&mut sel, &[&[(key, EVENT_READ)]]);
    assert_eq!(sel.select(None)?, [(key, EVENT_READ)]);
    assert_eq!(sel.backend.waits, 3);
    sel.backend.interrupts = 1;
    assert!(sel.select(Some(Duration::from_millis(5)))?.is_empty());
    Ok(())
}

#[test]
fn a_failed_wait_is_returned_not_retried() -> io::Result<()> {
    let mut sel = selector();
    let key = sel.register(listener(), EVENT_READ, |_, _, _| Ok(()))?;
    sel.backend.fail_wait = Some(ErrorKind::PermissionDenied);
    script(&mut sel, &[&[(key, EVENT_READ)]]);
    let err = sel.select(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(sel.backend.waits, 1, "the failed wait was retried");
    sel.backend.fail_wait = Some(ErrorKind::PermissionDenied);
    assert_eq!(
        sel.run_once(None).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(sel.select(None)?, [(key, EVENT_READ)]); // the next wait works
    Ok(())
}

/// A source that records when it is closed (dropped) in the backend's call log.
struct Recorded {
    listener: TcpListener,
    calls: std::rc::Rc<std::cell::RefCell<Vec<(&'static str, crate::sys::RawSource)>>>,
}

impl crate::sys::AsSource for Recorded {
    #[cfg(unix)]
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.listener.as_fd()
    }
    #[cfg(windows)]
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.listener.as_socket()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let fd = crate::sys::raw_source(&self.listener);
        self.calls.borrow_mut().push(("close", fd));
    }
}

fn recorded(sel: &mut Selector<Scripted>) -> io::Result<SelectorKey> {
    let calls = sel.backend.calls.clone();
    sel.register(
        Recorded {
            listener: listener(),
            calls,
        },
        EVENT_READ,
        |_, _, _| Ok(()),
    )
}

#[test]
fn close_and_drop_remove_each_source_from_the_poller_before_closing_it() -> io::Result<()> {
    for close in [true, false] {
        let mut sel = selector();
        let calls = sel.backend.calls.clone();
        let keys = [recorded(&mut sel)?, recorded(&mut sel)?];
        calls.borrow_mut().clear();
        match close {
            true => sel.close()?,
            false => drop(sel),
        }
        let mut expected = Vec::new();
        for key in keys {
            expected.extend([("delete", key.fd), ("close", key.fd)]);
        }
        assert_eq!(*calls.borrow(), expected, "close: {close}");
    }
    Ok(())
}

#[test]
fn close_returns_the_first_poller_error_and_closes_everything() -> io::Result<()> {
    let mut sel = selector();
    let calls = sel.backend.calls.clone();
    let keys = [recorded(&mut sel)?, recorded(&mut sel)?];
    sel.backend.refuse_delete = true;
    let err = sel.close().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        err.to_string()
            .contains(&format!("close: fd {}", keys[0].fd)),
        "not the first error: {err}"
    );
    let closed = calls
        .borrow()
        .iter()
        .filter(|(op, _)| *op == "close")
        .count();
    assert_eq!(closed, 2, "a source was left open");
    Ok(())
}

#[test]
fn failed_os_modify_unregisters_and_closes() -> io::Result<()> {
    struct DropFlag(std::rc::Rc<std::cell::Cell<bool>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let mut sel = selector();
    let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let key = sel.register(listener(), EVENT_READ, move |_, _, _| {
        let _ = &flag;
        Ok(())
    })?;
    sel.backend.refuse_modify = true;
    let err = sel.modify(&key, EVENT_WRITE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        err.to_string().contains(&format!("modify: fd {}", key.fd)),
        "{err}"
    );
    assert!(sel.is_empty(), "the registration survived a failed modify");
    assert!(dropped.get(), "its source and callback were not dropped");
    Ok(())
}
