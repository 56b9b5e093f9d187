//! The wire protocol, `no_std` and allocation-free: every byte that poselink puts on
//! the wire or takes off it passes through here, on the edge board, in the hub and in
//! every consumer. It is sans-IO — bytes and values in, bytes and values out, into
//! buffers the caller owns — so it runs the same on a Pi, in the hub's event loop, in
//! a test with a simulated clock, or on a microcontroller.
//!
//! - [`PoseFrame`] / [`Landmark`] and [`AudioChunk`]: the data, fixed-size.
//! - [`Header`], [`Kind`], [`Flags`], [`Packet`]: the envelope (version, kind, flags,
//!   room, sender, sequence, timestamp, payload, CRC-32), checked once on receipt.
//! - [`Message`] and its payload types: every message of the protocol, parsed;
//!   [`encode_control`], [`encode_snapshot`], [`encode_audio`]: their encoders.
//! - [`PoseEncoder`] / [`PoseDecoder`]: quantised keyframes and entropy-coded deltas.
//! - [`Compressor`]: LZ4 above a size threshold, without allocating.
//! - [`Error`]: which check failed, with a sentence a user can act on.
//!
//! The modules depend on each other in one direction only: `error` and the data
//! (`pose`, `audio`) at the bottom; `wire` (the envelope) above them; `compress`
//! above `wire`; `message` (the payloads) and `encode` (their encoders) above
//! those; `pose_codec` on top.
//!
//! `docs/PROTOCOL.md` describes the same bytes for implementers in other languages.

mod audio;
mod bits;
mod compress;
mod encode;
mod error;
mod media;
mod message;
mod pose;
// The codec's loops over several parallel arrays index them by lane on purpose:
// that is the shape the auto-vectoriser turns into SIMD code.
#[allow(clippy::needless_range_loop)]
mod pose_codec;
mod wire;

pub use audio::{
    AUDIO_CHUNK_CAPACITY, AudioChunk, AudioEncoding, MAX_OPUS_PACKET, MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE, OPUS_SAMPLE_RATES, opus_packet_samples,
};
pub use compress::{
    BACKOFF_AFTER, Compressor, DEFAULT_COMPRESS_THRESHOLD, MAX_BACKOFF, MAX_COMPRESS_INPUT,
    decompress, plain_payload,
};
pub use encode::{
    encode_audio, encode_audio_payload, encode_control, encode_snapshot,
    encode_snapshot_with_streams, max_audio_message_len,
};
pub use error::{Error, Field};
pub use message::{
    Ack, AudioCodec, AudioPayload, CloseRoom, ErrorCode, ErrorMsg, Hello, Join, KEYFRAME_BODY_LEN,
    Kick, Leave, LeaveReason, MAX_NAME_LEN, MAX_REASON_LEN, MAX_STREAM_ID, MAX_TOKEN_LEN,
    MemberInfo, MemberJoined, MemberLeft, Members, Message, NeedsKeyframe, Ping, Pong, PoseCoding,
    PosePayload, RAW_BODY_LEN, Role, RoleChanged, RoomSnapshot, Welcome, validate_name,
};
pub use pose::{COORD_MAX, COORD_MIN, LANDMARK_COUNT, Landmark, PoseFrame, landmark};
pub use pose_codec::{
    COORD_MAX_ERROR, COORD_SCALE, CodecPath, CodecStats, EncoderConfig, MAX_POSE_MESSAGE_LEN,
    PoseDecoder, PoseEncoder, PoseMode, SCORE_MAX_ERROR, SCORE_SCALE, codec_path, force_codec_path,
};
pub use wire::{
    CRC_LEN, FIXED_HEADER_LEN, Flags, Header, Kind, MAX_HEADER_LEN, MAX_MESSAGE_LEN,
    MIN_MESSAGE_LEN, Packet, crc32, put_varint, rewrite_room_sender, seal, varint_len,
};

/// The protocol major version this build speaks. (Defined here, above the
/// modules, because both the envelope and the error sentences name it.)
pub const PROTOCOL_MAJOR: u8 = 1;
/// The protocol minor version this build speaks.
pub const PROTOCOL_MINOR: u8 = 1;
/// The version byte this build writes: the major, and minor nibble 0. Minor
/// versions only append fields and add kinds, which a peer may rely on only
/// after the other side announced its minor in hello or welcome, so the
/// envelope's nibble carries nothing (receivers accept any) and stays 0: every
/// 1.x message's first byte is `0x10` (docs/PROTOCOL.md §4.2).
pub const VERSION_BYTE: u8 = PROTOCOL_MAJOR << 4;

/// The largest payload after decompression that a receiver must be ready for;
/// size the `scratch` buffer of [`Message::parse`] with it.
pub const MAX_PLAIN_PAYLOAD: usize = MAX_COMPRESS_INPUT;
