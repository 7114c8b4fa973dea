//! Length-prefixed frames on plane streams: a 4-byte big-endian length, then that many bytes.
//! A frame over the limit, or a stream that ends inside a frame, is an error that names what
//! happened; the caller closes that connection and keeps serving everyone else.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame on a plane stream, bytes: the largest plane message (one bound, in `protocol`).
pub const FRAME_MAX: usize = hashmesh_protocol::plane::PLANE_MSG_BYTES_MAX;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is over the limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced (or 4 for the length itself).
        want: usize,
    },
    /// The transport failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Write one frame.
///
/// # Errors
/// If `body` is over [`FRAME_MAX`] or the stream fails.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > FRAME_MAX {
        return Err(FrameError::TooLarge { len: body.len(), max: FRAME_MAX });
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    push_frame(&mut buf, body)?;
    w.write_all(&buf).await?;
    Ok(())
}

/// Append one frame to `buf` (to write several frames with one stream write).
///
/// # Errors
/// If `body` is over [`FRAME_MAX`].
pub fn push_frame(buf: &mut Vec<u8>, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > FRAME_MAX {
        return Err(FrameError::TooLarge { len: body.len(), max: FRAME_MAX });
    }
    let len = u32::try_from(body.len()).expect("FRAME_MAX fits u32");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    Ok(())
}

async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Read one frame of at most `max` bytes; `Ok(None)` when the stream ends cleanly between frames.
///
/// # Errors
/// [`FrameError::TooLarge`] before reading the body, [`FrameError::Truncated`] when the stream
/// ends inside a frame, [`FrameError::Io`] on transport errors.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match fill(r, &mut len).await? {
        0 => return Ok(None),
        4 => {}
        got => return Err(FrameError::Truncated { got, want: 4 }),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    let got = fill(r, &mut body).await?;
    if got < len {
        return Err(FrameError::Truncated { got, want: len });
    }
    Ok(Some(body))
}

/// Reads frames from one stream and keeps a partial frame between calls, so that
/// [`FrameReader::next`] is cancel-safe: it may lose a race in `tokio::select!` without losing
/// bytes (a dropped [`read_frame`] future loses what it had read, and the stream desynchronises).
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    /// Bytes received and not yet returned (never holds anything else, even across a
    /// cancelled call).
    buf: Vec<u8>,
    /// Where each read lands before it is appended to `buf`.
    scratch: Vec<u8>,
    max: usize,
}

/// Take the first whole frame of at most `max` bytes off the front of `buf`; `None` while it is
/// incomplete (nothing taken).
///
/// # Errors
/// [`FrameError::TooLarge`] as soon as the length is known.
pub fn take_frame(buf: &mut Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let body = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(body))
}

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 16 * 1024;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames of at most `max` bytes from `inner`.
    pub fn new(inner: R, max: usize) -> Self {
        Self { inner, buf: Vec::new(), scratch: vec![0; READ_CHUNK], max }
    }

    /// The next frame; `Ok(None)` when the stream ends cleanly between frames. Cancel-safe.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as the length is known, [`FrameError::Truncated`] when
    /// the stream ends inside a frame, [`FrameError::Io`] on transport errors.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(body) = take_frame(&mut self.buf, self.max)? {
                return Ok(Some(body));
            }
            // `read` is cancel-safe: if this future is dropped, nothing was consumed, and `buf`
            // is only extended once the read completed.
            let n = self.inner.read(&mut self.scratch).await?;
            self.buf.extend_from_slice(&self.scratch[..n]);
            if n == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    got if got < 4 => Err(FrameError::Truncated { got, want: 4 }),
                    got => Err(FrameError::Truncated {
                        got: got - 4,
                        want: u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize,
                    }),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn frames_round_trip_and_bad_streams_say_why() {
        rt().block_on(async {
            let (mut a, mut b) = tokio::io::duplex(1 << 20);
            write_frame(&mut a, b"one").await.unwrap();
            write_frame(&mut a, b"").await.unwrap();
            drop(a);
            assert_eq!(read_frame(&mut b, 16).await.unwrap().as_deref(), Some(b"one".as_slice()));
            assert_eq!(read_frame(&mut b, 16).await.unwrap().as_deref(), Some(b"".as_slice()));
            assert!(read_frame(&mut b, 16).await.unwrap().is_none(), "clean end between frames");

            let (mut a, mut b) = tokio::io::duplex(1 << 20);
            a.write_all(&1000u32.to_be_bytes()).await.unwrap();
            let err = read_frame(&mut b, 16).await.unwrap_err();
            assert!(matches!(err, FrameError::TooLarge { len: 1000, max: 16 }), "{err}");

            let (mut a, mut b) = tokio::io::duplex(1 << 20);
            a.write_all(&10u32.to_be_bytes()).await.unwrap();
            a.write_all(b"abc").await.unwrap();
            drop(a);
            let err = read_frame(&mut b, 16).await.unwrap_err();
            assert!(matches!(err, FrameError::Truncated { got: 3, want: 10 }), "{err}");

            let (mut a, mut b) = tokio::io::duplex(1 << 20);
            a.write_all(&[0, 0]).await.unwrap();
            drop(a);
            assert!(matches!(read_frame(&mut b, 16).await.unwrap_err(), FrameError::Truncated { got: 2, want: 4 }));

            // The reader keeps partial frames across cancelled calls.
            let (mut a, b) = tokio::io::duplex(1 << 20);
            let mut r = FrameReader::new(b, 16);
            a.write_all(&3u32.to_be_bytes()).await.unwrap();
            a.write_all(b"o").await.unwrap();
            let cancelled = tokio::time::timeout(std::time::Duration::from_millis(20), r.next()).await;
            assert!(cancelled.is_err(), "no whole frame yet");
            a.write_all(b"ne").await.unwrap();
            write_frame(&mut a, b"two").await.unwrap();
            assert_eq!(r.next().await.unwrap().as_deref(), Some(b"one".as_slice()));
            assert_eq!(r.next().await.unwrap().as_deref(), Some(b"two".as_slice()));
            a.write_all(&100u32.to_be_bytes()).await.unwrap();
            assert!(matches!(r.next().await.unwrap_err(), FrameError::TooLarge { len: 100, max: 16 }));
            let (mut a, b) = tokio::io::duplex(1 << 20);
            let mut r = FrameReader::new(b, 16);
            a.write_all(&[0, 0, 0, 5, 1]).await.unwrap();
            drop(a);
            assert!(matches!(r.next().await.unwrap_err(), FrameError::Truncated { got: 1, want: 5 }));

            let (mut a, _b) = tokio::io::duplex(16);
            let big = vec![0u8; FRAME_MAX + 1];
            assert!(matches!(write_frame(&mut a, &big).await.unwrap_err(), FrameError::TooLarge { .. }));
        });
    }
}
