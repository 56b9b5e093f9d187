//! The library's log on stderr ([`poselink_log_to_stderr`](crate::poselink_log_to_stderr)):
//! a `log` logger that filters with `env_filter` (the filter syntax of
//! `env_logger` and `RUST_LOG`: `info`, `poselink=debug,warn`) and writes one
//! line per record, `[<unix seconds>.<ms> <LEVEL> <target>] <message>`, in one
//! `write` from a stack buffer.
//!
//! Why not `env_logger` itself: on a board the C API is most of the binary,
//! and `env_logger` with its formatter, styles and timestamps cost more than
//! this file for nothing a board needs (targets/README.md, "Figures").

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Log, Metadata, Record};

/// Longest line written; longer messages are cut (and end with `...`).
const LINE_BYTES: usize = 1024;

struct StderrLogger {
    filter: env_filter::Filter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut buf = [0u8; LINE_BYTES];
        let mut cur = std::io::Cursor::new(&mut buf[..LINE_BYTES - 4]);
        // A line too long for the buffer is cut where it filled up.
        let cut = write!(
            cur,
            "[{}.{:03} {:<5} {}] {}",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            record.target(),
            record.args()
        )
        .is_err();
        let mut len = cur.position() as usize;
        if cut {
            buf[len..len + 3].copy_from_slice(b"...");
            len += 3;
        }
        buf[len] = b'\n';
        let _ = std::io::stderr().write_all(&buf[..=len]);
    }

    fn flush(&self) {}
}

/// Installs the logger: `RUST_LOG`'s filter (or `info` where it is unset),
/// then `filter` on top of it. Fails if a logger is installed already.
pub(crate) fn install(filter: Option<&str>) -> Result<(), log::SetLoggerError> {
    let mut builder = env_filter::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(env) => builder.parse(&env),
        Err(_) => builder.parse("info"),
    };
    if let Some(f) = filter {
        builder.parse(f);
    }
    let filter = builder.build();
    let level = filter.filter();
    log::set_boxed_logger(Box::new(StderrLogger { filter }))?;
    log::set_max_level(level);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_on_top_of_the_default_decides() {
        let mut b = env_filter::Builder::new();
        b.parse("info").parse("poselink=debug,warn");
        let f = b.build();
        assert_eq!(f.filter(), log::LevelFilter::Debug);
        let rec =
            |target: &'static str, level| Metadata::builder().target(target).level(level).build();
        assert!(f.enabled(&rec("poselink::engine", log::Level::Debug)));
        assert!(!f.enabled(&rec("rustls", log::Level::Info)));
        assert!(f.enabled(&rec("rustls", log::Level::Warn)));
    }
}
