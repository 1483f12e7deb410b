//! Trigger modes: edge-triggered and oneshot registrations, on the backends that support them,
//! and a clear refusal from those that do not.

mod common;

use common::{select_some, selector, socketpair};
use selectloop::{Backend, Mode, EVENT_READ};
use std::io::{self, ErrorKind, Write};
use std::time::Duration;

/// Long enough for a pending event to show up, if there were one.
const QUIET: Duration = Duration::from_millis(50);

// Edge: one event per change from not ready to ready, even with the data left unread.
#[cfg(not(windows))]
fn edge_reports_each_change_once<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register_with_mode(a, EVENT_READ, Mode::Edge, |_, _, _| Ok(()))?;
    assert_eq!(key.mode(), Mode::Edge);
    for round in 0..3 {
        peer.write_all(b"x")?; // new data: a change
        assert_eq!(
            select_some(&mut sel, "an edge")?,
            [(key, EVENT_READ)],
            "round {round}"
        );
        let again = sel.select(Some(QUIET))?;
        assert!(
            again.is_empty(),
            "round {round}: reported again without a change: {again:?}"
        );
    }
    Ok(())
}

// Edge: a callback that drains until WouldBlock sees every byte, one call per write burst.
#[cfg(not(windows))]
fn edge_with_draining_callback<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let out = got.clone();
    sel.register_with_mode(a, EVENT_READ, Mode::Edge, move |_, s, _| {
        use std::io::Read;
        let mut buf = [0u8; 3]; // smaller than a burst: it must loop
        loop {
            match s.read(&mut buf) {
                Ok(n) => out.borrow_mut().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })?;
    peer.write_all(b"hello, edge")?;
    common::run_until(&mut sel, "the whole burst", || got.borrow().len() == 11)?;
    assert_eq!(&*got.borrow(), b"hello, edge");
    Ok(())
}

// Oneshot: one event, then nothing until modify() re-arms it.
fn oneshot_needs_rearming<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register_with_mode(a, EVENT_READ, Mode::Oneshot, |_, _, _| Ok(()))?;
    peer.write_all(b"x")?;
    assert_eq!(select_some(&mut sel, "the one shot")?, [(key, EVENT_READ)]);
    assert!(
        sel.select(Some(QUIET))?.is_empty(),
        "reported while disarmed"
    );
    peer.write_all(b"y")?;
    assert!(sel.select(Some(QUIET))?.is_empty(), "new data re-armed it");
    let rearmed = sel.modify(&key, EVENT_READ)?; // same events: still re-arms
    assert_eq!(rearmed.mode(), Mode::Oneshot);
    assert_eq!(
        select_some(&mut sel, "the re-armed shot")?,
        [(key, EVENT_READ)]
    );
    assert!(
        sel.select(Some(QUIET))?.is_empty(),
        "reported twice after one re-arm"
    );
    Ok(())
}

// Level-only backends refuse the other modes with Unsupported and register nothing.
fn level_only_refuses_other_modes<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    for mode in [Mode::Edge, Mode::Oneshot] {
        let (a, _peer) = socketpair()?;
        let err = sel
            .register_with_mode(a, EVENT_READ, mode, |_, _, _| Ok(()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{mode:?}: {err}");
        assert!(err.to_string().contains("level-triggered only"), "{err}");
        assert!(sel.is_empty());
    }
    let (a, _peer) = socketpair()?;
    sel.register_with_mode(a, EVENT_READ, Mode::Level, |_, _, _| Ok(()))?;
    Ok(())
}

// polling's IOCP backend (Windows) has no edge mode: refused with Unsupported.
#[cfg(windows)]
fn edge_is_unsupported<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let err = sel
        .register_with_mode(a, EVENT_READ, Mode::Edge, |_, _, _| Ok(()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(sel.is_empty());
    Ok(())
}

macro_rules! instantiate {
    ($($(#[$attr:meta])* $module:ident = $backend:ty: [$($test:ident),*];)*) => {
        $(
            $(#[$attr])*
            mod $module {
                $(
                    #[test]
                    fn $test() -> std::io::Result<()> {
                        super::$test::<$backend>()
                    }
                )*
            }
        )*
    };
}

instantiate! {
    #[cfg(not(windows))]
    default_selector = selectloop::PollingBackend:
        [edge_reports_each_change_once, edge_with_draining_callback, oneshot_needs_rearming];
    #[cfg(windows)]
    default_selector = selectloop::PollingBackend: [oneshot_needs_rearming, edge_is_unsupported];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    epoll_selector = selectloop::EpollBackend:
        [edge_reports_each_change_once, edge_with_draining_callback, oneshot_needs_rearming];
    poll_selector = selectloop::PollBackend: [level_only_refuses_other_modes];
    select_selector = selectloop::SelectBackend: [level_only_refuses_other_modes];
}
