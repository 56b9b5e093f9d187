//! Recordings: a pose stream (and, optionally, audio) written to a file so that a
//! session can be replayed bit for bit.
//!
//! The format (`docs/RECORDING.md` describes it byte by byte) is a magic line,
//! [`MAGIC`], followed by records, each
//!
//! ```text
//! [kind u8][ts_us u64 LE][len u32 LE][payload: len bytes]
//! ```
//!
//! - kind [`KIND_POSE`] (1): the 33 × 5 landmark values of a [`PoseSample`] as `f32`
//!   little-endian, landmark by landmark (`x, y, z, visibility, presence`), exactly
//!   [`POSE_PAYLOAD_LEN`] = 660 bytes; `ts_us` is the sample's `capture_ts_us`;
//! - kind [`KIND_AUDIO`] (2): an [`AudioBlock`]: `sample_rate` u32 LE, `channels`
//!   u8, then the `len` valid samples as `i16` LE (at most [`AUDIO_CHUNK_SAMPLES`],
//!   a whole number of frames); `ts_us` is the block's `capture_ts_us`.
//!
//! Values are stored as their bit patterns (`f32::to_le_bytes`), so what is read
//! back is identical to what was written, NaN payloads and signed zeros included.
//!
//! [`Recorder`] writes a recording to any [`Write`]. [`ReplaySource`] reads one back
//! from a file: it is a [`PoseSource`] yielding the pose records in order and an
//! [`AudioSource`] yielding the audio records in order (two independent cursors on
//! the same file, so the two streams can be read at their own pace), and reports
//! [`ErrorKind::EndOfStream`] at the end of the file. [`RecordReader`] reads the
//! records of any [`Read`] in file order, and is an [`Iterator`] of [`Record`]s.
//!
//! Reading refuses a file that does not start with [`MAGIC`], an unknown record
//! kind, a record whose length is impossible for its kind (checked before anything
//! is read or allocated, so a corrupt length cannot make the reader allocate), a
//! malformed audio record, and a file that ends inside a record: each is a
//! [`ReplayError`] of kind [`ErrorKind::InvalidData`] naming the byte offset.
//! Reading a record allocates nothing.
//!
//! ```
//! use poselink_hal::replay::{RecordReader, Record, Recorder};
//! use poselink_hal::{AudioBlock, AudioSource, PoseSample, PoseSource, SyntheticAudio,
//!                    SyntheticConfig, SyntheticPose};
//!
//! let mut rec = Recorder::new(Vec::new()).unwrap();
//! let mut pose = SyntheticPose::new(SyntheticConfig::default());
//! let mut tone = SyntheticAudio::new(0);
//! let (mut sample, mut block) = (PoseSample::zeroed(), AudioBlock::zeroed());
//! pose.next_pose(&mut sample).unwrap();
//! tone.next_audio(&mut block).unwrap();
//! rec.write_pose(&sample).unwrap();
//! rec.write_audio(&block).unwrap();
//! let bytes = rec.into_inner().unwrap();
//!
//! let records: Vec<Record> = RecordReader::new(&bytes[..])
//!     .unwrap()
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(records, vec![Record::Pose(Box::new(sample)), Record::Audio(Box::new(block))]);
//! ```

use core::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::audio::{AUDIO_CHUNK_SAMPLES, AudioBlock, AudioSource};
use crate::error::{Error, ErrorKind};
use crate::pose::{LANDMARK_COUNT, PoseSample, PoseSource};

/// The first bytes of every recording: the format's name and version, and a newline.
pub const MAGIC: &[u8; 15] = b"POSELINK-REC 1\n";

/// Record kind of a pose sample.
pub const KIND_POSE: u8 = 1;
/// Record kind of an audio block.
pub const KIND_AUDIO: u8 = 2;

/// Bytes of a record header: kind (1), timestamp (8), payload length (4).
pub const RECORD_HEADER_LEN: usize = 13;
/// Bytes of a pose record's payload: 33 landmarks × 5 values × 4 bytes.
pub const POSE_PAYLOAD_LEN: usize = LANDMARK_COUNT * 5 * 4;
/// Bytes of an audio record's payload before the samples: sample rate (4), channels (1).
pub const AUDIO_PAYLOAD_HEADER_LEN: usize = 5;
/// Largest audio record payload: the header and [`AUDIO_CHUNK_SAMPLES`] samples.
pub const MAX_AUDIO_PAYLOAD_LEN: usize = AUDIO_PAYLOAD_HEADER_LEN + 2 * AUDIO_CHUNK_SAMPLES;

const MAX_PAYLOAD_LEN: usize = if POSE_PAYLOAD_LEN > MAX_AUDIO_PAYLOAD_LEN {
    POSE_PAYLOAD_LEN
} else {
    MAX_AUDIO_PAYLOAD_LEN
};

// ---- errors -----------------------------------------------------------------------

/// Why a recording could not be read (or a block not recorded).
///
/// [`kind`](Error::kind) is [`ErrorKind::EndOfStream`] at the clean end of the file,
/// [`ErrorKind::Io`] when the operating system failed, and
/// [`ErrorKind::InvalidData`] for everything wrong with the file's contents.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file ended at a record boundary: every record has been read.
    EndOfStream,
    /// An input/output call failed.
    Io(io::Error),
    /// The file does not start with [`MAGIC`]: not a recording, or another version.
    BadMagic,
    /// The file ends inside a record (or inside the magic line).
    Truncated {
        /// Byte offset in the file of the record (0 for the magic line).
        offset: u64,
        /// Bytes the record needs.
        needed: usize,
        /// Bytes the file still held.
        got: usize,
    },
    /// A record kind this version does not know.
    UnknownKind {
        /// Byte offset of the record.
        offset: u64,
        /// The kind byte.
        kind: u8,
    },
    /// A payload length that is impossible for the record's kind.
    BadLength {
        /// Byte offset of the record.
        offset: u64,
        /// The record kind.
        kind: u8,
        /// The length the header claims.
        len: u32,
    },
    /// An audio record (or block) whose shape is invalid.
    BadAudio {
        /// Byte offset of the record (0 when refusing to write a block).
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EndOfStream => f.write_str("end of the recording: every record has been read"),
            Self::Io(e) => write!(f, "reading the recording failed: {e}"),
            Self::BadMagic => write!(
                f,
                "not a poselink recording (or an unsupported version): the file does not start with {:?}",
                core::str::from_utf8(MAGIC).unwrap_or("POSELINK-REC 1")
            ),
            Self::Truncated {
                offset,
                needed,
                got,
            } => write!(
                f,
                "the recording is truncated: the record at byte {offset} needs {needed} bytes but the file ends after {got}"
            ),
            Self::UnknownKind { offset, kind } => write!(
                f,
                "unknown record kind {kind} at byte {offset} (this version knows 1 = pose and 2 = audio): the file is corrupt or from a newer version"
            ),
            Self::BadLength { offset, kind, len } => {
                let expected = match *kind {
                    KIND_POSE => format!("exactly {POSE_PAYLOAD_LEN}"),
                    _ => format!(
                        "{AUDIO_PAYLOAD_HEADER_LEN} plus 2 per sample, at most {MAX_AUDIO_PAYLOAD_LEN}"
                    ),
                };
                write!(
                    f,
                    "record at byte {offset} (kind {kind}) claims a payload of {len} bytes; {expected} expected: the file is corrupt"
                )
            }
            Self::BadAudio { offset, what } => {
                write!(f, "invalid audio record at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for ReplayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl Error for ReplayError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::EndOfStream => ErrorKind::EndOfStream,
            Self::Io(_) => ErrorKind::Io,
            _ => ErrorKind::InvalidData,
        }
    }
}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ReplayError> for io::Error {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Io(e) => e,
            ReplayError::EndOfStream => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Checks an audio block's shape: channels at least 1, `len` within the capacity
/// and a whole number of frames.
fn check_audio(channels: u8, len: usize, offset: u64) -> Result<(), ReplayError> {
    if channels == 0 {
        return Err(ReplayError::BadAudio {
            offset,
            what: "0 channels",
        });
    }
    if len > AUDIO_CHUNK_SAMPLES {
        return Err(ReplayError::BadAudio {
            offset,
            what: "more samples than an AudioBlock holds (960)",
        });
    }
    if !len.is_multiple_of(usize::from(channels)) {
        return Err(ReplayError::BadAudio {
            offset,
            what: "the sample count is not a whole number of frames",
        });
    }
    Ok(())
}

// ---- writing ----------------------------------------------------------------------

/// Writes a recording: [`MAGIC`] at once, then one record per call.
///
/// Wrap a file in a [`BufWriter`] (or use [`Recorder::create`]); call
/// [`flush`](Self::flush) or [`into_inner`](Self::into_inner) at the end, since a
/// buffered writer's last bytes are lost if it is only dropped with an error.
#[derive(Debug)]
pub struct Recorder<W: Write> {
    out: W,
    poses: u64,
    audio: u64,
    bytes: u64,
    buf: [u8; RECORD_HEADER_LEN + MAX_PAYLOAD_LEN],
}

impl Recorder<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the magic line.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        Recorder::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> Recorder<W> {
    /// A recorder writing to `out`; the magic line is written now.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            poses: 0,
            audio: 0,
            bytes: MAGIC.len() as u64,
            buf: [0; RECORD_HEADER_LEN + MAX_PAYLOAD_LEN],
        })
    }

    fn header(&mut self, kind: u8, ts_us: u64, len: usize) {
        self.buf[0] = kind;
        self.buf[1..9].copy_from_slice(&ts_us.to_le_bytes());
        self.buf[9..13].copy_from_slice(&(len as u32).to_le_bytes());
    }

    /// Appends a pose record: `sample.capture_ts_us` and the landmarks' bit patterns.
    pub fn write_pose(&mut self, sample: &PoseSample) -> io::Result<()> {
        self.header(KIND_POSE, sample.capture_ts_us, POSE_PAYLOAD_LEN);
        let payload = &mut self.buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + POSE_PAYLOAD_LEN];
        for (dst, v) in payload
            .chunks_exact_mut(4)
            .zip(sample.landmarks.iter().flatten())
        {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        let n = RECORD_HEADER_LEN + POSE_PAYLOAD_LEN;
        self.out.write_all(&self.buf[..n])?;
        self.poses += 1;
        self.bytes += n as u64;
        Ok(())
    }

    /// Appends an audio record: the block's timestamp, format and valid samples.
    ///
    /// A block with 0 channels, more than [`AUDIO_CHUNK_SAMPLES`] samples or a
    /// sample count that is not a whole number of frames is refused
    /// ([`io::ErrorKind::InvalidInput`]) and nothing is written.
    pub fn write_audio(&mut self, block: &AudioBlock) -> io::Result<()> {
        check_audio(block.channels, block.len, 0)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let len = AUDIO_PAYLOAD_HEADER_LEN + 2 * block.len;
        self.header(KIND_AUDIO, block.capture_ts_us, len);
        let p = &mut self.buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        p[..4].copy_from_slice(&block.sample_rate.to_le_bytes());
        p[4] = block.channels;
        for (dst, s) in p[AUDIO_PAYLOAD_HEADER_LEN..]
            .chunks_exact_mut(2)
            .zip(block.samples())
        {
            dst.copy_from_slice(&s.to_le_bytes());
        }
        let n = RECORD_HEADER_LEN + len;
        self.out.write_all(&self.buf[..n])?;
        self.audio += 1;
        self.bytes += n as u64;
        Ok(())
    }

    /// Pose records written so far.
    pub fn poses_written(&self) -> u64 {
        self.poses
    }

    /// Audio records written so far.
    pub fn audio_written(&self) -> u64 {
        self.audio
    }

    /// Bytes written so far, the magic line included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

// ---- reading ----------------------------------------------------------------------

/// The kind of a record, as [`RecordReader::next_record`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A pose sample (written to the `pose` argument).
    Pose,
    /// An audio block (written to the `audio` argument).
    Audio,
}

/// One record, as the [`RecordReader`] iterator yields it (boxed: the iterator is
/// the convenient path; [`RecordReader::next_record`] is the allocation-free one).
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A pose sample.
    Pose(Box<PoseSample>),
    /// An audio block.
    Audio(Box<AudioBlock>),
}

/// Reads the records of a recording in file order.
///
/// [`next_record`](Self::next_record) fills the caller's buffers and allocates
/// nothing; the [`Iterator`] implementation yields owned [`Record`]s and ends
/// (`None`) at the clean end of the file. After an error other than the end of the
/// stream the reader's position is unspecified: stop reading.
#[derive(Debug)]
pub struct RecordReader<R> {
    inner: R,
    /// Byte offset of the next record.
    offset: u64,
    buf: [u8; MAX_PAYLOAD_LEN],
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the magic line of `inner`.
    pub fn new(mut inner: R) -> Result<Self, ReplayError> {
        let mut magic = [0u8; MAGIC.len()];
        let got = read_full(&mut inner, &mut magic)?;
        if got < MAGIC.len() {
            // A short file that is a prefix of the magic is a truncated recording;
            // anything else is not a recording at all.
            return Err(if magic[..got] == MAGIC[..got] {
                ReplayError::Truncated {
                    offset: 0,
                    needed: MAGIC.len(),
                    got,
                }
            } else {
                ReplayError::BadMagic
            });
        }
        if &magic != MAGIC {
            return Err(ReplayError::BadMagic);
        }
        Ok(Self {
            inner,
            offset: MAGIC.len() as u64,
            buf: [0; MAX_PAYLOAD_LEN],
        })
    }

    /// Byte offset of the next record in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next record into `pose` (a pose record) or `audio` (an audio
    /// record) and says which; the other buffer is left as it was.
    /// [`ReplayError::EndOfStream`] at the clean end of the file.
    pub fn next_record(
        &mut self,
        pose: &mut PoseSample,
        audio: &mut AudioBlock,
    ) -> Result<RecordKind, ReplayError> {
        let offset = self.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Err(ReplayError::EndOfStream);
        }
        if got < RECORD_HEADER_LEN {
            return Err(ReplayError::Truncated {
                offset,
                needed: RECORD_HEADER_LEN,
                got,
            });
        }
        let kind = header[0];
        let ts_us = u64::from_le_bytes(header[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes"));
        let ok_len = match kind {
            KIND_POSE => len as usize == POSE_PAYLOAD_LEN,
            KIND_AUDIO => {
                let l = len as usize;
                (AUDIO_PAYLOAD_HEADER_LEN..=MAX_AUDIO_PAYLOAD_LEN).contains(&l)
                    && (l - AUDIO_PAYLOAD_HEADER_LEN).is_multiple_of(2)
            }
            _ => return Err(ReplayError::UnknownKind { offset, kind }),
        };
        if !ok_len {
            return Err(ReplayError::BadLength { offset, kind, len });
        }
        let len = len as usize;
        let got = read_full(&mut self.inner, &mut self.buf[..len])?;
        if got < len {
            return Err(ReplayError::Truncated {
                offset,
                needed: RECORD_HEADER_LEN + len,
                got: RECORD_HEADER_LEN + got,
            });
        }
        let payload = &self.buf[..len];
        let kind = if kind == KIND_POSE {
            pose.capture_ts_us = ts_us;
            for (v, b) in pose
                .landmarks
                .iter_mut()
                .flatten()
                .zip(payload.chunks_exact(4))
            {
                *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
            RecordKind::Pose
        } else {
            let sample_rate = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
            let channels = payload[4];
            let samples = &payload[AUDIO_PAYLOAD_HEADER_LEN..];
            let n = samples.len() / 2;
            check_audio(channels, n, offset)?;
            audio.capture_ts_us = ts_us;
            audio.sample_rate = sample_rate;
            audio.channels = channels;
            audio.len = n;
            for (s, b) in audio.samples.iter_mut().zip(samples.chunks_exact(2)) {
                *s = i16::from_le_bytes([b[0], b[1]]);
            }
            audio.samples[n..].fill(0);
            RecordKind::Audio
        };
        self.offset += (RECORD_HEADER_LEN + len) as u64;
        Ok(kind)
    }

    /// Reads records until one of kind `want`, skipping (but checking) the others.
    fn next_of(
        &mut self,
        want: RecordKind,
        pose: &mut PoseSample,
        audio: &mut AudioBlock,
    ) -> Result<(), ReplayError> {
        loop {
            if self.next_record(pose, audio)? == want {
                return Ok(());
            }
        }
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> RecordReader<R> {
    /// Goes back to the first record.
    pub fn rewind(&mut self) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(MAGIC.len() as u64))?;
        self.offset = MAGIC.len() as u64;
        Ok(())
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut pose = PoseSample::zeroed();
        let mut audio = AudioBlock::zeroed();
        match self.next_record(&mut pose, &mut audio) {
            Ok(RecordKind::Pose) => Some(Ok(Record::Pose(Box::new(pose)))),
            Ok(RecordKind::Audio) => Some(Ok(Record::Audio(Box::new(audio)))),
            Err(ReplayError::EndOfStream) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A recording read back from a file: a [`PoseSource`] of its pose records and an
/// [`AudioSource`] of its audio records, each in file order with the timestamps
/// they were recorded with.
///
/// The two streams are read through two independent cursors on the file, so a
/// caller may take poses and audio at different rates. The source does not pace
/// itself: it returns at once, and the caller replays at the timestamps' pace (or
/// any other). At the end of the file each stream reports
/// [`ErrorKind::EndOfStream`]; [`rewind`](Self::rewind) starts both again (to loop
/// a recording).
///
/// ```no_run
/// use poselink_hal::replay::ReplaySource;
/// use poselink_hal::{Error, ErrorKind, PoseSample, PoseSource};
///
/// let mut source = ReplaySource::open("session.rec")?;
/// let mut sample = PoseSample::zeroed();
/// loop {
///     match source.next_pose(&mut sample) {
///         Ok(()) => println!("{} µs", sample.capture_ts_us),
///         Err(e) if e.kind() == ErrorKind::EndOfStream => break,
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ReplaySource {
    poses: RecordReader<BufReader<File>>,
    audio: RecordReader<BufReader<File>>,
    /// Scratch for the record kind a cursor skips.
    skip_pose: PoseSample,
    skip_audio: Box<AudioBlock>,
}

impl ReplaySource {
    /// Opens the recording at `path` and checks its magic line.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let poses = RecordReader::new(BufReader::new(File::open(path)?))?;
        let audio = RecordReader::new(BufReader::new(File::open(path)?))?;
        Ok(Self {
            poses,
            audio,
            skip_pose: PoseSample::zeroed(),
            skip_audio: Box::new(AudioBlock::zeroed()),
        })
    }

    /// Starts both streams again from the first record.
    pub fn rewind(&mut self) -> Result<(), ReplayError> {
        self.poses.rewind()?;
        self.audio.rewind()?;
        Ok(())
    }
}

impl PoseSource for ReplaySource {
    type Error = ReplayError;

    fn next_pose(&mut self, out: &mut PoseSample) -> Result<(), Self::Error> {
        self.poses
            .next_of(RecordKind::Pose, out, &mut self.skip_audio)
    }
}

impl AudioSource for ReplaySource {
    type Error = ReplayError;

    fn next_audio(&mut self, out: &mut AudioBlock) -> Result<(), Self::Error> {
        self.audio
            .next_of(RecordKind::Audio, &mut self.skip_pose, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SyntheticAudio, SyntheticConfig, SyntheticPose};

    fn temp_path(name: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "poselink-hal-replay-{}-{n}-{name}.rec",
            std::process::id()
        ))
    }

    /// Poses with awkward values (NaN payloads, signed zero, infinities,
    /// subnormals) and audio of several shapes, interleaved.
    fn session() -> (Vec<PoseSample>, Vec<AudioBlock>) {
        let mut src = SyntheticPose::new(SyntheticConfig {
            seed: 9,
            ..Default::default()
        });
        let mut poses = Vec::new();
        for i in 0..50 {
            let mut s = PoseSample::zeroed();
            src.next_pose(&mut s).unwrap();
            if i == 3 {
                s.landmarks[0][0] = f32::from_bits(0x7fc0_1234); // a NaN with a payload
                s.landmarks[0][1] = -0.0;
                s.landmarks[1][2] = f32::INFINITY;
                s.landmarks[2][3] = f32::from_bits(1); // the smallest subnormal
                s.capture_ts_us = u64::MAX;
            }
            poses.push(s);
        }
        let mut tone = SyntheticAudio::new(5);
        let mut audio = Vec::new();
        for i in 0..20 {
            let mut b = AudioBlock::zeroed();
            tone.next_audio(&mut b).unwrap();
            match i {
                5 => b.len = 0,
                6 => {
                    b.channels = 2;
                    b.sample_rate = 44_100;
                    b.len = 882;
                    b.samples[0] = i16::MIN;
                    b.samples[881] = i16::MAX;
                }
                _ => {}
            }
            // What is read back has zeros past `len`.
            let len = b.len;
            b.samples[len..].fill(0);
            audio.push(b);
        }
        (poses, audio)
    }

    fn write_session(path: &Path, poses: &[PoseSample], audio: &[AudioBlock]) {
        let mut rec = Recorder::create(path).unwrap();
        let mut a = audio.iter();
        for (i, p) in poses.iter().enumerate() {
            rec.write_pose(p).unwrap();
            if i % 2 == 1
                && let Some(b) = a.next()
            {
                rec.write_audio(b).unwrap();
            }
        }
        for b in a {
            rec.write_audio(b).unwrap();
        }
        assert_eq!(rec.poses_written(), poses.len() as u64);
        assert_eq!(rec.audio_written(), audio.len() as u64);
        let expected_bytes = MAGIC.len()
            + poses.len() * (RECORD_HEADER_LEN + POSE_PAYLOAD_LEN)
            + audio
                .iter()
                .map(|b| RECORD_HEADER_LEN + AUDIO_PAYLOAD_HEADER_LEN + 2 * b.len)
                .sum::<usize>();
        assert_eq!(rec.bytes_written(), expected_bytes as u64);
        rec.into_inner().unwrap();
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            expected_bytes as u64
        );
    }

    fn bits(p: &PoseSample) -> Vec<u32> {
        p.landmarks.iter().flatten().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn write_then_read_back_bit_for_bit() {
        let (poses, audio) = session();
        let path = temp_path("roundtrip");
        write_session(&path, &poses, &audio);

        let mut src = ReplaySource::open(&path).unwrap();
        // Audio first, to show the two cursors are independent.
        let mut block = AudioBlock::zeroed();
        for want in &audio {
            src.next_audio(&mut block).unwrap();
            assert_eq!(&block, want);
        }
        assert_eq!(
            src.next_audio(&mut block).unwrap_err().kind(),
            ErrorKind::EndOfStream
        );
        let mut sample = PoseSample::zeroed();
        for want in &poses {
            src.next_pose(&mut sample).unwrap();
            assert_eq!(sample.capture_ts_us, want.capture_ts_us);
            assert_eq!(bits(&sample), bits(want));
        }
        let end = src.next_pose(&mut sample).unwrap_err();
        assert_eq!(end.kind(), ErrorKind::EndOfStream);
        assert!(matches!(end, ReplayError::EndOfStream));
        // And again: the end stays the end.
        assert_eq!(
            src.next_pose(&mut sample).unwrap_err().kind(),
            ErrorKind::EndOfStream
        );

        // Rewind loops the recording.
        src.rewind().unwrap();
        src.next_pose(&mut sample).unwrap();
        assert_eq!(bits(&sample), bits(&poses[0]));
        src.next_audio(&mut block).unwrap();
        assert_eq!(block, audio[0]);

        // The iterator yields the records in file order.
        let records: Vec<Record> = RecordReader::new(File::open(&path).unwrap())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), poses.len() + audio.len());
        assert!(matches!(records[2], Record::Audio(_)));
        let read_poses: Vec<&PoseSample> = records
            .iter()
            .filter_map(|r| match r {
                Record::Pose(p) => Some(&**p),
                Record::Audio(_) => None,
            })
            .collect();
        for (got, want) in read_poses.iter().zip(&poses) {
            assert_eq!(bits(got), bits(want));
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// The worked example of docs/RECORDING.md, byte for byte.
    #[test]
    fn documented_example_bytes() {
        let mut pose = PoseSample::zeroed();
        pose.capture_ts_us = 1_000_000;
        pose.landmarks[0] = [0.5, 0.25, -0.125, 1.0, 1.0];
        let mut block = AudioBlock::zeroed();
        block.capture_ts_us = 1_020_000;
        block.sample_rate = 48_000;
        block.channels = 1;
        block.len = 2;
        block.samples[..2].copy_from_slice(&[1000, -1000]);
        let mut rec = Recorder::new(Vec::new()).unwrap();
        rec.write_pose(&pose).unwrap();
        rec.write_audio(&block).unwrap();
        let bytes = rec.into_inner().unwrap();

        let hex = |s: &str| -> Vec<u8> {
            s.split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect()
        };
        let mut want = hex("50 4f 53 45 4c 49 4e 4b 2d 52 45 43 20 31 0a");
        want.extend(hex("01 40 42 0f 00 00 00 00 00 94 02 00 00"));
        want.extend(hex("00 00 00 3f 00 00 80 3e 00 00 00 be"));
        want.extend(hex("00 00 80 3f 00 00 80 3f"));
        want.extend([0u8; 640]);
        want.extend(hex(
            "02 60 90 0f 00 00 00 00 00 09 00 00 00 80 bb 00 00 01 e8 03 18 fc",
        ));
        assert_eq!(bytes.len(), 710);
        assert_eq!(bytes, want);
        let doc = include_str!("../../docs/RECORDING.md");
        for fragment in [
            "50 4f 53 45 4c 49 4e 4b 2d 52 45 43 20 31 0a",
            "40 42 0f 00 00 00 00 00",
            "94 02 00 00",
            "00 00 00 3f  00 00 80 3e  00 00 00 be",
            "60 90 0f 00 00 00 00 00",
            "80 bb 00 00",
            "e8 03  18 fc",
        ] {
            assert!(doc.contains(fragment), "docs/RECORDING.md shows {fragment}");
        }
    }

    #[test]
    fn an_empty_recording_ends_at_once() {
        let bytes = Recorder::new(Vec::new()).unwrap().into_inner().unwrap();
        assert_eq!(bytes, MAGIC);
        let mut r = RecordReader::new(&bytes[..]).unwrap();
        assert!(r.next().is_none());
    }

    #[test]
    fn wrong_magic_is_refused() {
        for bad in [
            &b"POSELINK-REC 2\n"[..],
            b"RIFF\0\0\0\0WAVEfmt ",
            b"",
            b"P",
            b"poselink-rec 1\n\x01",
        ] {
            let e = RecordReader::new(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{bad:?}: {e}");
            if bad.is_empty() || bad == b"P" {
                assert!(matches!(e, ReplayError::Truncated { .. }), "{e:?}");
            } else {
                assert!(matches!(e, ReplayError::BadMagic), "{e:?}");
                assert!(e.to_string().contains("POSELINK-REC 1"), "{e}");
            }
        }
        let path = temp_path("magic");
        std::fs::write(&path, b"hello, world, this is not a recording").unwrap();
        let e = ReplaySource::open(&path).unwrap_err();
        assert!(matches!(e, ReplayError::BadMagic), "{e:?}");
        std::fs::remove_file(&path).unwrap();

        let missing = ReplaySource::open(temp_path("missing")).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Io);
    }

    #[test]
    fn truncated_file_is_refused() {
        let (poses, audio) = session();
        let path = temp_path("truncated");
        write_session(&path, &poses[..3], &audio[..2]);
        let full = std::fs::read(&path).unwrap();
        // Cut inside every possible place of the last record (an audio record) and
        // of the last record's header.
        let last = RECORD_HEADER_LEN + AUDIO_PAYLOAD_HEADER_LEN + 2 * audio[1].len;
        let last_start = full.len() - last;
        for cut in last_start + 1..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let mut src = ReplaySource::open(&path).unwrap();
            let mut block = AudioBlock::zeroed();
            src.next_audio(&mut block).unwrap();
            let e = src.next_audio(&mut block).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "cut at {cut}: {e}");
            match e {
                ReplayError::Truncated {
                    offset,
                    needed,
                    got,
                } => {
                    assert_eq!(offset, last_start as u64);
                    assert_eq!(got, cut - last_start);
                    assert!(needed > got);
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
            // The pose cursor reads its three poses, then meets the same cut.
            let mut sample = PoseSample::zeroed();
            for _ in 0..3 {
                src.next_pose(&mut sample).unwrap();
            }
            let e = src.next_pose(&mut sample).unwrap_err();
            assert!(matches!(e, ReplayError::Truncated { .. }), "{e:?}");
            assert!(e.to_string().contains("truncated"), "{e}");
        }
        // A cut inside a pose record.
        let cut = MAGIC.len() + RECORD_HEADER_LEN + 100;
        std::fs::write(&path, &full[..cut]).unwrap();
        let mut src = ReplaySource::open(&path).unwrap();
        let e = src.next_pose(&mut PoseSample::zeroed()).unwrap_err();
        assert!(
            matches!(
                e,
                ReplayError::Truncated {
                    offset: 15,
                    needed: 673,
                    got: 113
                }
            ),
            "{e:?}"
        );
        // A cut inside the magic line.
        std::fs::write(&path, &full[..7]).unwrap();
        let e = ReplaySource::open(&path).unwrap_err();
        assert!(
            matches!(e, ReplayError::Truncated { offset: 0, .. }),
            "{e:?}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    fn record(kind: u8, len: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.push(kind);
        v.extend_from_slice(&7u64.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn first_error(bytes: &[u8]) -> ReplayError {
        let mut r = RecordReader::new(bytes).unwrap();
        r.next_record(&mut PoseSample::zeroed(), &mut AudioBlock::zeroed())
            .unwrap_err()
    }

    #[test]
    fn oversized_and_malformed_records_are_refused() {
        // Impossible lengths are refused from the header alone (no payload needed).
        for (kind, len) in [
            (KIND_POSE, 659),
            (KIND_POSE, 661),
            (KIND_POSE, u32::MAX),
            (KIND_AUDIO, 4),
            (KIND_AUDIO, 6),
            (KIND_AUDIO, MAX_AUDIO_PAYLOAD_LEN as u32 + 2),
            (KIND_AUDIO, u32::MAX),
        ] {
            let e = first_error(&record(kind, len, &[]));
            assert!(
                matches!(e, ReplayError::BadLength { offset: 15, .. }),
                "{kind}/{len}: {e:?}"
            );
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            assert!(e.to_string().contains(&len.to_string()), "{e}");
        }
        let e = first_error(&record(3, 0, &[]));
        assert!(
            matches!(e, ReplayError::UnknownKind { kind: 3, .. }),
            "{e:?}"
        );
        // Audio: 0 channels, and 3 samples in stereo.
        let mut p = 48_000u32.to_le_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(&[0; 4]);
        let e = first_error(&record(KIND_AUDIO, p.len() as u32, &p));
        assert!(matches!(e, ReplayError::BadAudio { .. }), "{e:?}");
        p[4] = 2;
        p.extend_from_slice(&[0; 2]);
        let e = first_error(&record(KIND_AUDIO, p.len() as u32, &p));
        assert!(matches!(e, ReplayError::BadAudio { .. }), "{e:?}");
        // The largest valid audio record is read.
        let mut p = 48_000u32.to_le_bytes().to_vec();
        p.push(1);
        p.extend_from_slice(&[0xAB; 2 * AUDIO_CHUNK_SAMPLES]);
        let bytes = record(KIND_AUDIO, p.len() as u32, &p);
        let mut r = RecordReader::new(&bytes[..]).unwrap();
        let mut block = AudioBlock::zeroed();
        let kind = r
            .next_record(&mut PoseSample::zeroed(), &mut block)
            .unwrap();
        assert_eq!(kind, RecordKind::Audio);
        assert_eq!((block.len, block.capture_ts_us), (AUDIO_CHUNK_SAMPLES, 7));
        assert_eq!(block.samples[959], i16::from_le_bytes([0xAB, 0xAB]));
        assert_eq!(r.offset(), bytes.len() as u64);
    }

    #[test]
    fn invalid_blocks_are_not_recorded() {
        let mut rec = Recorder::new(Vec::new()).unwrap();
        let mut b = AudioBlock::zeroed();
        b.len = 10; // 0 channels
        assert_eq!(
            rec.write_audio(&b).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        b.channels = 2;
        b.len = 11;
        assert!(rec.write_audio(&b).is_err());
        b.len = AUDIO_CHUNK_SAMPLES + 2;
        assert!(rec.write_audio(&b).is_err());
        assert_eq!(rec.audio_written(), 0);
        assert_eq!(rec.into_inner().unwrap(), MAGIC);
    }
}
