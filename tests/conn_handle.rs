//! A connection as the program holds it: `Send`, its `Debug` output, its key from `register`
//! to `Closed` (`conn.key()`), and `ConnKey`, which reaches a connection from outside its
//! callback — over real socket pairs.

mod common;

use common::conn::{pattern, Events_, Seen};
use common::{run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, ConnKey, Connection, DefaultSelector, Limits, LineCodec, SelectorKey,
    EVENT_READ,
};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// `Connection` keeps `Send` (its timer lives in its registration, not in it): a program may
/// build one on a thread and register it on another's selector.
#[test]
fn a_connection_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Connection<Stream, LineCodec>>();
    is_send::<Connection<std::net::TcpStream, Bytes>>();
}

#[test]
fn debug_shows_the_buffers_counters_and_settings() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let shown = Rc::new(RefCell::new(Vec::new()));
    let log = shown.clone();
    Connection::new(a, LineCodec::new(4096)).register(&mut sel, move |_sel, conn, event| {
        if let ConnEvent::Frame(line) = event {
            if line == b"one" {
                assert_eq!(conn.buffered(), 3, "\"two\" is undecoded during \"one\"");
            }
            log.borrow_mut().push(format!("{conn:?}"));
        }
        Ok(())
    })?;
    peer.write_all(b"one\ntwo")?; // one read: "two" is still undecoded during "one"'s event
    run_until(&mut sel, "the first line", || !shown.borrow().is_empty())?;
    let shown = shown.borrow()[0].clone();
    for field in [
        "Connection {",
        "buffered_in: 3,",
        "queued_out: 0,",
        "received: 7,",
        "sent: 0,",
        "paused: false,",
        "state: Open,",
        "limits: Limits {",
        "timeouts: Timeouts {",
    ] {
        assert!(shown.contains(field), "{field:?} not in {shown}");
    }

    // Part of a large send written at once: what is left is shown queued.
    let (a, _peer) = socketpair()?;
    let key = Connection::new(a, Bytes).register(&mut sel, |_, _, _| Ok(()))?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&pattern(32 << 20)))??;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let conn: &mut Connection<Stream, Bytes> = sel.source_mut(&key).expect("open");
        let (queued, shown) = (conn.queued(), format!("{conn:?}"));
        if queued < 32 << 20 {
            assert!(queued > 0, "the socket took all 32 MiB");
            assert!(
                shown.contains(&format!("queued_out: {queued},")),
                "{queued} queued, shown: {shown}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing was written");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    Ok(())
}

// --- Keys ---------------------------------------------------------------------------------------

/// `conn.key()` is the key `register` returned: in every callback, still at `Closed` (when
/// the registration is gone), and the new key once the connection is registered elsewhere;
/// `NotFound` before `register`.
#[test]
fn a_connection_knows_its_key_from_register_to_closed() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let conn = Connection::new(a, LineCodec::new(64));
    assert_eq!(conn.key().unwrap_err().kind(), ErrorKind::NotFound);
    type Seen = Rc<RefCell<Vec<(&'static str, ConnKey<Stream, LineCodec>, bool)>>>;
    let keys: Seen = Rc::default();
    // Records each event with `conn.key()` and whether that key was registered then.
    let recorder = |keys: &Seen| {
        let k = keys.clone();
        move |sel: &mut DefaultSelector,
              conn: &mut Connection<Stream, LineCodec>,
              event: ConnEvent<&[u8]>| {
            let what = match event {
                ConnEvent::Frame(_) => "frame",
                ConnEvent::Closed(_) => "closed",
                _ => "other",
            };
            let key = conn.key()?;
            k.borrow_mut().push((what, key, sel.get_key(&key).is_ok()));
            Ok(())
        }
    };
    let key = conn.register(&mut sel, recorder(&keys))?;
    let known = key.with(&mut sel, |conn| conn.key())??;
    assert_eq!(known, key, "known from register on, before any callback");
    peer.write_all(b"one\n")?;
    run_until(&mut sel, "the first line", || keys.borrow().len() == 1)?;
    assert_eq!(keys.borrow()[0], ("frame", key, true));
    let conn: Connection<Stream, LineCodec> = sel.detach(&key)?;
    assert_eq!(conn.key()?, key, "the key of its last registration");

    let mut second = DefaultSelector::new()?;
    let (other, _other_peer) = socketpair()?;
    let _taken = second.register(other, EVENT_READ, |_, _, _| Ok(()))?; // slot 0 here
    let moved = conn.register(&mut second, recorder(&keys))?;
    assert_ne!(moved, key, "a new registration, a new key");
    peer.write_all(b"two\n")?;
    drop(peer);
    run_until(&mut second, "the connection to close", || {
        keys.borrow()
            .last()
            .is_some_and(|(what, ..)| *what == "closed")
    })?;
    assert_eq!(
        keys.borrow()[1..],
        [
            ("frame", moved, true),
            ("other", moved, true), // PeerClosed
            ("closed", moved, false)
        ]
    );
    Ok(())
}

/// A `ConnKey` reaches its connection from another's callback: `send` and `send_frame` queue
/// and write at once (true); they answer false, and leave the caller alone, when the recipient
/// is closing, gone, refuses the frame, or is the caller itself; a send that takes the
/// recipient over its hard cap ends the recipient (its own `Closed`), not the sender. Keys are
/// `FileObj`s and hash by registration.
#[test]
fn a_conn_key_reaches_its_connection_and_keeps_its_errors() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let limits = Limits {
        hard_cap: 64 << 10,
        soft_cap: 64 << 10,
        high_water: 16 << 10,
        low_water: 4 << 10,
        ..Limits::default()
    };
    let mut recipients = Vec::new();
    let mut peers = Vec::new();
    let mut logs = Vec::new();
    for _ in 0..3 {
        let (a, peer) = socketpair()?;
        let log: Events_ = Rc::default();
        let l = log.clone();
        let conn = Connection::new(a, LineCodec::new(8)).with_limits(limits)?;
        recipients.push(conn.register(&mut sel, move |_, _, event| {
            l.borrow_mut().push(Seen::from(event));
            Ok(())
        })?);
        peers.push(peer);
        logs.push(log);
    }
    let [ok, closing, capped] = [recipients[0], recipients[1], recipients[2]];
    assert_eq!(sel.get_key(&ok)?, ok.key(), "a ConnKey is a file object");
    use selectloop::FileObj;
    assert_eq!(ok.fileno(), ok.key().fd());
    assert_eq!(ok.registration(), ok.key().registration());
    assert_eq!(SelectorKey::from(ok), ok.key());
    assert_eq!(format!("{ok:?}"), format!("ConnKey({:?})", ok.key()));
    let set: std::collections::HashSet<_> = recipients.iter().copied().collect();
    assert!(set.contains(&ok) && set.len() == 3);
    use std::hash::BuildHasher;
    let state = std::hash::RandomState::new();
    assert_ne!(
        state.hash_one(ok),
        state.hash_one(closing),
        "keys hash by registration"
    );
    assert_eq!(
        state.hash_one(ok),
        state.hash_one(ok.key()),
        "as their SelectorKey does"
    );
    assert!(closing.with(&mut sel, |conn| conn.close()).is_ok());

    let (s, mut sender_peer) = socketpair()?;
    let sender_log: Events_ = Rc::default();
    let l = sender_log.clone();
    let answers: Rc<RefCell<Vec<bool>>> = Rc::default();
    let a = answers.clone();
    let sender =
        Connection::new(s, LineCodec::new(8)).register(&mut sel, move |sel, conn, event| {
            if let ConnEvent::Frame(_) = &event {
                let me = conn.key()?;
                a.borrow_mut().extend([
                    ok.send(sel, b"raw\n"),
                    ok.send_frame(sel, b"framed"),
                    ok.send_frame(sel, b"far too long for 8"), // the codec refuses it
                    closing.send(sel, b"late\n"),
                    me.send(sel, b"to myself\n"), // its own callback: conn.send is for that
                ]);
                // Queued each time, until one send leaves more than the hard cap queued (how
                // much the socket takes first depends on the platform): that one is queued
                // too, and ends the recipient; the next is refused.
                let chunk = vec![b'x'; 256 << 10];
                let queued = (0..256).take_while(|_| capped.send(sel, &chunk)).count();
                a.borrow_mut().push(queued > 0 && queued < 256);
                a.borrow_mut().push(capped.send(sel, b"after\n"));
            }
            l.borrow_mut().push(Seen::from(event));
            Ok(())
        })?;
    sender_peer.write_all(b"go\n")?;
    run_until(&mut sel, "the capped recipient to close", || {
        logs[2]
            .borrow()
            .contains(&Seen::Closed(Some(ErrorKind::OutOfMemory)))
    })?;
    assert_eq!(
        *answers.borrow(),
        [true, true, false, false, false, true, false]
    );
    assert_eq!(
        *sender_log.borrow(),
        [Seen::Frame(b"go".to_vec())],
        "the sender goes on"
    );
    assert!(sel.get_key(&sender).is_ok());
    let mut got = [0u8; 11];
    peers[0].set_read_timeout(Some(TIMEOUT))?;
    peers[0].read_exact(&mut got)?;
    assert_eq!(&got, b"raw\nframed\n");
    assert_eq!(*logs[0].borrow(), []);
    Ok(())
}
