//! The line codec: Stratum V1 is one JSON message per `\n`-terminated line. Bytes go in as they
//! arrive; whole lines come out. Every line is bounded by [`STRATUM_LINE_BYTES_MAX`]; a longer
//! one is an error (the caller closes that connection) and is never buffered whole.

use hashmesh_protocol::limits::STRATUM_LINE_BYTES_MAX;

/// Why a line could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The peer sent more than the bound without a newline.
    #[error("line longer than {max} bytes")]
    TooLong {
        /// The bound.
        max: usize,
    },
    /// The line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
}

/// Splits a byte stream into bounded lines.
#[derive(Debug, Clone, Default)]
pub struct LineCodec {
    buf: Vec<u8>,
    /// Set once a line overflowed: the stream is unusable.
    failed: bool,
}

impl LineCodec {
    /// An empty codec.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes received from the peer.
    ///
    /// # Errors
    /// [`LineError::TooLong`] once more than the bound is pending without a newline; the codec
    /// then refuses everything (the caller closes the connection).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), LineError> {
        if self.failed {
            return Err(LineError::TooLong { max: STRATUM_LINE_BYTES_MAX });
        }
        self.buf.extend_from_slice(bytes);
        let pending = self.buf.iter().rposition(|b| *b == b'\n').map_or(self.buf.len(), |i| self.buf.len() - i - 1);
        if pending > STRATUM_LINE_BYTES_MAX {
            self.failed = true;
            self.buf.clear();
            return Err(LineError::TooLong { max: STRATUM_LINE_BYTES_MAX });
        }
        Ok(())
    }

    /// The next whole line without its `\n` (and `\r`), skipping empty lines; `None` until one
    /// is complete.
    ///
    /// # Errors
    /// [`LineError::TooLong`] for a complete line over the bound, [`LineError::NotUtf8`].
    pub fn next_line(&mut self) -> Option<Result<String, LineError>> {
        loop {
            let end = self.buf.iter().position(|b| *b == b'\n')?;
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > STRATUM_LINE_BYTES_MAX {
                return Some(Err(LineError::TooLong { max: STRATUM_LINE_BYTES_MAX }));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(String::from_utf8(line).map_err(|_| LineError::NotUtf8));
        }
    }

    /// Bytes held for an incomplete line.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_and_bounded() {
        let mut c = LineCodec::new();
        c.push(b"{\"id\":1}\r\n\n{\"id\"").unwrap();
        assert_eq!(c.next_line(), Some(Ok("{\"id\":1}".into())));
        assert_eq!(c.next_line(), None, "the second line is not complete");
        c.push(b":2}\n").unwrap();
        assert_eq!(c.next_line(), Some(Ok("{\"id\":2}".into())));
        assert_eq!(c.pending(), 0);

        let mut c = LineCodec::new();
        assert!(c.push(&vec![b'a'; STRATUM_LINE_BYTES_MAX]).is_ok());
        assert_eq!(c.push(b"a"), Err(LineError::TooLong { max: STRATUM_LINE_BYTES_MAX }));
        assert!(c.push(b"\n").is_err(), "a stream that overflowed stays refused");
        assert_eq!(c.pending(), 0, "nothing kept of it");

        let mut c = LineCodec::new();
        c.push(&[0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(c.next_line(), Some(Err(LineError::NotUtf8)));
    }
}
