//! The engine's settings as a C struct: [`poselink_config_init`] fills it with the
//! defaults, the caller changes what it needs, and `poselink_engine_create` checks
//! every value and turns it into the Rust [`EngineConfig`]. Strings are read with
//! a bound, so a missing NUL terminator is a `BAD_LENGTH` error, not a read past
//! the end of the caller's buffer.
//!
//! ```
//! use poselink_capi::{PoselinkConfig, PoselinkStatus, poselink_config_init};
//! let mut cfg = std::mem::MaybeUninit::<PoselinkConfig>::uninit();
//! let status = unsafe { poselink_config_init(cfg.as_mut_ptr()) };
//! assert_eq!(status, PoselinkStatus::Ok);
//! let cfg = unsafe { cfg.assume_init() };
//! assert_eq!((cfg.max_rooms, cfg.struct_size as usize), (8, size_of::<PoselinkConfig>()));
//! ```

use std::ffi::{CStr, c_char};

use poselink::engine::EngineConfig;
use poselink::monitor::MonitorConfig;
use poselink::proto::{AudioCodec, AudioEncoding, EncoderConfig, MAX_TOKEN_LEN, PoseMode};

use crate::status::{Failure, PoselinkStatus, guard};

/// The longest hub URL accepted, bytes.
pub const POSELINK_MAX_URL_LEN: usize = 1024;
/// The longest token accepted, bytes.
pub const POSELINK_MAX_TOKEN_LEN: usize = 2048;
/// The longest room or client name, bytes.
pub const POSELINK_MAX_NAME_LEN: usize = 64;

const _: () = assert!(POSELINK_MAX_TOKEN_LEN == MAX_TOKEN_LEN);
const _: () = assert!(POSELINK_MAX_NAME_LEN == poselink::proto::MAX_NAME_LEN);

/// The edge engine's settings. Fill one with `poselink_config_init`, then change
/// fields; every capacity is decided here and allocated once, at create.
///
/// The strings are borrowed: they are read (and copied) by
/// `poselink_engine_create` and may be freed after it returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PoselinkConfig {
    /// `sizeof(PoselinkConfig)`, set by `poselink_config_init`: a header and a
    /// library that disagree on the layout are refused (`BAD_LENGTH`).
    pub struct_size: u32,
    /// Pose frames are sent as raw `float`s (1) instead of quantised keyframes and
    /// deltas (0, the default: about 110 bytes a frame instead of 680).
    pub raw_pose: u32,
    /// The hub's URL, `ws://host:port/`, or `wss://host:port/` for TLS,
    /// NUL-terminated. Default `ws://127.0.0.1:7700/`. At most 1024 bytes.
    ///
    /// Failover: several URLs separated by commas (at most 8, all `ws://` or
    /// all `wss://`, none twice), e.g. `"ws://10.0.0.2:7700/,ws://10.0.0.3:7700/"`.
    /// The engine connects to the first; when a connection attempt fails or
    /// the session is lost it tries the next (round robin), rejoins its rooms
    /// there and replays the unacknowledged audio. The `CONNECTED` event's
    /// `count` is the index of the hub in this list. A bad list makes
    /// `poselink_engine_create` fail with `INVALID_ARGUMENT` and the reason.
    pub hub: *const c_char,
    /// For `wss://`: a PEM file of certificate authorities to trust besides the
    /// system's roots (a private CA, or the hub's self-signed certificate),
    /// NUL-terminated path; NULL for the system's roots only. A file that
    /// cannot be read or holds no certificate makes `poselink_engine_create`
    /// fail with `INVALID_ARGUMENT` and the reason. At most 1024 bytes.
    pub ca_file: *const c_char,
    /// The access token (a JWT from `poselink token`), NUL-terminated; NULL or ""
    /// for a hub run with `--dev`. At most 2048 bytes.
    pub token: *const c_char,
    /// A name for the hub's logs, NUL-terminated; NULL for `poselink-capi/VERSION`.
    /// 1 to 64 bytes of letters, digits and `-_.:@/`.
    pub client: *const c_char,
    /// Rooms joined at once, 1 to 256. Default 8.
    pub max_rooms: u32,
    /// Pose streams (persons) per room, 1 to 64. Default 4.
    pub max_persons: u32,
    /// Pose frames that may wait in the hand-over ring (a newer frame then
    /// replaces the oldest), 1 to 65536. Default 64.
    pub pose_ring: u32,
    /// Audio chunks that may wait in the hand-over ring, 1 to 65536. Default 128.
    pub audio_ring: u32,
    /// Entries of the send queue (audio waits here while the connection is
    /// down), 1 to 65536. Default 192.
    pub queue_capacity: u32,
    /// Events that may wait for `poselink_poll_event` (beyond it the oldest are
    /// dropped and counted), 16 to 65536. Default 1024.
    pub events_capacity: u32,
    /// Pose decoders kept for received streams, 1 to 4096. Default 64.
    pub decoders: u32,
    /// Senders whose media is aligned at once when `playout_delay_ms` > 0, 1 to
    /// 1024. Default 16.
    pub max_senders: u32,
    /// Pose frames older than this when their turn comes are dropped, ms, 1 to
    /// 60000. Default 100.
    pub max_pose_age_ms: u32,
    /// Ping interval, ms, 50 to 600000; no answer for two intervals means the
    /// connection is dead. Default 1000.
    pub heartbeat_ms: u32,
    /// The shortest wait before a reconnect, ms, 1 to 600000. Default 100.
    pub reconnect_min_ms: u32,
    /// The longest wait before a reconnect, ms, `reconnect_min_ms` to 3600000.
    /// Default 5000.
    pub reconnect_max_ms: u32,
    /// Time allowed to connect, upgrade and be welcomed, ms, 100 to 600000.
    /// Default 3000.
    pub connect_timeout_ms: u32,
    /// How long `poselink_join_room` waits for the hub's answer, ms, 100 to
    /// 600000. Default 5000.
    pub join_timeout_ms: u32,
    /// Audio kept for replay until the hub acknowledges it, ms of capture time,
    /// 20 to 60000. Default 2000.
    pub audio_window_ms: u32,
    /// 0 (the default): received pose and audio come out as they arrive, once and
    /// in order. More: they are held this long and released in capture-time order
    /// per sender, late audio reported as `AUDIO_GAP` (60 suits playback on a
    /// LAN). At most 10000.
    pub playout_delay_ms: u32,
    /// A pose keyframe at least this often, ms of capture time, 1 to 60000.
    /// Default 1000.
    pub keyframe_interval_ms: u32,
    /// Bytes per second the engine may send; 0 (the default) for no limit.
    pub bandwidth_bytes_per_sec: u64,
    /// An `ALERT` event when the process's CPU (its latest sample) goes above
    /// this, percent of one core; 0 (the default): none.
    pub alert_cpu_percent: f64,
    /// An `ALERT` when resident memory has grown by more than this since the
    /// start, MB; 0 (the default): none.
    pub alert_memory_growth_mb: f64,
    /// An `ALERT` when the pose frames sent per second fall below this; 0 (the
    /// default): none.
    pub alert_fps_below: f64,
    /// An `ALERT` when the p99 round trip to the hub goes above this, ms; 0
    /// (the default): none.
    pub alert_latency_p99_ms: f64,
    /// An `ALERT` when the SoC temperature goes above this, °C; 0 (the
    /// default): none.
    pub alert_soc_temp_c: f64,
    /// How sent audio is coded: 0 (the default) PCM16, exact samples; 1 Opus
    /// (libopus; a library built without it refuses 1 at create with
    /// `INVALID_ARGUMENT`). With Opus, `poselink_send_audio` takes 20 ms
    /// chunks of 48 kHz mono when `opus_packet_ms` is 40 or 60. Receiving
    /// decodes either, whatever this says.
    pub audio_codec: u32,
    /// Opus's bitrate, bits per second, 500 to 512000. Default 8000 (speech;
    /// with 30 fps pose a board's uplink stays under 40 kbit/s).
    pub opus_bitrate_bps: u32,
    /// Milliseconds of audio per Opus packet: 20, 40 or 60 (the default: 3
    /// chunks a message, 40 ms more latency than 20, fewer bytes of framing).
    pub opus_packet_ms: u32,
}

/// The default hub URL, as `poselink_config_init` sets it.
const DEFAULT_HUB: &CStr = c"ws://127.0.0.1:7700/";

/// Fills `*config` with the defaults. Call it before changing any field: it
/// also sets `struct_size`. Returns `POSELINK_STATUS_OK`, or `NULL_POINTER`.
///
/// # Safety
/// `config` is NULL or points to writable memory for one `PoselinkConfig`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_config_init(config: *mut PoselinkConfig) -> PoselinkStatus {
    guard("poselink_config_init", || {
        if config.is_null() {
            return Err(Failure::null("config"));
        }
        let d = EngineConfig::default();
        let ms = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let c = PoselinkConfig {
            struct_size: size_of::<PoselinkConfig>() as u32,
            raw_pose: u32::from(d.encoder.mode == PoseMode::Raw),
            hub: DEFAULT_HUB.as_ptr(),
            ca_file: std::ptr::null(),
            token: std::ptr::null(),
            client: std::ptr::null(),
            max_rooms: n(d.max_rooms),
            max_persons: n(d.max_persons),
            pose_ring: n(d.pose_ring),
            audio_ring: n(d.audio_ring),
            queue_capacity: n(d.queue_capacity),
            events_capacity: n(d.events_capacity),
            decoders: n(d.decoders),
            max_senders: n(d.max_senders),
            max_pose_age_ms: ms(d.max_pose_age_ms),
            heartbeat_ms: ms(d.heartbeat_ms),
            reconnect_min_ms: ms(d.reconnect_min_ms),
            reconnect_max_ms: ms(d.reconnect_max_ms),
            connect_timeout_ms: ms(d.connect_timeout_ms),
            join_timeout_ms: ms(d.join_timeout_ms),
            audio_window_ms: ms(d.audio_window_ms),
            playout_delay_ms: ms(d.playout_delay_ms),
            keyframe_interval_ms: ms(d.encoder.keyframe_interval_us / 1000),
            bandwidth_bytes_per_sec: d.bandwidth_bytes_per_sec,
            alert_cpu_percent: 0.0,
            alert_memory_growth_mb: 0.0,
            alert_fps_below: 0.0,
            alert_latency_p99_ms: 0.0,
            alert_soc_temp_c: 0.0,
            audio_codec: u32::from(d.encoder.audio.codec == AudioCodec::Opus),
            opus_bitrate_bps: AudioEncoding::board().bitrate_bps,
            opus_packet_ms: u32::from(AudioEncoding::board().packet_ms),
        };
        // SAFETY: checked non-NULL; the caller promises writable memory.
        unsafe { config.write(c) };
        Ok(PoselinkStatus::Ok)
    })
}

/// Reads a NUL-terminated UTF-8 string of at most `max` bytes without looking
/// past its terminator or past `max + 1` bytes. `Ok(None)` for NULL.
///
/// # Safety
/// `ptr` is NULL, or readable up to its NUL terminator or `max + 1` bytes,
/// whichever comes first.
pub(crate) unsafe fn read_str<'a>(
    ptr: *const c_char,
    max: usize,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    let bytes = ptr.cast::<u8>();
    let mut len = 0;
    // SAFETY: each byte read is at most the terminator or byte `max`, within what
    // the caller promises readable.
    while unsafe { *bytes.add(len) } != 0 {
        if len == max {
            return Err(Failure::new(
                PoselinkStatus::BadLength,
                format!("{what} is longer than {max} bytes (or not NUL-terminated)"),
            ));
        }
        len += 1;
    }
    // SAFETY: `len` bytes were just read.
    let slice = unsafe { std::slice::from_raw_parts(bytes, len) };
    std::str::from_utf8(slice).map(Some).map_err(|_| {
        Failure::new(
            PoselinkStatus::InvalidArgument,
            format!("{what} is not valid UTF-8"),
        )
    })
}

fn check(what: &str, value: u32, lo: u32, hi: u32) -> Result<u64, Failure> {
    if (lo..=hi).contains(&value) {
        Ok(u64::from(value))
    } else {
        Err(Failure::new(
            PoselinkStatus::InvalidArgument,
            format!("config.{what} is {value}; it must be between {lo} and {hi}"),
        ))
    }
}

impl PoselinkConfig {
    /// Checks every field and builds the engine's configuration.
    ///
    /// # Safety
    /// The string fields are NULL or readable as [`read_str`] requires.
    pub(crate) unsafe fn engine_config(&self) -> Result<EngineConfig, Failure> {
        if self.struct_size as usize != size_of::<PoselinkConfig>() {
            return Err(Failure::new(
                PoselinkStatus::BadLength,
                format!(
                    "config.struct_size is {} but this library's PoselinkConfig is {} bytes: \
                     call poselink_config_init first, and build against the header of this \
                     library version",
                    self.struct_size,
                    size_of::<PoselinkConfig>()
                ),
            ));
        }
        // SAFETY: the caller's promise about the string fields.
        let hub = unsafe { read_str(self.hub, POSELINK_MAX_URL_LEN, "config.hub") }?
            .ok_or_else(|| Failure::null("config.hub"))?;
        // SAFETY: as above.
        let ca_file = unsafe { read_str(self.ca_file, POSELINK_MAX_URL_LEN, "config.ca_file") }?
            .map(str::to_string);
        // SAFETY: as above.
        let token = unsafe { read_str(self.token, POSELINK_MAX_TOKEN_LEN, "config.token") }?
            .unwrap_or_default();
        // SAFETY: as above.
        let client = match unsafe { read_str(self.client, POSELINK_MAX_NAME_LEN, "config.client") }?
        {
            Some(c) => {
                poselink::proto::validate_name(c, "client name").map_err(|_| {
                    Failure::new(
                        PoselinkStatus::InvalidArgument,
                        format!(
                            "config.client {c:?} is not a valid name: use 1 to 64 bytes of \
                             letters, digits and `-_.:@/`"
                        ),
                    )
                })?;
                c.to_string()
            }
            None => concat!("poselink-capi/", env!("CARGO_PKG_VERSION")).to_string(),
        };
        let raw_pose = match self.raw_pose {
            0 => false,
            1 => true,
            v => {
                return Err(Failure::new(
                    PoselinkStatus::InvalidArgument,
                    format!("config.raw_pose is {v}; it must be 0 (quantised) or 1 (raw)"),
                ));
            }
        };
        let count = |what, v, lo, hi| check(what, v, lo, hi).map(|v| v as usize);
        let reconnect_min_ms = check("reconnect_min_ms", self.reconnect_min_ms, 1, 600_000)?;
        let reconnect_max_ms = check(
            "reconnect_max_ms",
            self.reconnect_max_ms,
            self.reconnect_min_ms,
            3_600_000,
        )?;
        let hubs = EngineConfig {
            hub: hub.to_string(),
            ..EngineConfig::default()
        };
        hubs.check_hubs().map_err(|e| {
            Failure::new(PoselinkStatus::InvalidArgument, format!("config.hub: {e}"))
        })?;
        Ok(EngineConfig {
            hub: hubs.hub,
            ca_file,
            token: token.to_string(),
            client,
            max_rooms: count("max_rooms", self.max_rooms, 1, 256)?,
            max_persons: count("max_persons", self.max_persons, 1, 64)?,
            pose_ring: count("pose_ring", self.pose_ring, 1, 65_536)?,
            audio_ring: count("audio_ring", self.audio_ring, 1, 65_536)?,
            queue_capacity: count("queue_capacity", self.queue_capacity, 1, 65_536)?,
            events_capacity: count("events_capacity", self.events_capacity, 16, 65_536)?,
            decoders: count("decoders", self.decoders, 1, 4096)?,
            max_senders: count("max_senders", self.max_senders, 1, 1024)?,
            max_pose_age_ms: check("max_pose_age_ms", self.max_pose_age_ms, 1, 60_000)?,
            heartbeat_ms: check("heartbeat_ms", self.heartbeat_ms, 50, 600_000)?,
            reconnect_min_ms,
            reconnect_max_ms,
            connect_timeout_ms: check("connect_timeout_ms", self.connect_timeout_ms, 100, 600_000)?,
            join_timeout_ms: check("join_timeout_ms", self.join_timeout_ms, 100, 600_000)?,
            audio_window_ms: check("audio_window_ms", self.audio_window_ms, 20, 60_000)?,
            playout_delay_ms: check("playout_delay_ms", self.playout_delay_ms, 0, 10_000)?,
            bandwidth_bytes_per_sec: self.bandwidth_bytes_per_sec,
            encoder: EncoderConfig {
                mode: if raw_pose {
                    PoseMode::Raw
                } else {
                    PoseMode::Quantized
                },
                keyframe_interval_us: check(
                    "keyframe_interval_ms",
                    self.keyframe_interval_ms,
                    1,
                    60_000,
                )? * 1000,
                audio: self.audio_encoding()?,
                ..EncoderConfig::default()
            },
            monitor: self.monitor()?,
            // System sampling at its default (on).
            ..EngineConfig::default()
        })
    }

    /// The audio coding: PCM16, or the board's Opus setting with the bitrate
    /// and packet length given.
    fn audio_encoding(&self) -> Result<AudioEncoding, Failure> {
        let invalid = |why: String| Failure::new(PoselinkStatus::InvalidArgument, why);
        let audio = match self.audio_codec {
            0 => return Ok(AudioEncoding::default()),
            1 if cfg!(feature = "opus") => AudioEncoding {
                bitrate_bps: self.opus_bitrate_bps,
                packet_ms: u8::try_from(self.opus_packet_ms).unwrap_or(0),
                ..AudioEncoding::board()
            },
            1 => {
                return Err(invalid(
                    "config.audio_codec is 1 (Opus) but this library was built without Opus".into(),
                ));
            }
            n => {
                return Err(invalid(format!(
                    "config.audio_codec is {n}; it must be 0 (PCM16) or 1 (Opus)"
                )));
            }
        };
        check("opus_bitrate_bps", self.opus_bitrate_bps, 500, 512_000)?;
        if !matches!(self.opus_packet_ms, 20 | 40 | 60) {
            return Err(invalid(format!(
                "config.opus_packet_ms is {}; it must be 20, 40 or 60",
                self.opus_packet_ms
            )));
        }
        audio
            .validate()
            .map_err(|e| invalid(format!("config audio: {e}")))?;
        Ok(audio)
    }

    /// The performance monitor's settings: its defaults, with the alerts asked
    /// for (0 is off; a negative or non-finite threshold is refused).
    fn monitor(&self) -> Result<MonitorConfig, Failure> {
        let threshold = |what: &str, v: f64| -> Result<Option<f64>, Failure> {
            if !v.is_finite() || v < 0.0 {
                return Err(Failure::new(
                    PoselinkStatus::InvalidArgument,
                    format!("config.{what} is {v}; it must be 0 (off) or a positive number"),
                ));
            }
            Ok((v > 0.0).then_some(v))
        };
        Ok(MonitorConfig {
            cpu_percent: threshold("alert_cpu_percent", self.alert_cpu_percent)?.map(|v| v as f32),
            memory_growth_bytes: threshold("alert_memory_growth_mb", self.alert_memory_growth_mb)?
                .map(|mb| (mb * 1024.0 * 1024.0) as u64),
            fps_below: threshold("alert_fps_below", self.alert_fps_below)?.map(|v| v as f32),
            latency_p99_us: threshold("alert_latency_p99_ms", self.alert_latency_p99_ms)?
                .map(|ms| (ms * 1000.0) as u64),
            soc_temp_c: threshold("alert_soc_temp_c", self.alert_soc_temp_c)?.map(|v| v as f32),
            ..MonitorConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PoselinkConfig {
        let mut c = std::mem::MaybeUninit::uninit();
        assert_eq!(
            unsafe { poselink_config_init(c.as_mut_ptr()) },
            PoselinkStatus::Ok
        );
        unsafe { c.assume_init() }
    }

    #[test]
    fn the_defaults_are_the_engines() {
        let cfg = unsafe { defaults().engine_config() }.unwrap();
        let d = EngineConfig::default();
        assert_eq!(cfg.hub, d.hub);
        assert_eq!(cfg.token, "");
        assert!(cfg.client.starts_with("poselink-capi/"));
        assert_eq!(
            (
                cfg.max_rooms,
                cfg.max_persons,
                cfg.pose_ring,
                cfg.audio_ring
            ),
            (d.max_rooms, d.max_persons, d.pose_ring, d.audio_ring)
        );
        assert_eq!(
            (
                cfg.queue_capacity,
                cfg.events_capacity,
                cfg.decoders,
                cfg.max_senders
            ),
            (
                d.queue_capacity,
                d.events_capacity,
                d.decoders,
                d.max_senders
            )
        );
        assert_eq!(
            (cfg.heartbeat_ms, cfg.reconnect_min_ms, cfg.reconnect_max_ms),
            (d.heartbeat_ms, d.reconnect_min_ms, d.reconnect_max_ms)
        );
        assert_eq!(
            (
                cfg.connect_timeout_ms,
                cfg.join_timeout_ms,
                cfg.audio_window_ms
            ),
            (d.connect_timeout_ms, d.join_timeout_ms, d.audio_window_ms)
        );
        assert_eq!(
            (
                cfg.playout_delay_ms,
                cfg.max_pose_age_ms,
                cfg.bandwidth_bytes_per_sec
            ),
            (
                d.playout_delay_ms,
                d.max_pose_age_ms,
                d.bandwidth_bytes_per_sec
            )
        );
        assert_eq!(cfg.encoder, d.encoder);
    }

    #[test]
    fn null_config_is_refused() {
        assert_eq!(
            unsafe { poselink_config_init(std::ptr::null_mut()) },
            PoselinkStatus::NullPointer
        );
    }

    #[test]
    fn a_wrong_struct_size_is_refused() {
        let mut c = defaults();
        c.struct_size -= 8;
        let e = unsafe { c.engine_config() }.unwrap_err();
        assert_eq!(e.status, PoselinkStatus::BadLength);
        assert!(e.message.contains("poselink_config_init"), "{}", e.message);
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        type Change = fn(&mut PoselinkConfig);
        let cases: [(&str, Change); 6] = [
            ("max_rooms", |c| c.max_rooms = 0),
            ("events_capacity", |c| c.events_capacity = 15),
            ("heartbeat_ms", |c| c.heartbeat_ms = 0),
            ("reconnect_max_ms", |c| {
                c.reconnect_min_ms = 500;
                c.reconnect_max_ms = 100
            }),
            ("raw_pose", |c| c.raw_pose = 2),
            ("pose_ring", |c| c.pose_ring = 1 << 20),
        ];
        for (field, change) in cases {
            let mut c = defaults();
            change(&mut c);
            let e = unsafe { c.engine_config() }.unwrap_err();
            assert_eq!(e.status, PoselinkStatus::InvalidArgument, "{field}");
            assert!(e.message.contains(field), "{field}: {}", e.message);
        }
    }

    #[test]
    fn strings_are_read_with_a_bound() {
        // No terminator within the limit: refused without reading past it.
        let long = [b'a' as c_char; 8];
        let e = unsafe { read_str(long.as_ptr(), 7, "x") }.unwrap_err();
        assert_eq!(e.status, PoselinkStatus::BadLength);
        let mut fits = [b'a' as c_char; 8];
        fits[7] = 0;
        assert_eq!(
            unsafe { read_str(fits.as_ptr(), 7, "x") }.unwrap(),
            Some("aaaaaaa")
        );
        assert_eq!(unsafe { read_str(std::ptr::null(), 7, "x") }.unwrap(), None);
        let bad = [0xffu8 as c_char, 0];
        let e = unsafe { read_str(bad.as_ptr(), 7, "x") }.unwrap_err();
        assert_eq!(e.status, PoselinkStatus::InvalidArgument);
    }

    #[test]
    fn several_hubs_are_taken_and_a_bad_list_is_refused() {
        let mut c = defaults();
        c.hub = c"ws://10.0.0.2:7700/, ws://10.0.0.3:7700/".as_ptr();
        let cfg = unsafe { c.engine_config() }.unwrap();
        assert_eq!(
            cfg.hub_urls().collect::<Vec<_>>(),
            ["ws://10.0.0.2:7700/", "ws://10.0.0.3:7700/"]
        );
        for (list, why) in [
            (c"ws://a/,wss://b/", "mixes ws:// and wss://"),
            (c"ws://a/,", "entry 2 is empty"),
            (c"ws://a/,ftp://b/", "must start with ws://"),
            (
                c"ws://1/,ws://2/,ws://3/,ws://4/,ws://5/,ws://6/,ws://7/,ws://8/,ws://9/",
                "more than 8",
            ),
        ] {
            c.hub = list.as_ptr();
            let e = unsafe { c.engine_config() }.unwrap_err();
            assert_eq!(e.status, PoselinkStatus::InvalidArgument, "{list:?}");
            assert!(
                e.message.starts_with("config.hub: ") && e.message.contains(why),
                "{list:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn hub_token_and_client_are_checked() {
        let mut c = defaults();
        c.hub = std::ptr::null();
        assert_eq!(
            unsafe { c.engine_config() }.unwrap_err().status,
            PoselinkStatus::NullPointer
        );
        let mut c = defaults();
        c.client = c"bad name with spaces".as_ptr();
        let e = unsafe { c.engine_config() }.unwrap_err();
        assert_eq!(e.status, PoselinkStatus::InvalidArgument);
        let mut c = defaults();
        c.token = c"eyJ.abc.def".as_ptr();
        c.client = c"pi-kitchen".as_ptr();
        c.raw_pose = 1;
        c.keyframe_interval_ms = 250;
        let cfg = unsafe { c.engine_config() }.unwrap();
        assert_eq!(
            (cfg.token.as_str(), cfg.client.as_str()),
            ("eyJ.abc.def", "pi-kitchen")
        );
        assert_eq!(cfg.encoder.mode, PoseMode::Raw);
        assert_eq!(cfg.encoder.keyframe_interval_us, 250_000);
    }
}
