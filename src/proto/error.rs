//! The protocol's error type: one small `Copy` enum whose variants say which check
//! failed, each with a sentence a user can act on. The seed design's
//! BaseError → ConnectError → SendError hierarchy becomes kinds here, not strings;
//! the layers above add their own small enums and wrap this one where they need it.

use core::fmt;

/// Which of a landmark's five values a validation error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Field {
    /// The horizontal image coordinate.
    X,
    /// The vertical image coordinate.
    Y,
    /// The depth coordinate.
    Z,
    /// The visibility score.
    Visibility,
    /// The presence score.
    Presence,
}

impl Field {
    /// The field's lower-case name as used in messages and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Field::X => "x",
            Field::Y => "y",
            Field::Z => "z",
            Field::Visibility => "visibility",
            Field::Presence => "presence",
        }
    }
}

/// Everything that can go wrong while validating, encoding or decoding a message.
///
/// ```
/// use poselink::proto::{Error, Packet};
/// let err = Packet::new_checked(&[0x10u8, 0x01][..]).unwrap_err();
/// assert!(matches!(err, Error::Truncated { .. }));
/// println!("{err}"); // a sentence a user can act on
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A landmark value is NaN or infinite.
    NotFinite {
        /// Landmark index, 0..33.
        landmark: u8,
        /// Which value.
        field: Field,
    },
    /// A landmark value is outside the range the protocol carries.
    OutOfRange {
        /// Landmark index, 0..33.
        landmark: u8,
        /// Which value.
        field: Field,
    },
    /// An audio chunk's shape is invalid (length, channels or sample rate).
    BadAudio {
        /// What is wrong with it.
        what: &'static str,
    },
    /// A name (room, user, client) is empty, too long or has characters outside the allowed set.
    BadName {
        /// Which name.
        what: &'static str,
    },
    /// The input ended before the message did.
    Truncated {
        /// Bytes the message needed at least.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The CRC-32 over header and payload does not match.
    BadChecksum {
        /// The checksum carried by the message.
        carried: u32,
        /// The checksum computed over the bytes received.
        computed: u32,
    },
    /// The message's major protocol version is not one this build speaks.
    UnknownVersion {
        /// The version byte received.
        version: u8,
    },
    /// The message kind byte is not defined in this protocol version.
    UnknownKind {
        /// The kind byte received.
        kind: u8,
    },
    /// The message (or its decompressed payload) is larger than allowed.
    Oversize {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A field's bytes do not follow the layout in `docs/PROTOCOL.md`.
    Malformed {
        /// Which part is malformed.
        what: &'static str,
    },
    /// A pose delta arrived whose reference frame this decoder does not hold; the
    /// stream resumes at the next keyframe (ask the sender or the hub for one).
    NeedsKeyframe,
    /// The output buffer is too small for the encoded message.
    BufferTooSmall {
        /// Bytes needed at least.
        needed: usize,
    },
    /// The payload is LZ4-compressed but this build has the `lz4` feature off.
    CompressionUnsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NotFinite { landmark, field } => write!(
                f,
                "landmark {landmark} {} is NaN or infinite; check the pose estimator's output before sending",
                field.name()
            ),
            Error::OutOfRange { landmark, field } => write!(
                f,
                "landmark {landmark} {} is out of range (x, y, z must lie in [-1, 2], visibility and presence in [0, 1]); clamp it or drop the frame",
                field.name()
            ),
            Error::BadAudio { what } => write!(f, "invalid audio chunk: {what}"),
            Error::BadName { what } => write!(
                f,
                "invalid {what}: use 1 to 64 bytes of letters, digits and `-_.:@/`"
            ),
            Error::Truncated { needed, available } => write!(
                f,
                "message truncated: needs at least {needed} bytes, got {available}; the sender or the transport cut it short"
            ),
            Error::BadChecksum { carried, computed } => write!(
                f,
                "checksum mismatch (carried {carried:#010x}, computed {computed:#010x}): the message was corrupted or built by a broken encoder"
            ),
            Error::UnknownVersion { version } => write!(
                f,
                "unknown protocol version {}.{} (this build speaks {}.x); upgrade the older side",
                version >> 4,
                version & 0x0f,
                super::PROTOCOL_MAJOR
            ),
            Error::UnknownKind { kind } => write!(
                f,
                "unknown message kind {kind:#04x}; the peer speaks a newer minor version or is not a poselink peer"
            ),
            Error::Oversize { len, max } => write!(
                f,
                "message of {len} bytes exceeds the limit of {max} bytes; send smaller messages or raise the limit"
            ),
            Error::Malformed { what } => write!(
                f,
                "malformed message: {what} does not follow the layout in docs/PROTOCOL.md"
            ),
            Error::NeedsKeyframe => write!(
                f,
                "pose delta without its reference frame; waiting for the next keyframe"
            ),
            Error::BufferTooSmall { needed } => write!(
                f,
                "output buffer too small: the message needs {needed} bytes"
            ),
            Error::CompressionUnsupported => write!(
                f,
                "the message is LZ4-compressed but this build lacks the `lz4` feature"
            ),
        }
    }
}

impl core::error::Error for Error {}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        use postcard::Error as P;
        match e {
            P::DeserializeUnexpectedEnd => Error::Malformed {
                what: "a control message body ended early",
            },
            P::SerializeBufferFull => Error::BufferTooSmall { needed: 0 },
            P::DeserializeBadUtf8 => Error::Malformed {
                what: "a string that is not UTF-8",
            },
            P::DeserializeBadVarint => Error::Malformed { what: "a varint" },
            P::DeserializeBadBool => Error::Malformed { what: "a boolean" },
            P::DeserializeBadEnum => Error::Malformed {
                what: "an enumeration value",
            },
            _ => Error::Malformed {
                what: "a control message body",
            },
        }
    }
}
