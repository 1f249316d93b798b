//! `coworker connect` through the real binary on an SQLite data dir: the catalog is listed,
//! a catalog connector is set up in one step (stored as `mcp add` would, with its risk
//! overrides applied to its tools), an unknown name gets a suggestion, and an OpenAPI
//! document is imported, listed and removed; a malformed one is refused with pointers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use coworker_core::config::Config;
use coworker_core::domain::RiskClass;
use coworker_tools::mcp::{all_servers, annotations};

fn coworker(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coworker"));
    command
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Ran {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run coworker");
    let ran = Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!ran.stderr.contains("panicked"), "the binary panicked:\n{}", ran.stderr);
    ran
}

struct Install {
    _temp: tempfile::TempDir,
    cwd: PathBuf,
    data: PathBuf,
}

impl Install {
    fn new() -> Install {
        let temp = tempfile::tempdir().unwrap();
        let cwd = temp.path().to_owned();
        let data = cwd.join("data");
        let install = Install { _temp: temp, cwd, data };
        let migrated = run(&mut install.cmd(&["migrate"]));
        assert_eq!(migrated.code, 0, "{}", migrated.stderr);
        install
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut command = coworker(&self.cwd);
        command.args(args).arg("--data-dir").arg(&self.data);
        command
    }

    async fn store(&self) -> coworker_store::Store {
        let mut config = Config::default();
        config.storage.data_dir = self.data.display().to_string();
        coworker_store::Store::open(&config.storage, &self.data).await.unwrap()
    }
}

#[tokio::test]
async fn catalog_connectors_are_listed_and_set_up_with_their_overrides() {
    let install = Install::new();
    let listed = run(&mut install.cmd(&["connect", "--list"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    for name in [
        "github",
        "linear",
        "hubspot",
        "notion",
        "gmail",
        "salesforce",
        "jira",
        "stripe",
        "postgres",
        "filesystem",
    ] {
        assert!(listed.stdout.contains(name), "{name} in {}", listed.stdout);
    }

    let unknown = run(&mut install.cmd(&["connect", "hubspto"]));
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("did you mean \"hubspot\""),
        "{}",
        unknown.stderr
    );
    let oauth = run(&mut install.cmd(&["connect", "gmail"]));
    assert_ne!(oauth.code, 0);
    assert!(oauth.stderr.contains("OAuth"), "{}", oauth.stderr);
    // A remote OAuth entry (issue 17) is stored as an OAuth server and prints where people
    // connect; `connect list` names it; revoking an unknown connection is an error.
    let sentry = run(&mut install.cmd(&["connect", "sentry", "--url", "http://127.0.0.1:9/mcp"]));
    assert_eq!(sentry.code, 0, "{}", sentry.stderr);
    assert!(
        sentry.stdout.contains("/settings/connections/sentry/connect"),
        "{}",
        sentry.stdout
    );
    let oauth_list = run(&mut install.cmd(&["connect", "list", "--json"]));
    assert_eq!(oauth_list.code, 0, "{}", oauth_list.stderr);
    assert!(oauth_list.stdout.contains("\"oauth_server\""), "{}", oauth_list.stdout);
    assert!(oauth_list.stdout.contains("\"sentry\""), "{}", oauth_list.stdout);
    let revoke = run(&mut install.cmd(&["connect", "revoke", "0192f0c4-6a3e-7c1d-9a53-1f0e2b3c4d5e"]));
    assert_ne!(revoke.code, 0);
    assert!(revoke.stderr.contains("no OAuth connection"), "{}", revoke.stderr);
    let missing = run(&mut install.cmd(&["connect", "filesystem"]));
    assert_ne!(missing.code, 0);
    assert!(missing.stderr.contains("--set path="), "{}", missing.stderr);

    let connected = run(&mut install.cmd(&["connect", "hubspot", "--secret", "crm-token"]));
    assert_eq!(connected.code, 0, "{}", connected.stderr);
    assert!(
        connected.stdout.contains("coworker secrets set crm-token"),
        "{}",
        connected.stdout
    );
    let shared = install.cwd.join("shared");
    let fs = run(&mut install.cmd(&["connect", "filesystem", "--set", &format!("path={}", shared.display())]));
    assert_eq!(fs.code, 0, "{}", fs.stderr);

    let store = install.store().await;
    let (servers, problems) = all_servers(&Config::default(), &store).await.unwrap();
    store.close().await;
    assert!(problems.is_empty(), "{problems:?}");
    let hubspot = servers.iter().find(|s| s.config.name == "hubspot").expect("stored");
    assert_eq!(hubspot.config.command, "npx");
    assert_eq!(
        hubspot.config.env.get("PRIVATE_APP_ACCESS_TOKEN").map(String::as_str),
        Some("secret:crm-token")
    );
    // The overrides decide the risk whatever the server's annotations say.
    let risk = |tool: &str| {
        annotations::classify(
            &annotations::AnnotationHints {
                read_only: Some(true),
                ..Default::default()
            },
            &hubspot.config.tools,
            &[tool],
        )
        .risk
    };
    assert_eq!(
        risk("hubspot-batch-update-objects"),
        RiskClass::Write,
        "a CRM update is a write"
    );
    assert_eq!(risk("hubspot-list-objects"), RiskClass::Read);
    let files = servers.iter().find(|s| s.config.name == "filesystem").expect("stored");
    assert_eq!(files.config.args.last().map(PathBuf::from), Some(shared));
}

#[tokio::test]
async fn an_openapi_document_is_imported_listed_and_removed() {
    let install = Install::new();
    let spec = install.cwd.join("petstore.yaml");
    std::fs::write(&spec, coworker_testkit::openapi::PETSTORE_30_YAML).unwrap();
    let spec = spec.display().to_string();
    let imported = run(&mut install.cmd(&[
        "connect",
        "openapi",
        "pets",
        "--spec",
        &spec,
        "--auth",
        "secret:pets-key",
        "--risk",
        "createPets=external",
    ]));
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert!(
        imported.stdout.contains("pets.createPets") && imported.stdout.contains("external"),
        "{}",
        imported.stdout
    );
    assert!(
        imported.stdout.contains("http://petstore.swagger.io/v1"),
        "{}",
        imported.stdout
    );
    assert!(
        imported.stderr.contains("coworker secrets set pets-key"),
        "{}",
        imported.stderr
    );

    let listed = run(&mut install.cmd(&["connect", "list", "--json"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rows[0]["name"], "pets");
    assert_eq!(rows[0]["operations"], 3);
    assert_eq!(rows[0]["secret"], "pets-key");

    let broken = install.cwd.join("broken.yaml");
    std::fs::write(
        &broken,
        coworker_testkit::openapi::PETSTORE_30_YAML
            .replace("      responses:\n        '201':", "      x-responses:\n        '201':"),
    )
    .unwrap();
    let refused = run(&mut install.cmd(&["connect", "openapi", "other", "--spec", &broken.display().to_string()]));
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("/paths/~1pets/post/responses: is required by OpenAPI 3.0 but missing"),
        "{}",
        refused.stderr
    );

    let removed = run(&mut install.cmd(&["connect", "remove", "pets"]));
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let again = run(&mut install.cmd(&["connect", "remove", "pets"]));
    assert_ne!(again.code, 0);
}
