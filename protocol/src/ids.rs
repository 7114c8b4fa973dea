//! Identifiers: mining pools are ed25519 public keys; endpoints and miner groups are short
//! readable strings such as `pool-a/ep-1`; directives are the SHA-256 of their signed bytes.

use std::fmt;
use std::str::FromStr;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::limits::ID_BYTES_MAX;

/// Why a textual id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, or longer than `limits::ID_BYTES_MAX`.
    #[error("id must be 1..={max} bytes, got {len}", max = ID_BYTES_MAX)]
    Length {
        /// The length that was given.
        len: usize,
    },
    /// A character outside `[a-z0-9._/-]`.
    #[error("id {id:?} has a character outside [a-z0-9._/-]")]
    Charset {
        /// The id that was given.
        id: String,
    },
    /// Not 64 hexadecimal characters.
    #[error("expected 64 hex characters (32 bytes), got {0:?}")]
    Hex(String),
}

fn check_readable_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > ID_BYTES_MAX {
        return Err(IdError::Length { len: s.len() });
    }
    let ok = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'/' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Charset { id: s.to_owned() })
    }
}

macro_rules! readable_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                check_readable_id(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Encode for $name {
            fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
                self.0.encode(e)
            }
        }

        impl<C> Decode<C> for $name {
            fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
                let s = String::decode(d)?;
                s.parse().map_err(|e: IdError| DecodeError::OtherString(e.to_string()))
            }
        }
        bincode::impl_borrow_decode!($name);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

readable_id!(
    /// An endpoint (one Stratum server of a mining pool), e.g. `pool-a/ep-1`.
    EndpointId
);
readable_id!(
    /// A miner group routed as a unit, e.g. `pool-a/g-1`.
    GroupId
);

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            #[must_use]
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lower-case hex, 64 characters.
            #[must_use]
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| IdError::Hex(s.to_owned()))?;
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_id!(
    /// A mining pool: its ed25519 public key (32 bytes, shown as hex).
    PoolId
);
hash_id!(
    /// A directive: the SHA-256 of the signed transaction bytes, the same hash CometBFT reports.
    DirectiveId
);

hash_id!(
    /// An agent (an edge Stratum proxy): its ed25519 public key, registered by its pool's operator.
    AgentId
);

impl DirectiveId {
    /// The id of a transaction given its exact bytes.
    #[must_use]
    pub fn of_tx_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_ids_accept_the_documented_charset_only() {
        assert!("pool-a/ep-1".parse::<EndpointId>().is_ok());
        assert!("a.b_c".parse::<GroupId>().is_ok());
        assert!(matches!("".parse::<GroupId>(), Err(IdError::Length { len: 0 })));
        assert!(matches!("Pool-A".parse::<GroupId>(), Err(IdError::Charset { .. })));
        assert!(matches!("a b".parse::<GroupId>(), Err(IdError::Charset { .. })));
        let long = "a".repeat(ID_BYTES_MAX + 1);
        assert!(matches!(long.parse::<GroupId>(), Err(IdError::Length { .. })));
        assert!("a".repeat(ID_BYTES_MAX).parse::<GroupId>().is_ok());
    }

    #[test]
    fn hash_ids_parse_hex_with_or_without_prefix() {
        let hex = "ab".repeat(32);
        let a: PoolId = hex.parse().unwrap();
        let b: PoolId = format!("0x{hex}").parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), hex);
        assert!("abcd".parse::<PoolId>().is_err());
        assert!("zz".repeat(32).parse::<DirectiveId>().is_err());
    }

    #[test]
    fn serde_uses_text_forms() {
        let e: EndpointId = "pool-a/ep-1".parse().unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"pool-a/ep-1\"");
        let bad: Result<EndpointId, _> = serde_json::from_str("\"UPPER\"");
        assert!(bad.is_err());
    }
}
