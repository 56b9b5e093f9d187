//! `cargo xtask`: the project's own tasks, in Rust so they run wherever cargo does.
//!
//! - `cargo xtask test [ARGS…]` — the test command of the README: installs what
//!   the tests need and this machine lacks (Node.js for the browser module's
//!   test, Chromium for the viewer's, Python's `websockets` for the JSON-mode
//!   example's, Python's `venv` for the Python package's), then runs
//!   `cargo test --workspace --profile ci ARGS…` and, without ARGS, the Python
//!   package's tests (`cargo xtask pytest`).
//! - `cargo xtask test --coverage` — the same suite as CI runs it: the Rust
//!   tests once, instrumented, with the coverage gate (`coverage` below), then
//!   the Python package's tests, then the few tests the instrumented run
//!   leaves to the plain build (`plain-tests`).
//! - `cargo xtask pytest [ARGS…]` — the Python package's tests alone: a
//!   virtualenv in `target/pyenv` with maturin, pytest and numpy (made once),
//!   the extension and the hub binary built by cargo with the Rust tests' `ci`
//!   profile and feature set (so nothing is compiled twice) and installed into
//!   it in place, as `maturin develop` would, then `pytest python/tests ARGS…`
//!   against them. (maturin itself builds the wheels, in `.ci/cross`.)
//! - `cargo xtask coverage [ARGS…]` — the Rust test suite once more, instrumented
//!   by `cargo llvm-cov` (installed here when missing, version pinned), then the
//!   library's line coverage and the critical path's, printed and enforced
//!   (see `coverage.rs` and docs/COVERAGE.md). ARGS go to `cargo llvm-cov
//!   test` (a filter, for one test binary, skips the thresholds).
//! - `cargo xtask plain-tests` — the few tests whose premise is the optimised
//!   build's speed or footprint, which the instrumented run skips
//!   (`critical_path::PLAIN_ONLY_TESTS`), on the plain `ci` build.
//! - `cargo xtask setup` — only the installing part.
//! - `cargo xtask doctor` — says what is present and what is missing, installs
//!   nothing.
//!
//! Installing uses the system's package manager (Debian's `apt-get`, as root, or
//! through `sudo -n`) and `pip`. Where neither can be used, it stops and says
//! exactly what to install by hand. Nothing here is needed to *use* poselink:
//! only to run its whole test suite.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod coverage;
mod critical_path;

/// One thing the test suite needs from outside the Rust toolchain.
struct Tool {
    /// What it is, for messages.
    name: &'static str,
    /// Which tests need it.
    needed_by: &'static str,
    /// Whether it is usable now.
    present: fn() -> bool,
    /// How to install it.
    install: Install,
}

enum Install {
    /// Debian packages (the first one that installs is enough).
    Apt(&'static [&'static str]),
    /// A Python package, with pip.
    Pip(&'static str),
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "libopus with its pkg-config file",
        needed_by: "the `opus` feature (the C API's default, so the workspace's tests): the build links the system's libopus",
        present: || runs("pkg-config", &["--exists", "opus"]),
        install: Install::Apt(&["libopus-dev", "pkg-config"]),
    },
    Tool {
        name: "Node.js",
        needed_by: "the browser module's test against the Rust codec (tests/protocol/web_decoder)",
        present: || runs("node", &["--version"]),
        install: Install::Apt(&["nodejs"]),
    },
    Tool {
        name: "Chromium",
        needed_by: "the viewer's test in headless Chromium (tests/cli/viewer_browser.rs)",
        present: || {
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .any(|c| runs(c, &["--version"]))
        },
        install: Install::Apt(&["chromium"]),
    },
    Tool {
        name: "nats-server",
        needed_by: "the hub cluster's tests over a real broker (tests/hub/cluster.rs)",
        present: || runs("nats-server", &["--version"]),
        install: Install::Apt(&["nats-server"]),
    },
    Tool {
        name: "Python 3 with pip",
        needed_by: "the JSON-mode Python example's test (tests/cli/python_json.rs)",
        present: || runs("python3", &["-m", "pip", "--version"]),
        install: Install::Apt(&["python3-pip"]),
    },
    Tool {
        name: "Python venv (with ensurepip)",
        needed_by: "the Python package's tests (python/tests), in a virtualenv under target/",
        present: || runs("python3", &["-c", "import venv, ensurepip"]),
        install: Install::Apt(&["python3-venv"]),
    },
    Tool {
        name: "Python package websockets (>= 12)",
        needed_by: "the JSON-mode Python example's test (tests/cli/python_json.rs)",
        present: || runs("python3", &["-c", "import websockets.sync.client"]),
        install: Install::Pip("websockets>=12"),
    },
];

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        // The whole suite with the Rust run instrumented: what CI runs.
        "test" if rest.first().is_some_and(|a| a == "--coverage") => setup()
            .and_then(|()| measure_coverage(&rest[1..]))
            .and_then(|()| pytest(&[]))
            .and_then(|()| plain_tests()),
        "test" => setup().and_then(|()| test(&rest)).and_then(|()| {
            // A filtered run is about Rust tests; the whole run includes Python's.
            if rest.is_empty() { pytest(&[]) } else { Ok(()) }
        }),
        "pytest" => setup().and_then(|()| pytest(&rest)),
        "coverage" => setup().and_then(|()| measure_coverage(&rest)),
        "plain-tests" => plain_tests(),
        "setup" => setup(),
        "doctor" => {
            doctor();
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask test [CARGO TEST ARGS…]   set up what the tests need, then run them all\n       \
                 cargo xtask test --coverage              the same, the Rust run instrumented, coverage enforced (CI)\n       \
                 cargo xtask pytest [PYTEST ARGS…]        only the Python package's tests\n       \
                 cargo xtask coverage [ARGS…]             the Rust tests instrumented: line coverage, enforced\n       \
                 cargo xtask plain-tests                  the tests the instrumented run leaves to the plain build\n       \
                 cargo xtask setup                        only set up\n       \
                 cargo xtask doctor                       say what is present and what is missing"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("xtask: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `cmd args` starts and exits successfully.
fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn doctor() {
    for t in TOOLS {
        let state = if (t.present)() { "present" } else { "MISSING" };
        println!("{state:>8}  {}  (for {})", t.name, t.needed_by);
    }
}

/// Installs every missing tool; an error says what is still missing and how to
/// install it by hand.
fn setup() -> Result<(), String> {
    let mut apt_updated = false;
    for t in TOOLS {
        if (t.present)() {
            continue;
        }
        println!("xtask: installing {} (needed by {})", t.name, t.needed_by);
        let ok = match &t.install {
            Install::Apt(packages) => apt_install(packages, &mut apt_updated),
            Install::Pip(spec) => pip_install(spec),
        };
        if !ok || !(t.present)() {
            let how = match &t.install {
                Install::Apt(p) => format!("apt-get install {}", p.join(" ")),
                Install::Pip(spec) => format!("python3 -m pip install '{spec}'"),
            };
            return Err(format!(
                "{} is missing and could not be installed here; it is needed by {}. \
                 Install it by hand (Debian: `{how}`) and run the command again.",
                t.name, t.needed_by
            ));
        }
    }
    Ok(())
}

/// The prefix that runs a command as root: none when we are root, `sudo -n`
/// when that works without a password; `None` when neither.
fn as_root() -> Option<Vec<&'static str>> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Some(Vec::new());
    }
    runs("sudo", &["-n", "true"]).then(|| vec!["sudo", "-n"])
}

fn apt_install(packages: &[&str], updated: &mut bool) -> bool {
    if !runs("apt-get", &["--version"]) {
        return false;
    }
    let Some(prefix) = as_root() else {
        return false;
    };
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = prefix.clone();
        all.extend_from_slice(args);
        Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !*updated {
        *updated = run(&["apt-get", "update", "-qq"]);
    }
    packages.iter().any(|p| {
        run(&[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            p,
        ])
    })
}

fn pip_install(spec: &str) -> bool {
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .arg(spec)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // An "externally managed" system Python refuses a plain install; a user
    // install, then an override, are the fall-backs.
    pip(&[]) || pip(&["--user"]) || pip(&["--break-system-packages"])
}

/// Runs the whole test suite with the `ci` profile (see the workspace's
/// Cargo.toml): every crate, every test binary, doc tests.
fn test(extra: &[String]) -> Result<(), String> {
    let status = cargo()
        .args(["test", "--workspace", "--profile", "ci"])
        .args(extra)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the tests failed ({status})"))
    }
}

/// A `cargo` command as if typed in a shell: without the variables `cargo run`
/// set for this program (`CARGO_PKG_NAME=xtask`, `CARGO_MANIFEST_DIR`, …).
/// Build scripts such as ring's ask to be rerun when those change, so a cargo
/// started from here with them would rebuild ring, rustls and everything above
/// them, and the next cargo started from a shell (`.ci/cross`) all of it again.
fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&*name);
        }
    }
    cmd
}

/// The workspace's root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Runs `cmd`, failing with `what` if it does not succeed.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// The Python package's tests: a virtualenv under `target/pyenv` (made once;
/// Debian's system pip refuses installs outside one) with maturin, pytest and
/// numpy; the extension and the hub binary built by cargo; the extension put
/// in place; then pytest.
///
/// The build is `cargo build --workspace --profile ci --lib --bins --tests`:
/// the same packages, profile and features as `cargo test --workspace
/// --profile ci`, so after the Rust tests it only links the extension. (`maturin
/// develop` builds `-p poselink-py` alone, which unifies features differently
/// and compiled `poselink` and a dozen crates a second time: ~2 minutes of every
/// CI run.) Installing is what `maturin develop` does for this mixed layout: the
/// module next to the package's Python files, and a `.pth` file naming their
/// folder.
fn pytest(extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let root = root();
    let venv = root.join("target/pyenv");
    let python = venv.join("bin/python");
    let want = "import maturin, pytest, numpy";
    if !runs(python.to_str().unwrap_or_default(), &["-c", want]) {
        println!("xtask: making the Python test environment in target/pyenv");
        if !python.exists() {
            run(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv target/pyenv",
            )?;
        }
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["maturin>=1.9.4,<2", "pytest>=7", "numpy>=1.23"]),
            "pip install maturin pytest numpy (into target/pyenv)",
        )?;
    }
    run(
        cargo().current_dir(&root).args([
            "build",
            "--workspace",
            "--profile",
            "ci",
            "--lib",
            "--bins",
            "--tests",
        ]),
        "cargo build --workspace --profile ci --lib --bins --tests",
    )?;
    let module = root.join("python/poselink/_native.abi3.so");
    std::fs::copy(root.join("target/ci/lib_native.so"), &module)
        .map_err(|e| format!("cannot copy the extension to {}: {e}", module.display()))?;
    let site = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .map_err(|e| format!("cannot ask {} for its site-packages: {e}", python.display()))?;
    let site = PathBuf::from(String::from_utf8_lossy(&site.stdout).trim());
    let pth = site.join("poselink.pth");
    std::fs::write(&pth, format!("{}\n", root.join("python").display()))
        .map_err(|e| format!("cannot write {}: {e}", pth.display()))?;
    // Said before pytest runs, so that pytest's summary line ends the output.
    println!(
        "xtask: the Python test environment and extension are ready ({:.0} s); pytest python/tests",
        started.elapsed().as_secs_f64()
    );
    run(
        Command::new(&python)
            .current_dir(&root)
            .env("POSELINK_BIN", root.join("target/ci/poselink"))
            .args([
                "-m",
                "pytest",
                "python/tests",
                "-q",
                "-p",
                "no:cacheprovider",
            ])
            .args(extra),
        "pytest python/tests",
    )
}

/// The Rust test suite under `cargo llvm-cov`, then the report
/// (`target/llvm-cov/lcov.info`) read and judged. With ARGS (say `--test
/// hub`), only those tests run and the figures are printed, not enforced: a
/// part of the suite cannot reach the whole's coverage. `--report-only` runs
/// no test: it reports (and judges) what the last run measured.
///
/// The tests run as `cargo test --workspace --profile ci` in the usual target
/// folder, with cargo-llvm-cov's environment (`cargo llvm-cov show-env`) but
/// its compiler wrapper set as `RUSTC_WORKSPACE_WRAPPER` rather than
/// `RUSTC_WRAPPER`. Measured need: `cargo llvm-cov test` builds in a folder
/// of its own, so a fresh clone compiled every dependency twice (once for it,
/// once for the plain build `.ci/cross` and the Python tests use); only
/// workspace crates are instrumented, so the dependencies' artifacts are the
/// same and can be shared. Cargo counts the workspace wrapper in the workspace
/// crates' metadata hash (and not `RUSTC_WRAPPER`: with it, cargo took the
/// plain artifacts as fresh), so their instrumented and plain artifacts sit
/// side by side under different names and are never mixed up.
fn measure_coverage(extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let root = root();
    // `--from FILE`: judge an LCOV report made elsewhere (`cargo llvm-cov
    // report --lcov`), nothing else.
    if let [flag, file] = extra
        && flag == "--from"
    {
        return coverage::coverage(&root, Path::new(file));
    }
    coverage::install_tools(cargo)?;
    let env = coverage::llvm_cov_env(cargo)?;
    let with_env = |args: &[&str]| {
        let mut cmd = cargo();
        cmd.current_dir(&root).args(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.env_remove("RUSTC_WRAPPER");
        cmd
    };
    // `--report-only`: the report of the last run again, without running tests.
    let report_only = extra.iter().any(|a| a == "--report-only");
    let extra: Vec<&String> = extra.iter().filter(|a| *a != "--report-only").collect();
    if !report_only {
        run(
            &mut with_env(&["llvm-cov", "clean", "--profraw-only"]),
            "cargo llvm-cov clean --profraw-only",
        )?;
        let mut cmd = with_env(&["test", "--workspace", "--profile", "ci", "--no-fail-fast"]);
        cmd.args(&extra);
        if !extra.iter().any(|a| *a == "--") {
            cmd.arg("--");
        }
        // Substrings, as a name filter is (`--exact` would apply to a filter
        // given in ARGS too): each full name matches only itself.
        for (_, name) in critical_path::PLAIN_ONLY_TESTS {
            cmd.args(["--skip", name]);
        }
        run(
            &mut cmd,
            "cargo test --workspace --profile ci (instrumented)",
        )?;
    }
    let tested = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(root.join("target/llvm-cov"))
        .map_err(|e| format!("cannot make target/llvm-cov: {e}"))?;
    let lcov = root.join("target/llvm-cov/lcov.info");
    run(
        with_env(&[
            "llvm-cov",
            "report",
            "--profile",
            "ci",
            "--lcov",
            "--output-path",
        ])
        .arg(&lcov),
        "cargo llvm-cov report",
    )?;
    println!(
        "xtask: instrumented build and tests {tested:.0} s, report {:.0} s",
        started.elapsed().as_secs_f64() - tested
    );
    let verdict = coverage::coverage(&root, &lcov);
    if extra.is_empty() {
        verdict
    } else {
        if let Err(why) = verdict {
            println!("xtask: (a filtered run: not enforced)\n{why}");
        }
        Ok(())
    }
}

/// The tests the instrumented run skips (`critical_path::PLAIN_ONLY_TESTS`), on the
/// plain `ci` build: one `cargo test` per test binary, exact names (a
/// workspace package with a test binary of the same name runs none of them).
fn plain_tests() -> Result<(), String> {
    let mut binaries: Vec<&str> = critical_path::PLAIN_ONLY_TESTS
        .iter()
        .map(|t| t.0)
        .collect();
    binaries.sort_unstable();
    binaries.dedup();
    for bin in binaries {
        let names = critical_path::PLAIN_ONLY_TESTS
            .iter()
            .filter(|t| t.0 == bin)
            .map(|t| t.1);
        run(
            cargo()
                .current_dir(root())
                // `--workspace`: the features unified as in the workspace's
                // build, which is then reused (without it cargo resolved
                // this package's features alone and rebuilt a dozen crates).
                .args(["test", "--workspace", "--profile", "ci", "--test", bin])
                .args(["--", "--exact"])
                .args(names),
            &format!("cargo test --profile ci --test {bin} (the plain-only tests)"),
        )?;
    }
    Ok(())
}
