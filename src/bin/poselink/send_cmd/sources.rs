//! Where `send`'s frames come from: the hal's synthetic skeleton and test tone, or a
//! recording replayed in a loop (one reader per person, one more for its audio).

use std::path::PathBuf;

use poselink_hal::{
    AudioBlock, AudioSource, Error as _, ErrorKind, PoseSample, PoseSource, ReplayError,
    ReplaySource, SyntheticAudio, SyntheticPose,
};

use crate::CliError;

pub(super) enum Poses {
    Synthetic(Vec<SyntheticPose>),
    /// One source per person, and whether the truncated-tail warning was printed.
    Replay(Vec<ReplaySource>, PathBuf, bool),
}

impl Poses {
    pub(super) fn next(&mut self, person: usize, out: &mut PoseSample) -> Result<(), CliError> {
        match self {
            Poses::Synthetic(s) => {
                s[person]
                    .next_pose(out)
                    .unwrap_or_else(|never| match never {});
                Ok(())
            }
            Poses::Replay(s, path, warned) => {
                let src = &mut s[person];
                let mut rewound = false;
                loop {
                    match src.next_pose(out) {
                        Ok(()) => return Ok(()),
                        Err(e) if !rewound && loops_at(&e, path, warned) => {
                            rewound = true;
                            src.rewind().map_err(|e| replay_error(path, &e))?;
                        }
                        Err(e) => return Err(replay_error(path, &e)),
                    }
                }
            }
        }
    }
}

/// Whether a replay error is the end of the recording (to loop): its end, or a
/// truncated last record (a recording whose writer was killed), reported once.
fn loops_at(e: &ReplayError, path: &std::path::Path, warned: &mut bool) -> bool {
    match e {
        ReplayError::EndOfStream => true,
        ReplayError::Truncated { .. } => {
            if !*warned {
                *warned = true;
                eprintln!(
                    "poselink: warning: {}: {e}; replaying up to it",
                    path.display()
                );
            }
            true
        }
        _ => false,
    }
}

fn replay_error(path: &std::path::Path, e: &ReplayError) -> CliError {
    let msg = format!("{}: {e}", path.display());
    match e.kind() {
        ErrorKind::Io => CliError::runtime(msg),
        _ => CliError::config(msg),
    }
}

pub(super) enum Audio {
    Synthetic(SyntheticAudio),
    Replay(Box<ReplaySource>, PathBuf, bool),
}

impl Audio {
    pub(super) fn next(&mut self, out: &mut AudioBlock) -> Result<(), CliError> {
        match self {
            Audio::Synthetic(s) => {
                s.next_audio(out).unwrap_or_else(|never| match never {});
                Ok(())
            }
            Audio::Replay(src, path, warned) => {
                let mut rewound = false;
                loop {
                    match src.next_audio(out) {
                        Ok(()) => return Ok(()),
                        Err(e) if !rewound && loops_at(&e, path, warned) => {
                            rewound = true;
                            src.rewind().map_err(|e| replay_error(path, &e))?;
                        }
                        Err(e) => return Err(replay_error(path, &e)),
                    }
                }
            }
        }
    }
}

/// Opens the recording once per person, checking that it holds a pose; and, with
/// `audio`, once more for its audio if it has any.
pub(super) fn open_replay(
    path: &std::path::Path,
    persons: usize,
    audio: bool,
) -> Result<(Poses, Option<Audio>), CliError> {
    // A recording that cannot be opened is a usage error, whatever the reason.
    let open = || {
        ReplaySource::open(path)
            .map_err(|e| CliError::config(format!("cannot replay {}: {e}", path.display())))
    };
    let mut first = open()?;
    let mut probe = PoseSample::zeroed();
    match first.next_pose(&mut probe) {
        Ok(()) => {}
        Err(ReplayError::EndOfStream) => {
            return Err(CliError::config(format!(
                "{}: the recording holds no pose frames",
                path.display()
            )));
        }
        Err(e) => return Err(replay_error(path, &e)),
    }
    first.rewind().map_err(|e| replay_error(path, &e))?;
    let mut sources = vec![first];
    for _ in 1..persons {
        sources.push(open()?);
    }
    let audio = if audio {
        let mut src = open()?;
        let mut block = AudioBlock::zeroed();
        match src.next_audio(&mut block) {
            Ok(()) => {
                src.rewind().map_err(|e| replay_error(path, &e))?;
                Some(Audio::Replay(Box::new(src), path.to_owned(), false))
            }
            Err(_) => {
                eprintln!(
                    "poselink: note: {} holds no audio; sending the synthetic tone",
                    path.display()
                );
                None
            }
        }
    } else {
        None
    };
    Ok((Poses::Replay(sources, path.to_owned(), false), audio))
}
