//! Framing: turning a byte stream into messages and back.
//!
//! TCP delivers bytes, not messages: one `send` may arrive in pieces, several may arrive in one
//! `recv` ("sticky packets", 粘包). Sleeping between sends, or ending messages with an in-band
//! marker that may also occur in the data, only hides the problem. A codec solves it: it cuts
//! complete frames off the front of the received bytes, whatever pieces they arrived in, and
//! refuses a frame larger than its limit instead of buffering without bound.
//!
//! [`Connection`](crate::Connection) drives a codec; the three here cover most protocols, and
//! [`Codec`] is small enough to implement for others.

use std::io;

/// Cuts frames from received bytes, and writes frames to send.
///
/// # Examples
///
/// A codec for fixed 4-byte big-endian counters:
///
/// ```
/// use selectloop::Codec;
/// use std::io;
///
/// struct Counter;
///
/// impl Codec for Counter {
///     type Incoming<'a> = u32; // owned: it borrows nothing of the bytes
///     type Outgoing = u32;
///     fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(u32, usize)>> {
///         Ok(buf.first_chunk::<4>().map(|b| (u32::from_be_bytes(*b), 4)))
///     }
///     fn encode(&mut self, frame: &u32, out: &mut Vec<u8>) -> io::Result<()> {
///         out.extend_from_slice(&frame.to_be_bytes());
///         Ok(())
///     }
/// }
///
/// let mut out = Vec::new();
/// Counter.encode(&7, &mut out)?;
/// assert_eq!(Counter.decode(&out)?, Some((7, 4)));
/// assert_eq!(Counter.decode(&out[..3])?, None); // incomplete: wait for more
/// # std::io::Result::Ok(())
/// ```
pub trait Codec: 'static {
    /// A frame received, as [`decode`](Codec::decode) makes it: what
    /// [`ConnEvent::Frame`](crate::ConnEvent::Frame) carries. It may borrow the received
    /// bytes (`&'a [u8]`, as [`Bytes`], [`LineCodec`] and [`LengthPrefixed`] do: the
    /// [`Connection`](crate::Connection) lends the frame from its read buffer, without a copy
    /// or an allocation), or own what it decoded (`type Incoming<'a> = Request`, ignoring `'a`).
    type Incoming<'a>;
    /// A frame to send, as [`encode`](Codec::encode) takes it (often `[u8]`): what
    /// [`Connection::send_frame`](crate::Connection::send_frame) takes.
    type Outgoing: ?Sized;

    /// Decodes the first complete frame of `buf`, returning it and the number of bytes it took.
    ///
    /// `Ok(None)` means "not complete yet": the same bytes, and more, come again later.
    /// [`Connection`](crate::Connection) keeps that promise (after `Some`, it drops the `used`
    /// bytes and passes the rest, with whatever arrived since), so a codec may keep state
    /// between calls, as [`LineCodec`] remembers how far it already searched.
    ///
    /// # Errors
    ///
    /// A protocol error (kind `InvalidData`), such as a frame over the codec's size limit. The
    /// connection is then closed.
    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(Self::Incoming<'a>, usize)>>;

    /// Decodes what is left at end of file: `buf` holds the bytes received after the last
    /// complete frame, and is never empty. Called again while it returns frames and bytes
    /// remain.
    ///
    /// The codec decides what an unterminated last frame means. The default, for formats
    /// whose frames say where they end, is [`decode`](Codec::decode)'s answer, and an error of
    /// kind `UnexpectedEof` where that is "not complete yet": the peer stopped in the middle
    /// of a frame ([`LengthPrefixed`] keeps it). [`LineCodec`] delivers a last line that has
    /// no newline, as Python's `readline()` does. Returning `Ok(None)` drops the bytes
    /// (logged at `debug`).
    ///
    /// # Errors
    ///
    /// As for `decode`; `UnexpectedEof` for a truncated frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{Codec, LengthPrefixed, LineCodec};
    /// use std::io::ErrorKind;
    ///
    /// assert_eq!(LineCodec::new(64).decode_eof(b"abc")?, Some((&b"abc"[..], 3)));
    /// let err = LengthPrefixed::new(64).decode_eof(&[0, 0, 0, 9, b'x']).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    /// # std::io::Result::Ok(())
    /// ```
    fn decode_eof<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(Self::Incoming<'a>, usize)>> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                let len = buf.len();
                let msg = format!(
                    "protocol error: end of file in the middle of a frame ({len} bytes of it \
                     received)"
                );
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg))
            }
        }
    }

    /// Appends the encoding of `frame` to `out`.
    ///
    /// # Errors
    ///
    /// If `frame` cannot be encoded (for example, over the size limit).
    fn encode(&mut self, frame: &Self::Outgoing, out: &mut Vec<u8>) -> io::Result<()>;
}

fn too_long(what: &str, len: usize, max: usize) -> io::Error {
    let msg = format!("protocol error: {what} of {len} bytes exceeds the limit of {max}");
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A received line with no newline within `max` bytes: its length is not known yet.
fn line_too_long(max: usize) -> io::Error {
    let msg = format!("protocol error: line with no newline exceeds the limit of {max} bytes");
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// No framing: every read yields the bytes received, as they came.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bytes;

impl Codec for Bytes {
    type Incoming<'a> = &'a [u8];
    type Outgoing = [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        Ok((!buf.is_empty()).then_some((buf, buf.len())))
    }

    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// Lines ended by `\n` (a `\r` before it is kept), at most `max_len` bytes each, newline
/// excluded. Frames are the lines without their `\n`; `encode` appends one, and refuses a line
/// over the limit (kind `InvalidData`) or with a `\n` of its own (kind `InvalidInput`: the peer
/// would read two lines), appending nothing.
///
/// A line longer than `max_len` is a protocol error as soon as that many bytes arrive without a
/// newline: memory stays bounded by the limit. The error (kind `InvalidData`) is the same
/// whatever pieces the line arrived in. At end of file, a last line without a newline is
/// delivered as it is (see [`Codec::decode_eof`]).
///
/// # Examples
///
/// ```
/// use selectloop::{Codec, LineCodec};
///
/// let mut codec = LineCodec::new(5);
/// assert_eq!(codec.decode(b"hello\nrest")?, Some((&b"hello"[..], 6)));
/// assert_eq!(codec.decode(b"rest")?, None); // no newline yet: wait for more
/// assert!(codec.decode(b"toolong").is_err()); // 6 bytes and no newline: over the limit
///
/// let mut unlimited = LineCodec::new(usize::MAX); // no limit: only memory bounds a line
/// assert_eq!(unlimited.decode(&[b'x'; 100_000])?, None);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Debug)]
pub struct LineCodec {
    max_len: usize,
    /// How far the current partial line was already searched for `\n`.
    scanned: usize,
}

impl LineCodec {
    /// A line codec refusing lines longer than `max_len` bytes (the newline not counted).
    ///
    /// Every value is valid: `0` accepts empty lines only, and `usize::MAX` means no limit
    /// (a line is then bounded only by memory: use it only with trusted peers).
    pub fn new(max_len: usize) -> LineCodec {
        LineCodec {
            max_len,
            scanned: 0,
        }
    }

    /// The longest line accepted, in bytes (`usize::MAX`: no limit).
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Codec for LineCodec {
    type Incoming<'a> = &'a [u8];
    type Outgoing = [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        // Search only the bytes not searched yet: a long line arriving in small pieces costs
        // O(length), not O(length²).
        // The newline of a line of `max_len` bytes is byte `max_len`: search up to it, and no
        // further (saturating: `usize::MAX` means no limit, and must not overflow).
        let limit = buf.len().min(self.max_len.saturating_add(1));
        let start = self.scanned.min(limit);
        match buf[start..limit].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = start + i;
                self.scanned = 0;
                Ok(Some((&buf[..end], end + 1)))
            }
            // Not `buf.len()` in the message: the error must not depend on how much arrived.
            None if buf.len() > self.max_len => Err(line_too_long(self.max_len)),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    /// The last line, without a newline, is a line (as Python's `readline()` returns it);
    /// one over the limit is refused as `decode` refuses it.
    fn decode_eof<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None => {
                self.scanned = 0;
                Ok(Some((buf, buf.len())))
            }
        }
    }

    fn encode(&mut self, line: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if line.len() > self.max_len {
            return Err(too_long("line", line.len(), self.max_len));
        }
        if let Some(at) = line.iter().position(|&b| b == b'\n') {
            // The peer would decode two lines: refuse rather than send something else.
            let msg = format!("LineCodec::encode: the line has a newline at byte {at}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        Ok(())
    }
}

/// Frames prefixed with their length as a big-endian `u32`, at most `max_len` bytes each.
///
/// A header announcing more than `max_len` is a protocol error (kind `InvalidData`) at once,
/// before any of the frame is buffered. End of file in the middle of a frame (or of its header)
/// is an error of kind `UnexpectedEof` (see [`Codec::decode_eof`]).
///
/// # Examples
///
/// ```
/// use selectloop::{Codec, LengthPrefixed};
///
/// let mut codec = LengthPrefixed::new(16);
/// let mut wire = Vec::new();
/// codec.encode(b"hi", &mut wire)?;
/// assert_eq!(wire, [0, 0, 0, 2, b'h', b'i']);
/// assert_eq!(codec.decode(&wire)?, Some((&b"hi"[..], 6)));
/// assert_eq!(codec.decode(&wire[..5])?, None); // incomplete: wait for more
/// assert!(codec.decode(&17u32.to_be_bytes()).is_err()); // announces 17 bytes: refused
/// assert_eq!(LengthPrefixed::new(usize::MAX).max_len(), u32::MAX as usize);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LengthPrefixed {
    max_len: usize,
}

impl LengthPrefixed {
    /// A codec refusing frames longer than `max_len` bytes.
    ///
    /// Every value is valid. `0` accepts empty frames only. Values above what a frame can
    /// have are lowered to it: `u32::MAX` (the largest length a header can announce), and on
    /// targets whose `usize` is 32 bits, `usize::MAX - 4` (so that a frame and its header fit
    /// in memory). So `usize::MAX` means "no limit but the format's".
    pub fn new(max_len: usize) -> LengthPrefixed {
        let format_max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        LengthPrefixed {
            max_len: max_len.min(format_max).min(usize::MAX - 4),
        }
    }

    /// The largest frame accepted, in bytes, after the lowering described in
    /// [`new`](Self::new).
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Codec for LengthPrefixed {
    type Incoming<'a> = &'a [u8];
    type Outgoing = [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        let Some(header) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        // On a 16-bit target a header may announce more than `usize` holds: over any limit.
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        // `max_len <= usize::MAX - 4` (see `new`), so `4 + len` cannot overflow past here.
        match len.checked_add(4) {
            Some(end) if len <= self.max_len => Ok(buf.get(4..end).map(|frame| (frame, end))),
            _ => Err(too_long("frame", len, self.max_len)),
        }
    }

    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let header = match u32::try_from(frame.len()) {
            Ok(len) if frame.len() <= self.max_len => len.to_be_bytes(),
            _ => return Err(too_long("frame", frame.len(), self.max_len)),
        };
        out.extend_from_slice(&header);
        out.extend_from_slice(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to `codec` cut at every split point pattern given by `chunk`, as a
    /// connection would (appending to a buffer, decoding all complete frames after each piece).
    fn decode_in_pieces<C>(codec: &mut C, input: &[u8], chunk: usize) -> Vec<Vec<u8>>
    where
        C: for<'a> Codec<Incoming<'a> = &'a [u8]>,
    {
        let (mut buf, mut frames) = (Vec::new(), Vec::new());
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some((frame, used)) = codec.decode(&buf).expect("valid input") {
                frames.push(frame.to_vec());
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty(), "bytes left over");
        frames
    }

    fn encoded<C: Codec<Outgoing = [u8]>>(codec: &mut C, frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            codec.encode(frame, &mut out).unwrap();
        }
        out
    }

    const FRAMES: &[&[u8]] = &[b"hello", b"", b"with\rcarriage", b"x", b"last one, longer"];

    #[test]
    fn lines_decode_identically_whatever_the_pieces() {
        let input = encoded(&mut LineCodec::new(64), FRAMES);
        for chunk in 1..=input.len() {
            let frames = decode_in_pieces(&mut LineCodec::new(64), &input, chunk);
            assert_eq!(frames, FRAMES, "pieces of {chunk} bytes");
        }
    }

    #[test]
    fn length_prefixed_decode_identically_whatever_the_pieces() {
        let input = encoded(&mut LengthPrefixed::new(64), FRAMES);
        for chunk in 1..=input.len() {
            let frames = decode_in_pieces(&mut LengthPrefixed::new(64), &input, chunk);
            assert_eq!(frames, FRAMES, "pieces of {chunk} bytes");
        }
    }

    #[test]
    fn oversize_line_is_refused_once_the_limit_is_passed() {
        let mut codec = LineCodec::new(8);
        assert_eq!(codec.decode(b"12345678").unwrap(), None); // 8 bytes, no newline yet: fine
        let err = codec.decode(b"123456789").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("limit of 8"), "{err}");
        assert_eq!(
            LineCodec::new(8).decode(b"12345678\n").unwrap(),
            Some((&b"12345678"[..], 9))
        );
        assert!(LineCodec::new(2).encode(b"abc", &mut Vec::new()).is_err());
    }

    #[test]
    fn a_line_with_a_newline_is_not_encoded() {
        let mut out = Vec::new();
        let err = LineCodec::new(64)
            .encode(b"two\nlines", &mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("newline at byte 3"), "{err}");
        assert!(out.is_empty());
        LineCodec::new(64).encode(b"a\r", &mut out).unwrap(); // a \r is just a byte
        assert_eq!(out, b"a\r\n");
    }

    #[test]
    fn oversize_frame_is_refused_from_its_header() {
        let mut codec = LengthPrefixed::new(10);
        let err = codec.decode(&11u32.to_be_bytes()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(codec.decode(&10u32.to_be_bytes()).unwrap(), None);
        assert!(codec.encode(&[0; 11], &mut Vec::new()).is_err());
    }

    #[test]
    fn line_limit_of_usize_max_means_no_limit() {
        let mut codec = LineCodec::new(usize::MAX);
        let long = vec![b'x'; 1 << 20];
        let mut input = long.clone();
        input.push(b'\n');
        // Whole, then in pieces (which exercises the `scanned` cursor near the limit).
        assert_eq!(
            codec.decode(&input).unwrap(),
            Some((&long[..], input.len()))
        );
        assert_eq!(
            decode_in_pieces(&mut codec, &input, 4096),
            [long.as_slice()]
        );
        assert_eq!(codec.decode(&long).unwrap(), None);
        let mut out = Vec::new();
        codec.encode(&long, &mut out).unwrap();
        assert_eq!(out, input);
        assert_eq!(codec.max_len(), usize::MAX);
    }

    #[test]
    fn line_limit_of_zero_accepts_empty_lines_only() {
        let mut codec = LineCodec::new(0);
        assert_eq!(codec.decode(b"\n\n").unwrap(), Some((&b""[..], 1)));
        assert_eq!(codec.decode(b"").unwrap(), None);
        let err = codec.decode(b"a").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("limit of 0"), "{err}");
        let mut out = Vec::new();
        codec.encode(b"", &mut out).unwrap();
        assert_eq!(out, b"\n");
        assert!(codec.encode(b"a", &mut out).is_err());
        assert_eq!(out, b"\n", "a refused line was partly encoded");
    }

    #[test]
    fn oversize_line_error_does_not_depend_on_the_pieces() {
        let whole = LineCodec::new(4).decode(b"1234567890").unwrap_err();
        let mut codec = LineCodec::new(4);
        assert_eq!(codec.decode(b"123").unwrap(), None);
        let pieces = codec.decode(b"12345").unwrap_err();
        assert_eq!(whole.kind(), pieces.kind());
        assert_eq!(whole.to_string(), pieces.to_string());
    }

    #[test]
    fn length_limits_are_lowered_to_what_the_format_can_carry() {
        assert_eq!(LengthPrefixed::new(usize::MAX).max_len(), u32::MAX as usize);
        assert_eq!(LengthPrefixed::new(7).max_len(), 7);
        let mut codec = LengthPrefixed::new(usize::MAX);
        // The largest header: a valid announcement, the frame simply is not there yet.
        assert_eq!(codec.decode(&u32::MAX.to_be_bytes()).unwrap(), None);
        let mut wire = u32::MAX.to_be_bytes().to_vec();
        wire.extend_from_slice(&[0; 100]);
        assert_eq!(codec.decode(&wire).unwrap(), None);
        let mut out = Vec::new();
        codec.encode(b"abc", &mut out).unwrap();
        assert_eq!(codec.decode(&out).unwrap(), Some((&b"abc"[..], 7)));
    }

    #[test]
    fn length_limit_of_zero_accepts_empty_frames_only() {
        let mut codec = LengthPrefixed::new(0);
        assert_eq!(codec.decode(&[0, 0, 0, 0]).unwrap(), Some((&b""[..], 4)));
        let err = codec.decode(&[0, 0, 0, 1, b'x']).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut out = Vec::new();
        assert!(codec.encode(b"x", &mut out).is_err());
        assert!(out.is_empty(), "a refused frame was partly encoded");
        codec.encode(b"", &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0]);
    }

    #[test]
    fn a_last_line_without_newline_is_a_line_at_end_of_file() {
        let mut codec = LineCodec::new(8);
        assert_eq!(codec.decode(b"abc").unwrap(), None); // the cursor moves on...
        assert_eq!(codec.decode_eof(b"abc").unwrap(), Some((&b"abc"[..], 3)));
        // ...and is reset for what follows (a codec may be used again).
        assert_eq!(codec.decode(b"\n").unwrap(), Some((&b""[..], 1)));
        // A complete line comes first, whole; over the limit is refused as by `decode`.
        assert_eq!(codec.decode_eof(b"ab\ncd").unwrap(), Some((&b"ab"[..], 3)));
        let err = LineCodec::new(2).decode_eof(b"abc").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_truncated_frame_is_unexpected_eof() {
        let mut codec = LengthPrefixed::new(16);
        for truncated in [&[0, 0][..], &[0, 0, 0, 3, b'a', b'b'][..]] {
            let err = codec.decode_eof(truncated).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{truncated:?}");
            let len = truncated.len();
            assert!(err.to_string().contains(&format!("({len} bytes")), "{err}");
        }
        // A complete frame is still a frame, and an oversize header still `InvalidData`.
        let whole = [0, 0, 0, 1, b'a', 0];
        assert_eq!(codec.decode_eof(&whole).unwrap(), Some((&b"a"[..], 5)));
        let err = codec.decode_eof(&17u32.to_be_bytes()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn bytes_pass_through() {
        assert_eq!(Bytes.decode(b"abc").unwrap(), Some((&b"abc"[..], 3)));
        assert_eq!(Bytes.decode(b"").unwrap(), None);
    }
}
