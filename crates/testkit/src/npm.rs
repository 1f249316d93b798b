//! npm packages for tests — the real MCP reference servers — installed at the exact versions
//! pinned in `npm-packages.txt` into a prefix shared by every test and run
//! (`COWORKER_TEST_NPM_PREFIX`, default `$HOME/.cache/coworker/npm`). Installs only what is
//! missing, under a file lock so parallel tests (and processes) do not race. `.ci/run`
//! installs the same list up front.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the shared npm prefix.
pub const NPM_PREFIX_ENV: &str = "COWORKER_TEST_NPM_PREFIX";

/// The pinned packages, `name@version` per line (comments start with `#`).
pub const PINNED_PACKAGES: &str = include_str!("../npm-packages.txt");

/// The shared prefix packages are installed into.
pub fn npm_prefix() -> PathBuf {
    if let Some(prefix) = std::env::var_os(NPM_PREFIX_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(prefix);
    }
    let home = std::env::var_os("HOME").expect("HOME is set (or set COWORKER_TEST_NPM_PREFIX)");
    PathBuf::from(home).join(".cache/coworker/npm")
}

/// `(name, version)` of every pinned package.
pub fn pinned_packages() -> Vec<(&'static str, &'static str)> {
    PINNED_PACKAGES
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            // The version follows the last '@' (scoped names start with one).
            let at = line
                .rfind('@')
                .filter(|&i| i > 0)
                .expect("npm-packages.txt lines are name@version");
            (&line[..at], &line[at + 1..])
        })
        .collect()
}

/// The executable `bin` of `package` (one of the pinned packages), installing the pinned
/// packages first if this one is missing or at another version.
///
/// Panics (it is a test helper) when the package is not pinned, npm is missing, or the
/// install fails — with npm's output.
pub fn npm_package_bin(package: &str, bin: &str) -> PathBuf {
    let pinned = pinned_packages();
    let Some((_, version)) = pinned.iter().find(|(name, _)| *name == package) else {
        panic!("{package} is not pinned; add `{package}@VERSION` to crates/testkit/npm-packages.txt");
    };
    let prefix = npm_prefix();
    let bin_path = prefix.join("node_modules").join(".bin").join(bin);
    if installed_version(&prefix, package).as_deref() == Some(*version) && bin_path.exists() {
        return bin_path;
    }
    std::fs::create_dir_all(&prefix).unwrap_or_else(|e| panic!("cannot create {}: {e}", prefix.display()));
    let lock = std::fs::File::create(prefix.join(".install.lock")).expect("npm install lock file");
    lock.lock().expect("lock the npm prefix");
    // Another test may have installed it while we waited for the lock.
    if installed_version(&prefix, package).as_deref() != Some(*version) || !bin_path.exists() {
        let specs: Vec<String> = pinned
            .iter()
            .map(|(name, version)| format!("{name}@{version}"))
            .collect();
        let output = Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .args(&specs)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm ({e}); install Node.js and npm to run the MCP tests"));
        assert!(
            output.status.success(),
            "npm install {} failed:\n{}\n{}",
            specs.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = lock.unlock();
    assert!(
        bin_path.exists(),
        "{package}@{version} is installed but has no executable {}",
        bin_path.display()
    );
    bin_path
}

fn installed_version(prefix: &Path, package: &str) -> Option<String> {
    let manifest = prefix.join("node_modules").join(package).join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_scoped_names() {
        let pinned = pinned_packages();
        assert!(pinned.contains(&("@modelcontextprotocol/server-everything", "2026.8.31")));
        assert!(
            pinned
                .iter()
                .all(|(name, version)| !name.is_empty() && !version.is_empty())
        );
    }
}
