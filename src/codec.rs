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
///     type Item = u32;
///     type Frame = u32;
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
    /// A decoded frame.
    type Item;
    /// What [`encode`](Codec::encode) takes (often `[u8]`).
    type Frame: ?Sized;

    /// Decodes the first complete frame of `buf`, returning it and the number of bytes it took.
    ///
    /// `Ok(None)` means "not complete yet": the same bytes, and more, come again later.
    ///
    /// # Errors
    ///
    /// A protocol error (kind `InvalidData`), such as a frame over the codec's size limit. The
    /// connection is then closed.
    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Self::Item, usize)>>;

    /// Appends the encoding of `frame` to `out`.
    ///
    /// # Errors
    ///
    /// If `frame` cannot be encoded (for example, over the size limit).
    fn encode(&mut self, frame: &Self::Frame, out: &mut Vec<u8>) -> io::Result<()>;
}

fn too_long(what: &str, len: usize, max: usize) -> io::Error {
    let msg = format!("protocol error: {what} of {len} bytes exceeds the limit of {max}");
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// No framing: every read yields the bytes received, as they came.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bytes;

impl Codec for Bytes {
    type Item = Vec<u8>;
    type Frame = [u8];

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        Ok((!buf.is_empty()).then(|| (buf.to_vec(), buf.len())))
    }

    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// Lines ended by `\n` (a `\r` before it is kept), at most `max_len` bytes each, newline
/// excluded. Items are the lines without their `\n`; `encode` appends one.
///
/// A line longer than `max_len` is a protocol error as soon as that many bytes arrive without a
/// newline: memory stays bounded by the limit.
#[derive(Clone, Debug)]
pub struct LineCodec {
    max_len: usize,
    /// How far the current partial line was already searched for `\n`.
    scanned: usize,
}

impl LineCodec {
    /// A line codec refusing lines longer than `max_len` bytes.
    pub fn new(max_len: usize) -> LineCodec {
        LineCodec {
            max_len,
            scanned: 0,
        }
    }
}

impl Codec for LineCodec {
    type Item = Vec<u8>;
    type Frame = [u8];

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        // Search only the bytes not searched yet: a long line arriving in small pieces costs
        // O(length), not O(length²).
        let start = self.scanned.min(buf.len());
        let limit = buf.len().min(self.max_len + 1);
        match buf[start..limit].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = start + i;
                self.scanned = 0;
                Ok(Some((buf[..end].to_vec(), end + 1)))
            }
            None if buf.len() > self.max_len => Err(too_long("line", buf.len(), self.max_len)),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }

    fn encode(&mut self, line: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if line.len() > self.max_len {
            return Err(too_long("line", line.len(), self.max_len));
        }
        out.extend_from_slice(line);
        out.push(b'\n');
        Ok(())
    }
}

/// Frames prefixed with their length as a big-endian `u32`, at most `max_len` bytes each.
///
/// A header announcing more than `max_len` is a protocol error at once, before any of the
/// frame is buffered.
#[derive(Clone, Copy, Debug)]
pub struct LengthPrefixed {
    max_len: usize,
}

impl LengthPrefixed {
    /// A codec refusing frames longer than `max_len` bytes (at most `u32::MAX`).
    pub fn new(max_len: usize) -> LengthPrefixed {
        LengthPrefixed {
            max_len: max_len.min(u32::MAX as usize),
        }
    }
}

impl Codec for LengthPrefixed {
    type Item = Vec<u8>;
    type Frame = [u8];

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
        let Some(header) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*header) as usize;
        if len > self.max_len {
            return Err(too_long("frame", len, self.max_len));
        }
        Ok(buf.get(4..4 + len).map(|frame| (frame.to_vec(), 4 + len)))
    }

    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if frame.len() > self.max_len {
            return Err(too_long("frame", frame.len(), self.max_len));
        }
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to `codec` cut at every split point pattern given by `chunk`, as a
    /// connection would (appending to a buffer, decoding all complete frames after each piece).
    fn decode_in_pieces<C: Codec>(codec: &mut C, input: &[u8], chunk: usize) -> Vec<C::Item> {
        let (mut buf, mut frames) = (Vec::new(), Vec::new());
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some((frame, used)) = codec.decode(&buf).expect("valid input") {
                frames.push(frame);
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty(), "bytes left over");
        frames
    }

    fn encoded<C: Codec<Frame = [u8]>>(codec: &mut C, frames: &[&[u8]]) -> Vec<u8> {
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
            Some((b"12345678".to_vec(), 9))
        );
        assert!(LineCodec::new(2).encode(b"abc", &mut Vec::new()).is_err());
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
    fn bytes_pass_through() {
        assert_eq!(Bytes.decode(b"abc").unwrap(), Some((b"abc".to_vec(), 3)));
        assert_eq!(Bytes.decode(b"").unwrap(), None);
    }
}
