//! Encrypted secrets: values round-trip and are audited; the wrong master key or a
//! ciphertext moved to another name is refused with a clear error, not garbage; the key file
//! is created 0600, refused when others can read it, and loses to `COWORKER_MASTER_KEY`.

use std::path::Path;

use coworker_core::config::Config;
use coworker_store::{AuditFilter, SecretWrite, Store, actions};
use coworker_testkit::{TestDb, backend_tests};
use coworker_tools::mcp::SecretSource;
use coworker_tools::secrets::{ExposeSecret, KeySource, MasterKey, SecretString, Secrets, SecretsError};

backend_tests!(
    values_round_trip_and_every_change_and_use_is_audited,
    wrong_master_key_is_a_clear_error,
    ciphertext_moved_to_another_name_is_refused,
    names_and_values_are_checked_before_anything_is_stored,
    key_file_is_created_0600_once_and_reused,
);

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

fn env_key(hex: &str) -> MasterKey {
    MasterKey::resolve(&Config::default(), Some(&SecretString::from(hex))).unwrap()
}

fn config_with_data_dir(dir: &Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.display().to_string();
    config
}

async fn actions_logged(store: &Store) -> Vec<(String, String, String)> {
    store
        .audit_list(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.actor, r.action, r.subject))
        .collect()
}

async fn values_round_trip_and_every_change_and_use_is_audited(db: &TestDb) {
    let secrets = Secrets::with_key(db.store.clone(), env_key(KEY_A));
    let value = "ghp_Zx9 ünïcode ✓ value";
    assert_eq!(
        secrets
            .set("github.token", SecretString::from(value), "cli")
            .await
            .unwrap(),
        SecretWrite::Created
    );
    let sealed = db.store.secret_get("github.token").await.unwrap().unwrap();
    assert_eq!(sealed.nonce.len(), 24);
    assert!(
        !sealed.ciphertext.windows(value.len()).any(|w| w == value.as_bytes()),
        "the value is not stored in the clear"
    );

    let got = secrets
        .get_for("github.token", "coworker:assistant")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose_secret(), value);
    assert_eq!(secrets.get("missing").await.unwrap().map(|_| ()), None);
    let from_source = secrets.secret("github.token").await.unwrap();
    assert_eq!(from_source.as_deref(), Some(value), "the MCP secret source resolves it");

    // A new value gets a new nonce.
    assert_eq!(
        secrets
            .set("github.token", SecretString::from("v2"), "user:ann")
            .await
            .unwrap(),
        SecretWrite::Updated
    );
    let resealed = db.store.secret_get("github.token").await.unwrap().unwrap();
    assert_ne!(resealed.nonce, sealed.nonce);
    assert_eq!(
        secrets.get("github.token").await.unwrap().unwrap().expose_secret(),
        "v2"
    );

    let listed = secrets.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "github.token");
    assert_eq!(listed[0].created_by, "cli");
    assert!(listed[0].last_used_at_ms.is_some(), "use is recorded");
    let listed_json = serde_json::to_string(&listed).unwrap();
    assert!(
        !listed_json.contains("v2") && !listed_json.contains("ghp_"),
        "{listed_json}"
    );

    assert!(secrets.delete("github.token", "cli").await.unwrap());
    assert!(!secrets.delete("github.token", "cli").await.unwrap());
    assert_eq!(secrets.get("github.token").await.unwrap().map(|_| ()), None);

    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        actions_logged(&db.store).await,
        [
            s("cli", actions::SECRET_CREATED, "github.token"),
            s("coworker:assistant", actions::SECRET_USED, "github.token"),
            s("system", actions::SECRET_USED, "github.token"),
            s("user:ann", actions::SECRET_UPDATED, "github.token"),
            s("system", actions::SECRET_USED, "github.token"),
            s("cli", actions::SECRET_DELETED, "github.token"),
        ]
    );
    let audit_text = serde_json::to_string(&db.store.audit_list(&AuditFilter::default()).await.unwrap()).unwrap();
    assert!(
        !audit_text.contains("ghp_") && !audit_text.contains("\"v2\""),
        "no values in the audit log"
    );
    assert!(db.store.audit_verify().await.unwrap().is_intact());
}

async fn wrong_master_key_is_a_clear_error(db: &TestDb) {
    let with_a = Secrets::with_key(db.store.clone(), env_key(KEY_A));
    with_a.set("slack", SecretString::from("xoxb-1"), "cli").await.unwrap();
    let with_b = Secrets::with_key(db.store.clone(), env_key(KEY_B));
    let err = with_b.get("slack").await.unwrap_err();
    assert!(matches!(err, SecretsError::Undecryptable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("secret slack cannot be decrypted: the master key differs from the one it was stored with"),
        "{message}"
    );
    assert!(
        message.contains("COWORKER_MASTER_KEY"),
        "names where the key came from: {message}"
    );
    // A refused use is not recorded as a use.
    assert!(
        !actions_logged(&db.store)
            .await
            .iter()
            .any(|(_, action, _)| action == actions::SECRET_USED)
    );
    assert_eq!(
        db.store.secret_meta("slack").await.unwrap().unwrap().last_used_at_ms,
        None
    );
}

async fn ciphertext_moved_to_another_name_is_refused(db: &TestDb) {
    let secrets = Secrets::with_key(db.store.clone(), env_key(KEY_A));
    secrets.set("low", SecretString::from("harmless"), "cli").await.unwrap();
    secrets
        .set("high", SecretString::from("prod-admin"), "cli")
        .await
        .unwrap();
    // Someone with database access copies the admin token's row over another name.
    let mut high = db.store.secret_get("high").await.unwrap().unwrap();
    high.name = "low".into();
    db.store.secret_put(&high, "mallory").await.unwrap();
    let err = secrets.get("low").await.unwrap_err();
    assert!(
        matches!(err, SecretsError::Undecryptable { ref name, .. } if name == "low"),
        "{err:?}"
    );
    assert_eq!(
        secrets.get("high").await.unwrap().unwrap().expose_secret(),
        "prod-admin"
    );
}

async fn names_and_values_are_checked_before_anything_is_stored(db: &TestDb) {
    let secrets = Secrets::with_key(db.store.clone(), env_key(KEY_A));
    for bad in ["", "with space", "a/b", &"n".repeat(129)] {
        let err = secrets.set(bad, SecretString::from("v"), "cli").await.unwrap_err();
        assert!(matches!(err, SecretsError::InvalidName { .. }), "{bad}: {err:?}");
    }
    let err = secrets.set("empty", SecretString::from(""), "cli").await.unwrap_err();
    assert!(matches!(err, SecretsError::EmptyValue { .. }), "{err:?}");
    let huge = "x".repeat(coworker_tools::secrets::MAX_SECRET_VALUE_BYTES + 1);
    let err = secrets.set("huge", SecretString::from(huge), "cli").await.unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    assert!(secrets.list().await.unwrap().is_empty());
    assert!(actions_logged(&db.store).await.is_empty());
}

async fn key_file_is_created_0600_once_and_reused(db: &TestDb) {
    let data_dir = db.subdir("data");
    let config = config_with_data_dir(&data_dir);
    let key_path = data_dir.join("master.key");
    let first = MasterKey::resolve(&config, None).unwrap();
    assert_eq!(first.source(), &KeySource::File(key_path.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "created owner-only");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "master.key")
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");

    Secrets::with_key(db.store.clone(), first)
        .set("k", SecretString::from("kept"), "cli")
        .await
        .unwrap();
    // Reopening reads the same key back.
    let again = Secrets::open(db.store.clone(), &config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.get("k").await.unwrap().unwrap().expose_secret(), "kept");
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, format!("{KEY_A}\n")).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = MasterKey::load_or_create_file(&path).unwrap_err();
        assert!(matches!(err, SecretsError::InsecureKeyFile { .. }), "{mode:o}: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!("fix: chmod 600 {}", path.display())),
            "{message}"
        );
        assert!(!message.contains(KEY_A), "{message}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(MasterKey::load_or_create_file(&path).is_ok());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        KEY_A,
        "an existing key is never replaced"
    );
}

#[cfg(unix)]
#[test]
fn key_file_without_a_key_is_explained() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (content, expected) in [
        ("", "is empty"),
        ("abc\n", "characters long"),
        ("not hex!", "characters long"),
    ] {
        let path = dir.path().join(format!("key-{}", content.len()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, content.as_bytes()).unwrap();
        let err = MasterKey::load_or_create_file(&path).unwrap_err();
        assert!(matches!(err, SecretsError::InvalidKeyFile { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn env_key_wins_over_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_data_dir(dir.path());
    let from_file = MasterKey::resolve(&config, None).unwrap();
    assert!(matches!(from_file.source(), KeySource::File(_)));
    let from_env = MasterKey::resolve(&config, Some(&SecretString::from(KEY_B))).unwrap();
    assert_eq!(from_env.source(), &KeySource::Env);
    // An empty variable counts as unset.
    let empty = MasterKey::resolve(&config, Some(&SecretString::from(""))).unwrap();
    assert!(matches!(empty.source(), KeySource::File(_)));
}

#[test]
fn processes_racing_to_create_the_key_file_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("master.key");
    let barrier = std::sync::Barrier::new(8);
    let keys: Vec<MasterKey> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    MasterKey::load_or_create_file(&path).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk.trim().len(), 64);
    // Every racer holds the key on disk: a value sealed by one opens with all the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = TestDb::new(coworker_testkit::Backend::Sqlite).await.unwrap();
        let mut keys = keys.into_iter();
        let first = Secrets::with_key(db.store.clone(), keys.next().unwrap());
        first.set("shared", SecretString::from("same"), "cli").await.unwrap();
        for key in keys {
            let other = Secrets::with_key(db.store.clone(), key);
            assert_eq!(other.get("shared").await.unwrap().unwrap().expose_secret(), "same");
        }
    });
}
