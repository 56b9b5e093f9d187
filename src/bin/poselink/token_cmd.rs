//! `poselink token`: mints an HS256 access token and prints it (and a newline, and
//! nothing else) to stdout, so that `TOKEN=$(poselink token …)` works.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use poselink::proto::{Role, validate_name};
use poselink::token::{Claims, Grant};

use crate::CliError;
use crate::secret;

/// `poselink token`'s arguments (the help text is the [`crate::Command::Token`] variant's).
#[derive(Args, derive_more::Debug)]
#[command(
    after_help = "The secret comes from --secret, --secret-file or POSELINK_SECRET, in that order; \
                  prefer the file or the variable (a flag's value is visible to other local users in `ps`).\n\n\
                  Example:\n  \
                  TOKEN=$(poselink token --secret-file /etc/poselink/secret --user pi-kitchen \\\n      \
                  --room 'studio-*' --room gym --role member --ttl 12h)"
)]
pub struct TokenArgs {
    /// HS256 secret, at least 32 bytes (must be the hub's) [env: POSELINK_SECRET]
    #[arg(long, value_name = "SECRET")]
    #[debug("{:?}", poselink::redact::option(secret))]
    pub secret: Option<String>,

    /// File holding the HS256 secret; surrounding whitespace is trimmed
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// User id the token is for: 1 to 64 letters, digits and `-_.:@/`
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// Room granted: a name, a prefix ending in `*` (`studio-*`), or `*` for every room.
    /// Repeat for more rooms
    #[arg(long = "room", value_name = "ROOM", required = true)]
    pub rooms: Vec<String>,

    /// Highest role granted in these rooms; a join may ask for it or a lower one
    #[arg(long, value_enum, value_name = "ROLE", default_value_t = RoleArg::Member)]
    pub role: RoleArg,

    /// How long the token is valid, e.g. 90s, 15m, 12h, 7d
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,

    /// Do not let the token create a room that does not exist yet (it may only join)
    #[arg(long)]
    pub no_create: bool,
}

/// A role as written on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// May kick, change roles and close the room; publishes and subscribes
    Owner,
    /// Publishes and subscribes
    Member,
    /// Subscribes only
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Owner => Role::Owner,
            RoleArg::Member => Role::Member,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// Checks a room name or pattern: `*`, a name, or a name followed by `*`.
pub fn check_room_pattern(pattern: &str) -> Result<(), CliError> {
    if pattern == "*" {
        return Ok(());
    }
    let base = pattern.strip_suffix('*').unwrap_or(pattern);
    validate_name(base, "room name").map_err(|e| {
        CliError::config(format!(
            "--room {pattern:?}: {e}, optionally followed by `*`"
        ))
    })
}

/// The claims the arguments ask for, expiring `ttl` after `now_secs`.
pub fn claims(args: &TokenArgs, now_secs: u64) -> Result<Claims, CliError> {
    validate_name(&args.user, "user id")
        .map_err(|e| CliError::config(format!("--user {:?}: {e}", args.user)))?;
    for room in &args.rooms {
        check_room_pattern(room)?;
    }
    if args.ttl < Duration::from_secs(1) {
        return Err(CliError::config("--ttl must be at least 1s"));
    }
    let exp = now_secs
        .checked_add(args.ttl.as_secs())
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| CliError::config("--ttl is too long"))?;
    let role = Role::from(args.role);
    Ok(Claims {
        sub: args.user.clone(),
        exp,
        rooms: args
            .rooms
            .iter()
            .map(|room| Grant {
                room: room.clone(),
                role,
                create: !args.no_create,
            })
            .collect(),
    })
}

/// Runs `poselink token`.
pub fn run(args: TokenArgs) -> Result<(), CliError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CliError::runtime("the system clock is before 1970"))?
        .as_secs();
    let claims = claims(&args, now)?;
    let source = secret::choose(
        args.secret.as_deref(),
        args.secret_file.as_deref(),
        secret::from_env(),
    )?
    .ok_or_else(|| {
        CliError::config(
            "no secret: give --secret-file FILE, --secret SECRET or set POSELINK_SECRET",
        )
    })?;
    let key = secret::key(&secret::load(&source)?)?;
    let token = key
        .mint(&claims)
        .map_err(|e| CliError::runtime(format!("cannot mint the token: {e}")))?;
    log::debug!(
        "minted a token for {} ({} room grant(s) as {}), expiring at {} (in {})",
        claims.sub,
        claims.rooms.len(),
        Role::from(args.role).name(),
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(claims.exp)),
        humantime::format_duration(Duration::from_secs(args.ttl.as_secs())),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::runtime(format!("cannot write the token to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_patterns() {
        for ok in ["*", "gym", "studio-*", "a.b:c@d/e_f-g", "x*"] {
            check_room_pattern(ok).unwrap();
        }
        for bad in [
            "",
            "**",
            "a*b",
            "has space",
            "*x",
            "room*\n",
            &"r".repeat(65),
        ] {
            let e = check_room_pattern(bad).unwrap_err();
            assert_eq!(e.code, crate::EXIT_CONFIG, "{bad:?}");
        }
    }
}
