//! The error vocabulary shared by every trait in this crate.
//!
//! Each trait (a pose source, an audio source, ...) has its own associated `Error`
//! type, so a driver can carry whatever detail it likes. Generic code above the HAL
//! cannot know those types, so each of them implements [`Error`], which reduces it to
//! an [`ErrorKind`]: a small, `Copy`, `#[non_exhaustive]` classification that says
//! what a caller can do about the failure (stop, retry later, drop the frame).
//!
//! [`MockError`] is the error of the mock implementations: it carries nothing but a
//! kind, so tests can inject any failure.

use core::fmt;

/// An error that can be reduced to an [`ErrorKind`].
///
/// Every associated `Error` type of the traits in this crate implements it.
///
/// ```
/// use poselink_hal::{Error, ErrorKind};
///
/// #[derive(Debug)]
/// struct CameraGone;
///
/// impl Error for CameraGone {
///     fn kind(&self) -> ErrorKind {
///         ErrorKind::Unavailable
///     }
/// }
///
/// assert_eq!(CameraGone.kind(), ErrorKind::Unavailable);
/// ```
pub trait Error: fmt::Debug {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

/// What went wrong, in terms a caller can act on.
///
/// New kinds may be added, so a `match` on it needs a wildcard arm.
///
/// ```
/// use poselink_hal::ErrorKind;
///
/// let kind = ErrorKind::EndOfStream;
/// assert_eq!(
///     kind.to_string(),
///     "the source has no more data: stop reading from it or open it again"
/// );
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The source has delivered everything it had (a recording ended, a mock ran
    /// out of frames). Reading again will not help.
    EndOfStream,
    /// The device is missing, busy or not ready; trying again later may work.
    Unavailable,
    /// An operating-system input/output call failed.
    Io,
    /// The device delivered data that cannot be used (wrong size, out of range).
    InvalidData,
    /// Anything else.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::EndOfStream => {
                "the source has no more data: stop reading from it or open it again"
            }
            Self::Unavailable => {
                "the device is missing, busy or not ready: check that it is connected and not used by another program, then try again"
            }
            Self::Io => {
                "an input/output operation failed: check the device, its permissions and the system log"
            }
            Self::InvalidData => {
                "the device delivered data that cannot be used: check its configuration (format, rate, resolution)"
            }
            Self::Other => "an unexpected error occurred: see the log for details",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ErrorKind {}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

impl Error for core::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

/// The error of the mock implementations: nothing but an [`ErrorKind`].
///
/// ```
/// use poselink_hal::{Error, ErrorKind, MockError};
///
/// let err = MockError::new(ErrorKind::Io);
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert_eq!(err.to_string(), ErrorKind::Io.to_string());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MockError {
    kind: ErrorKind,
}

impl MockError {
    /// An error of the given kind.
    pub const fn new(kind: ErrorKind) -> Self {
        Self { kind }
    }
}

impl From<ErrorKind> for MockError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl std::error::Error for MockError {}

impl Error for MockError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_actionable_sentence() {
        for kind in [
            ErrorKind::EndOfStream,
            ErrorKind::Unavailable,
            ErrorKind::Io,
            ErrorKind::InvalidData,
            ErrorKind::Other,
        ] {
            let text = kind.to_string();
            assert!(text.len() > 20, "{kind:?}: {text}");
            assert!(text.contains(':'), "{kind:?} says what to do: {text}");
            assert_eq!(kind.kind(), kind);
            assert_eq!(MockError::from(kind).kind(), kind);
        }
    }
}
