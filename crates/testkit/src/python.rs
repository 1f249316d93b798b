//! Python tools for tests — Schemathesis, which fuzzes the API from its OpenAPI document —
//! installed from PyPI at a pinned version into a virtual environment shared by every test
//! and run (`COWORKER_TEST_VENV`, default `$HOME/.cache/coworker/venv`). Installs only when
//! the pinned version is missing, under a file lock so parallel tests do not race.
//! `.ci/run` creates the same environment up front.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the shared virtual environment.
pub const VENV_ENV: &str = "COWORKER_TEST_VENV";

/// The Schemathesis version the API tests run (`.ci/run` installs the same).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The shared virtual environment's directory.
pub fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(VENV_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is set (or set COWORKER_TEST_VENV)");
    PathBuf::from(home).join(".cache/coworker/venv")
}

/// The version of `package` installed in the virtual environment at `venv`, if any.
fn installed_version(venv: &Path, package: &str) -> Option<String> {
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))",
            package,
        ])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The shared virtual environment with each `(package, version)` installed (pip, pinned),
/// creating it and installing what is missing first, under the same lock as [`schemathesis`].
/// Returns the environment's directory.
///
/// Panics (it is a test helper) when `python3`, its `venv` module or the install fails.
pub fn ensure_installed(packages: &[(&str, &str)]) -> PathBuf {
    let venv = venv_dir();
    let missing = |venv: &Path| {
        packages
            .iter()
            .filter(|(p, v)| installed_version(venv, p).as_deref() != Some(*v))
            .map(|(p, v)| format!("{p}=={v}"))
            .collect::<Vec<_>>()
    };
    if missing(&venv).is_empty() {
        return venv;
    }
    let parent = venv.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    let lock = std::fs::File::create(parent.join(".venv-install.lock")).expect("venv install lock file");
    lock.lock().expect("lock the venv");
    let wanted = missing(&venv);
    if wanted.is_empty() {
        return venv;
    }
    if !venv.join("bin/python").exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "creating the test virtual environment (Debian needs the python3-venv package)",
        );
    }
    let mut pip = Command::new(venv.join("bin/python"));
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(&wanted);
    run(&mut pip, "pip install");
    venv
}

/// The `st` (Schemathesis) executable at [`SCHEMATHESIS_VERSION`], creating the virtual
/// environment and installing it first when needed.
///
/// Panics (it is a test helper) when `python3` or its `venv` module is missing or the
/// install fails — with pip's output.
pub fn schemathesis() -> PathBuf {
    let venv = venv_dir();
    let st = venv.join("bin/st");
    if st.exists() && installed_version(&venv, "schemathesis").as_deref() == Some(SCHEMATHESIS_VERSION) {
        return st;
    }
    let parent = venv.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    let lock = std::fs::File::create(parent.join(".venv-install.lock")).expect("venv install lock file");
    lock.lock().expect("lock the venv");
    // Another test may have installed it while we waited for the lock.
    if st.exists() && installed_version(&venv, "schemathesis").as_deref() == Some(SCHEMATHESIS_VERSION) {
        return st;
    }
    if !venv.join("bin/python").exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "creating the test virtual environment (Debian needs the python3-venv package)",
        );
    }
    run(
        Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ]),
        "pip install schemathesis",
    );
    assert!(
        st.exists(),
        "pip installed schemathesis but {} is missing",
        st.display()
    );
    st
}
