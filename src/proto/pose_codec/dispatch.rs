//! Which build of the codec's hot loops runs. On x86-64 with `std` the encoder and
//! the decoder are compiled three times — for the baseline (SSE2), for AVX2, and
//! for AVX2 with BMI1, BMI2 and LZCNT — and the CPU picks once, at the first frame; elsewhere (ARM boards, `no_std`) there is one
//! build, for the target's own features. Benchmarks and tests can force a path
//! with [`force_codec_path`] to measure or check each one on any machine.
//!
//! Written here rather than with the `multiversion` crate (used before) for
//! that force: `multiversion` picks a clone itself and offers no way to run
//! another, so no test on an AVX-512 build machine could run the build an
//! AVX2-only CPU gets — which is how a CPU lacking one of five required
//! features silently fell to the portable build (1.44× the instructions,
//! `BENCHMARKS.md`). The dispatch per call is one relaxed atomic load and a
//! match.

#[cfg(all(feature = "engine", target_arch = "x86_64"))]
use core::sync::atomic::{AtomicU8, Ordering};

/// A build of the pose codec's hot loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CodecPath {
    /// The target's baseline features (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// x86-64 with AVX2 (256-bit integer vectors), as every x86-64 CPU since
    /// about 2015 has.
    Avx2,
    /// AVX2 with BMI1, BMI2 and LZCNT (shifts by a register amount without the CL
    /// register, and a count of leading zeros for the Rice codes), as most AVX2
    /// CPUs have; a VM may hide them, and then [`CodecPath::Avx2`] runs.
    Avx2Bmi2,
}

#[cfg(all(feature = "engine", target_arch = "x86_64"))]
const UNSET: u8 = 0;
#[cfg(all(feature = "engine", target_arch = "x86_64"))]
static PATH: AtomicU8 = AtomicU8::new(UNSET);

#[cfg(all(feature = "engine", target_arch = "x86_64"))]
fn encode_path(p: CodecPath) -> u8 {
    match p {
        CodecPath::Portable => 1,
        CodecPath::Avx2 => 2,
        CodecPath::Avx2Bmi2 => 3,
    }
}

/// The path this CPU takes (or the forced one).
pub fn codec_path() -> CodecPath {
    #[cfg(all(feature = "engine", target_arch = "x86_64"))]
    {
        match PATH.load(Ordering::Relaxed) {
            1 => CodecPath::Portable,
            2 => CodecPath::Avx2,
            3 => CodecPath::Avx2Bmi2,
            _ => {
                let p = detected();
                PATH.store(encode_path(p), Ordering::Relaxed);
                p
            }
        }
    }
    #[cfg(not(all(feature = "engine", target_arch = "x86_64")))]
    {
        CodecPath::Portable
    }
}

/// The best path this CPU supports.
#[cfg(all(feature = "engine", target_arch = "x86_64"))]
fn detected() -> CodecPath {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx2") && has!("bmi1") && has!("bmi2") && has!("lzcnt") {
        CodecPath::Avx2Bmi2
    } else if has!("avx2") {
        CodecPath::Avx2
    } else {
        CodecPath::Portable
    }
}

/// Forces the codec onto `path` for the whole process (for benchmarks and tests),
/// or back to the CPU's choice with `None`. A path the CPU cannot run, or that
/// this build does not have, is refused: the return value is the path now in use.
#[doc(hidden)]
pub fn force_codec_path(path: Option<CodecPath>) -> CodecPath {
    #[cfg(all(feature = "engine", target_arch = "x86_64"))]
    {
        let best = detected();
        let p = match path {
            None => best,
            Some(CodecPath::Portable) => CodecPath::Portable,
            Some(CodecPath::Avx2) if best != CodecPath::Portable => CodecPath::Avx2,
            Some(CodecPath::Avx2Bmi2) if best == CodecPath::Avx2Bmi2 => best,
            Some(_) => best,
        };
        PATH.store(encode_path(p), Ordering::Relaxed);
        p
    }
    #[cfg(not(all(feature = "engine", target_arch = "x86_64")))]
    {
        let _ = path;
        CodecPath::Portable
    }
}

/// Defines `$name`, which runs `$body` (an `#[inline(always)]` call, so that it is
/// compiled into each build) in the build [`codec_path`] picks.
macro_rules! dispatched {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$m])*
        #[inline]
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(all(feature = "engine", target_arch = "x86_64"))]
            {
                use $crate::proto::pose_codec::dispatch::{CodecPath, codec_path};
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret $body
                #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
                fn avx2_bmi2($($arg: $ty),*) -> $ret $body
                fn portable($($arg: $ty),*) -> $ret $body
                // SAFETY: `codec_path` names a path only when the CPU has its
                // features (`detected`, which `force_codec_path` also goes through).
                #[allow(unsafe_code)]
                match codec_path() {
                    CodecPath::Avx2Bmi2 => unsafe { avx2_bmi2($($arg),*) },
                    CodecPath::Avx2 => unsafe { avx2($($arg),*) },
                    CodecPath::Portable => portable($($arg),*),
                }
            }
            #[cfg(not(all(feature = "engine", target_arch = "x86_64")))]
            $body
        }
    };
}
pub(super) use dispatched;
