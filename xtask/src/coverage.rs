//! `cargo xtask coverage`: line coverage of the library, measured with
//! `cargo llvm-cov` (LLVM's source-based coverage) and enforced.
//!
//! It installs what it needs and the machine lacks (rustup's
//! `llvm-tools-preview`; `cargo-llvm-cov` at [`LLVM_COV_VERSION`], pinned,
//! from crates.io), runs the Rust test suite once with instrumented
//! workspace crates (the `ci` profile, in cargo-llvm-cov's own target folder),
//! then reads `cargo llvm-cov report --lcov` and prints:
//!
//! - the library's line coverage: the `poselink` crate's `src/`, without the
//!   CLI (`src/bin/`) and without test code — the simulations of `src/tests/`,
//!   every `#[cfg(test)]` item inside library files and every file such an item
//!   names (`#[cfg(test)] mod tests;`). It fails below [`MIN_LIBRARY_LINES`].
//! - each function of the critical path (`critical_path.rs`, the route of a pose
//!   or audio frame from the capture app to the receiver, chosen and justified
//!   in docs/COVERAGE.md) with its line coverage; it fails if one has a line
//!   never run.
//! - the figures as cargo-llvm-cov counts them (every file of the crate,
//!   in-file tests included) and the least-covered library files, for whoever
//!   wants to raise the figure.
//!
//! Why the lines are counted here and not by `--fail-under-lines`: llvm-cov can
//! leave out whole files (`--ignore-filename-regex`) but not the `#[cfg(test)]`
//! modules inside a library file (that takes `#[coverage(off)]`, nightly only),
//! and it gives no line figures for a chosen list of functions. Its LCOV export
//! has both views this needs: each line of a file once with its count (`DA`,
//! what `llvm-cov show` colours), from which test code and single functions
//! are cut by line numbers; and llvm-cov's own per-file totals (`LF`/`LH`, the
//! sum over the file's functions, which counts a line twice when a closure's
//! body sits inside its function), printed beside for comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::critical_path::{CRITICAL_PATH, EXCUSES, Gap};

/// The cargo-llvm-cov release CI installs (`cargo install --locked`).
pub const LLVM_COV_VERSION: &str = "0.9.1";

/// The library's line coverage must be at least this, in percent.
pub const MIN_LIBRARY_LINES: f64 = 90.0;

/// What `cargo xtask coverage` does after the tests: read the LCOV report,
/// count, print, judge.
pub fn coverage(root: &Path, lcov: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(lcov)
        .map_err(|e| format!("cannot read {}: {e}", lcov.display()))?;
    let files = files_of(root, &text)?;
    let mut failures = Vec::new();

    // The library: src/ of the poselink crate, without the CLI and the tests.
    let mut lib = Count::default();
    let mut lib_as_llvm = Count::default();
    let mut cli = Count::default();
    let mut per_file: Vec<(String, Count)> = Vec::new();
    let sources = TestCode::scan(root, files.keys())?;
    for (rel, f) in &files {
        if !rel.starts_with("src/") || rel.starts_with("src/tests/") {
            continue;
        }
        if rel.starts_with("src/bin/") {
            cli.add_lines(&f.lines, |_| true);
            continue;
        }
        lib_as_llvm.add(f.summary);
        if sources.files.contains(rel) {
            continue;
        }
        let skip = sources.lines.get(rel);
        let mut c = Count::default();
        c.add_lines(&f.lines, |l| !skip.is_some_and(|s| s.contains(&l)));
        lib.add(c);
        per_file.push((rel.clone(), c));
    }
    println!(
        "\ncoverage: library lines (src/ without src/bin, src/tests and #[cfg(test)] code): {}",
        lib.show()
    );
    println!(
        "coverage: the same files as cargo llvm-cov counts them (in-file tests included): {}",
        lib_as_llvm.show()
    );
    println!(
        "coverage: the CLI (src/bin, not part of the figure): {}",
        cli.show()
    );
    per_file.sort_by(|a, b| a.1.percent().total_cmp(&b.1.percent()));
    println!("coverage: the ten least-covered library files:");
    for (rel, c) in per_file.iter().take(10) {
        println!("    {:<40} {}", rel, c.show());
    }
    if lib.percent() < MIN_LIBRARY_LINES {
        failures.push(format!(
            "the library's line coverage is {:.2} %, below {MIN_LIBRARY_LINES} %",
            lib.percent()
        ));
    }

    // The critical path, function by function.
    let mut path = Count::default();
    let mut gaps = [0u64; 3];
    let mut excused = Vec::new();
    println!(
        "coverage: the critical path ({} functions):",
        CRITICAL_PATH.len()
    );
    for &(rel, opening) in CRITICAL_PATH {
        let name = function_name(opening);
        let Some(f) = files.get(rel) else {
            failures.push(format!("{rel} is not in the coverage data"));
            continue;
        };
        let text = std::fs::read_to_string(root.join(rel))
            .map_err(|e| format!("cannot read {rel}: {e}"))?;
        let lines: Vec<&str> = text.lines().collect();
        let (from, to) = match function_lines(&lines, rel, opening, &sources) {
            Ok(r) => r,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let mut c = Count::default();
        let mut missed = Vec::new();
        for &(line, hit) in &f.lines {
            if (from..=to).contains(&line) {
                c.total += 1;
                if hit {
                    c.covered += 1;
                } else {
                    missed.push(line);
                }
            }
        }
        path.add(c);
        let mut notes = Vec::new();
        for e in EXCUSES
            .iter()
            .filter(|e| e.file == rel && e.function == opening)
        {
            let Some(at) = (from..=to).find(|&l| lines[l as usize - 1].contains(e.at)) else {
                failures.push(format!(
                    "{rel}: {name}: the excused line `{}` is gone: update EXCUSES",
                    e.at
                ));
                continue;
            };
            let end = if e.block {
                closing_line(&lines, at as usize - 1).map_or(at, |k| k as u32 + 1)
            } else {
                at
            };
            let before = missed.len();
            missed.retain(|l| !(at..=end).contains(l));
            let n = (before - missed.len()) as u64;
            if n == 0 && e.kind == Gap::Untested {
                // Some of these run now and then by timing (a loop falling
                // behind under load): a note, not a failure.
                notes.push(format!("the untested line at {at} ran this time"));
            } else if n == 0 {
                failures.push(format!(
                    "{rel}: {name}: `{}`, excused as {}, is run now: the excuse is wrong; remove it from EXCUSES (and docs/COVERAGE.md)",
                    e.at,
                    e.kind.name()
                ));
            } else {
                gaps[e.kind as usize] += n;
                notes.push(format!("{n} {} at {at}", e.kind.name()));
                excused.push(format!("{rel}:{at} {}: {}", e.kind.name(), e.why));
            }
        }
        let state = if c.total == 0 {
            failures.push(format!(
                "{rel}: {name} has no instrumented line (inlined away, or not built?)"
            ));
            "NOT MEASURED".to_string()
        } else if !missed.is_empty() {
            failures.push(format!(
                "{rel}: {name} has lines never run: {}",
                lines_list(&missed)
            ));
            format!("MISSED lines {}", lines_list(&missed))
        } else if notes.is_empty() {
            "covered".to_string()
        } else {
            format!("covered but {}", notes.join(", "))
        };
        println!(
            "    {:<32} {:<20} {:>9}  {state}",
            rel,
            name,
            c.show_short()
        );
    }
    for e in &excused {
        println!("    excused: {e}");
    }
    println!(
        "coverage: critical path in all: {}; the lines not run are {} unreachable, {} counting artefacts, {} not yet tested (EXCUSES in xtask/src/critical_path.rs)",
        path.show(),
        gaps[Gap::Unreachable as usize],
        gaps[Gap::Counting as usize],
        gaps[Gap::Untested as usize],
    );
    if failures.is_empty() {
        println!(
            "coverage: passed (library >= {MIN_LIBRARY_LINES} % of lines; every critical-path line run or excused)"
        );
        Ok(())
    } else {
        Err(format!("coverage failed:\n  - {}", failures.join("\n  - ")))
    }
}

/// Covered and mapped (instrumented) lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    covered: u64,
    total: u64,
}

impl Count {
    fn add(&mut self, o: Count) {
        self.covered += o.covered;
        self.total += o.total;
    }

    fn add_lines(&mut self, lines: &[(u32, bool)], keep: impl Fn(u32) -> bool) {
        for &(l, hit) in lines {
            if keep(l) {
                self.total += 1;
                self.covered += hit as u64;
            }
        }
    }

    fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.covered as f64 / self.total as f64
        }
    }

    fn show(&self) -> String {
        format!(
            "{:.2} % ({} of {} lines)",
            self.percent(),
            self.covered,
            self.total
        )
    }

    fn show_short(&self) -> String {
        format!("{}/{}", self.covered, self.total)
    }
}

/// One source file of the report: its instrumented lines (line, run at least
/// once) and llvm-cov's own totals for it.
struct FileLines {
    lines: Vec<(u32, bool)>,
    summary: Count,
}

/// The LCOV report's files under `root`, by path relative to it.
fn files_of(root: &Path, lcov: &str) -> Result<BTreeMap<String, FileLines>, String> {
    let mut out = BTreeMap::new();
    let mut file: Option<(String, FileLines)> = None;
    let bad = |l: &str| format!("an LCOV line that does not parse: {l}");
    for l in lcov.lines() {
        if let Some(name) = l.strip_prefix("SF:") {
            let rel = Path::new(name)
                .strip_prefix(root)
                .unwrap_or(Path::new(name));
            let lines = Vec::new();
            let summary = Count::default();
            let rel = rel.to_string_lossy().replace('\\', "/");
            file = Some((rel, FileLines { lines, summary }));
        } else if let Some(da) = l.strip_prefix("DA:") {
            let (line, count) = da.split_once(',').ok_or_else(|| bad(l))?;
            let line: u32 = line.parse().map_err(|_| bad(l))?;
            let count: u64 = count.parse().map_err(|_| bad(l))?;
            let f = file.as_mut().ok_or_else(|| bad(l))?;
            f.1.lines.push((line, count > 0));
        } else if let Some(n) = l.strip_prefix("LF:") {
            let f = file.as_mut().ok_or_else(|| bad(l))?;
            f.1.summary.total = n.parse().map_err(|_| bad(l))?;
        } else if let Some(n) = l.strip_prefix("LH:") {
            let f = file.as_mut().ok_or_else(|| bad(l))?;
            f.1.summary.covered = n.parse().map_err(|_| bad(l))?;
        } else if l == "end_of_record" {
            let (rel, f) = file.take().ok_or_else(|| bad(l))?;
            out.insert(rel, f);
        }
    }
    if out.is_empty() {
        return Err("the LCOV report names no file".into());
    }
    Ok(out)
}

/// Test code inside the library's source: whole files (named by a
/// `#[cfg(test)] mod name;`) and line ranges (`#[cfg(test)]` items).
struct TestCode {
    files: BTreeSet<String>,
    lines: BTreeMap<String, BTreeSet<u32>>,
}

impl TestCode {
    fn scan<'a>(root: &Path, files: impl Iterator<Item = &'a String>) -> Result<TestCode, String> {
        let mut t = TestCode {
            files: BTreeSet::new(),
            lines: BTreeMap::new(),
        };
        for rel in files {
            if !rel.starts_with("src/") {
                continue;
            }
            let text = std::fs::read_to_string(root.join(rel))
                .map_err(|e| format!("cannot read {rel}: {e}"))?;
            let lines: Vec<&str> = text.lines().collect();
            let mut i = 0;
            while i < lines.len() {
                if lines[i].trim() != "#[cfg(test)]" {
                    i += 1;
                    continue;
                }
                // The item the attribute gates: past further attributes.
                let mut s = i + 1;
                while s < lines.len() && lines[s].trim_start().starts_with("#[") {
                    s += 1;
                }
                let Some(item) = lines.get(s) else { break };
                let end = if item.trim_end().ends_with(';') {
                    if let Some(name) = item
                        .trim()
                        .strip_prefix("mod ")
                        .or_else(|| item.trim().strip_prefix("pub mod "))
                        .and_then(|m| m.strip_suffix(';'))
                    {
                        t.files.insert(module_file(root, rel, name));
                    }
                    s
                } else {
                    closing_line(&lines, s).ok_or_else(|| {
                        format!(
                            "{rel}:{}: cannot find the end of a #[cfg(test)] item",
                            s + 1
                        )
                    })?
                };
                // Lines are 1-based in the coverage data.
                let set = t.lines.entry(rel.clone()).or_default();
                set.extend((i as u32 + 1)..=(end as u32 + 1));
                i = end + 1;
            }
        }
        Ok(t)
    }
}

/// The file of module `name` declared in `rel` (`a/b.rs` → `a/b/name.rs`,
/// `a/mod.rs` or `lib.rs` → `a/name.rs`; `name/mod.rs` when that exists).
fn module_file(root: &Path, rel: &str, name: &str) -> String {
    let p = Path::new(rel);
    let dir: PathBuf = match p.file_name().and_then(|f| f.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => p.parent().unwrap_or(Path::new("")).to_path_buf(),
        _ => p.with_extension(""),
    };
    let nested = dir.join(name).join("mod.rs");
    let path = if root.join(&nested).exists() {
        nested
    } else {
        dir.join(format!("{name}.rs"))
    };
    path.to_string_lossy().replace('\\', "/")
}

/// The line (0-based) that closes the item opening on line `start`: the first
/// later line at the item's indentation that starts with `}` (rustfmt's
/// layout), or `start` itself when the item's braces close on that line.
fn closing_line(lines: &[&str], start: usize) -> Option<usize> {
    let open = lines[start];
    let indent = open.len() - open.trim_start().len();
    if open.contains('{') && open.trim_end().ends_with('}') {
        return Some(start);
    }
    (start + 1..lines.len()).find(|&k| {
        let l = lines[k];
        let b = l.as_bytes();
        b.len() > indent && b[..indent].iter().all(|&c| c == b' ') && b[indent] == b'}'
    })
}

/// The lines (1-based, inclusive) of the function whose signature opens with
/// `opening` in `rel`'s non-test code; an error if it is not there exactly once.
fn function_lines(
    lines: &[&str],
    rel: &str,
    opening: &str,
    tests: &TestCode,
) -> Result<(u32, u32), String> {
    let skip = tests.lines.get(rel);
    let found: Vec<usize> = (0..lines.len())
        .filter(|&k| !skip.is_some_and(|s| s.contains(&(k as u32 + 1))))
        .filter(|&k| lines[k].trim_start().starts_with(opening))
        .collect();
    let [start] = found[..] else {
        return Err(format!(
            "{rel}: `{opening}` opens {} functions, not one: update CRITICAL_PATH in xtask/src/critical_path.rs (and docs/COVERAGE.md)",
            found.len()
        ));
    };
    let end = closing_line(lines, start)
        .ok_or_else(|| format!("{rel}:{}: cannot find the end of `{opening}`", start + 1))?;
    Ok((start as u32 + 1, end as u32 + 1))
}

/// `name` from a signature's opening (`pub(super) fn written(` → `written`).
fn function_name(opening: &str) -> &str {
    let after = opening.split("fn ").nth(1).unwrap_or(opening);
    after.split(['(', '<']).next().unwrap_or(after)
}

/// `3, 7-9, 12` from sorted line numbers.
fn lines_list(lines: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut k = 0;
    while k < lines.len() {
        let mut j = k;
        while j + 1 < lines.len() && lines[j + 1] == lines[j] + 1 {
            j += 1;
        }
        parts.push(if j == k {
            lines[k].to_string()
        } else {
            format!("{}-{}", lines[k], lines[j])
        });
        k = j + 1;
    }
    parts.join(", ")
}

/// Installs rustup's `llvm-tools-preview` and cargo-llvm-cov
/// [`LLVM_COV_VERSION`] when they are missing (or another version).
pub fn install_tools(cargo: impl Fn() -> Command) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !String::from_utf8_lossy(&installed.stdout).contains("llvm-tools") {
        println!("xtask: installing rustup's llvm-tools-preview (for cargo llvm-cov)");
        super::run(
            Command::new("rustup").args(["component", "add", "llvm-tools-preview"]),
            "rustup component add llvm-tools-preview",
        )?;
    }
    let version = cargo()
        .args(["llvm-cov", "--version"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.split_whitespace().any(|w| w == LLVM_COV_VERSION) {
        println!("xtask: installing cargo-llvm-cov {LLVM_COV_VERSION} (crates.io, --locked)");
        let started = Instant::now();
        super::run(
            cargo().args([
                "install",
                "cargo-llvm-cov",
                "--version",
                LLVM_COV_VERSION,
                "--locked",
            ]),
            "cargo install cargo-llvm-cov",
        )?;
        println!(
            "xtask: cargo-llvm-cov installed ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// cargo-llvm-cov's environment for building and running instrumented code
/// outside it (`cargo llvm-cov show-env`), with its compiler wrapper moved
/// from `RUSTC_WRAPPER` to `RUSTC_WORKSPACE_WRAPPER` (see
/// `measure_coverage` in main.rs for why).
pub fn llvm_cov_env(cargo: impl Fn() -> Command) -> Result<Vec<(String, String)>, String> {
    let out = cargo()
        .args(["llvm-cov", "show-env"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo llvm-cov show-env: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo llvm-cov show-env failed ({})", out.status));
    }
    let mut env = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        // Values are quoted for a shell when they need it: 'like this'.
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(v);
        let k = if k == "RUSTC_WRAPPER" {
            "RUSTC_WORKSPACE_WRAPPER"
        } else {
            k
        };
        env.push((k.to_string(), v.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "RUSTC_WORKSPACE_WRAPPER") {
        return Err("cargo llvm-cov show-env named no compiler wrapper".into());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcov_records_are_read() {
        let root = Path::new("/r");
        let text =
            "TN:\nSF:/r/src/a.rs\nFN:1,f\nDA:1,3\nDA:2,0\nDA:4,1\nLF:4\nLH:2\nend_of_record\n";
        let files = files_of(root, text).unwrap();
        let a = &files["src/a.rs"];
        assert_eq!(a.lines, vec![(1, true), (2, false), (4, true)]);
        assert_eq!(
            a.summary,
            Count {
                covered: 2,
                total: 4
            }
        );
        assert!(files_of(root, "SF:/r/x.rs\nDA:1\nend_of_record\n").is_err());
    }

    #[test]
    fn test_items_and_functions_are_found_by_layout() {
        let text =
            "fn a() {\n    x();\n}\n\n#[cfg(test)]\n#[allow(x)]\nmod tests {\n    fn b() {}\n}\n";
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(closing_line(&lines, 0), Some(2));
        assert_eq!(closing_line(&lines, 6), Some(8));
        assert_eq!(closing_line(&lines, 7), Some(7));
        assert_eq!(function_name("pub(super) fn written("), "written");
        assert_eq!(function_name("pub fn poll_transmit<'a>("), "poll_transmit");
        assert_eq!(lines_list(&[3, 7, 8, 9, 12]), "3, 7-9, 12");
    }
}
