//! The one canonical encoding: bincode 2.0.1, little-endian, fixed-width integers.
//!
//! This module is the only place that names bincode. Untrusted bytes are decoded with a size
//! limit, and a decode is accepted only if re-encoding gives back exactly the input, so every
//! value has one byte form (no trailing bytes, no alternative encodings).

use bincode::config::{self, Configuration, Fixint, LittleEndian, NoLimit};
/// The traits a type needs to be encoded here (derived with `#[derive(Encode, Decode)]`).
pub use bincode::{Decode, Encode};

use crate::limits::TX_BYTES_MAX;

/// Why bytes were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes than the limit for this type.
    #[error("{len} bytes is over the limit of {max}")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("invalid encoding: {0}")]
    Invalid(String),
    /// A valid value followed by extra bytes.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A value whose canonical encoding differs from the input.
    #[error("non-canonical encoding")]
    NotCanonical,
    /// Decoded, but breaks a structural rule (a limit, an empty list).
    #[error("{0}")]
    Structure(String),
}

const CONFIG: Configuration<LittleEndian, Fixint, NoLimit> =
    config::standard().with_little_endian().with_fixed_int_encoding();

/// Canonical bytes of a value.
///
/// # Panics
/// Never for hashmesh types: encoding into a `Vec` cannot fail.
#[must_use]
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, CONFIG).expect("encoding into a Vec cannot fail")
}

/// Decode untrusted bytes of at most `max` bytes (and at most `TX_BYTES_MAX` of claimed
/// allocation), requiring the canonical form.
///
/// # Errors
/// [`DecodeError`] for oversized, invalid, trailing or non-canonical input.
pub fn decode_canonical<T: Decode<()> + Encode>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    decode_canonical_within::<T, TX_BYTES_MAX>(bytes, max)
}

/// [`decode_canonical`] with a claimed-allocation limit of `LIMIT` bytes instead of
/// `TX_BYTES_MAX` (for plane messages, which may be larger than transactions).
///
/// # Errors
/// [`DecodeError`] for oversized, invalid, trailing or non-canonical input.
pub fn decode_canonical_within<T: Decode<()> + Encode, const LIMIT: usize>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { len: bytes.len(), max });
    }
    let (value, used): (T, usize) = bincode::decode_from_slice(bytes, CONFIG.with_limit::<LIMIT>())
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NotCanonical);
    }
    Ok(value)
}

/// Decode trusted bytes this process wrote itself (state records), with no size limit.
///
/// # Errors
/// [`DecodeError::Invalid`] or [`DecodeError::TrailingBytes`].
pub fn decode_trusted<T: Decode<()>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used): (T, usize) =
        bincode::decode_from_slice(bytes, CONFIG).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}
