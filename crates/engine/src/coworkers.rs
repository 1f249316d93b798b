//! Loading coworker definitions from `coworkers/*.toml` into the database at start-up.

use std::path::Path;

use coworker_core::coworker::CoworkerDef;
use coworker_store::{Coworker, CoworkerSpec, Store, StoreError};

/// Why the coworker definitions could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A definition is invalid.
    #[error("{0}")]
    Invalid(#[from] coworker_core::coworker::CoworkerDefError),
    /// Two files define the same handle.
    #[error("{second}: handle \"{handle}\" is already defined in {first}\n  fix: give each coworker its own handle")]
    DuplicateHandle {
        /// The handle.
        handle: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The coworker created when none is defined anywhere, so a fresh install can take tasks.
pub fn default_assistant() -> CoworkerDef {
    CoworkerDef {
        name: "Assistant".into(),
        handle: "assistant".into(),
        role: "General assistant for the team: researches questions, drafts documents and summaries, and keeps \
               track of follow-ups. Asks before sending anything outside the team."
            .into(),
        manager: String::new(),
        model: None,
        tools: vec!["*".into()],
        timezone: "UTC".into(),
        working_hours: String::new(),
        approval_channel: String::new(),
        policy: Default::default(),
        plan_review: false,
        budget: Default::default(),
        limits: Default::default(),
        provenance: Default::default(),
    }
}

fn sqlx_error(error: serde_json::Error) -> coworker_store::SqlxError {
    coworker_store::SqlxError::Encode(Box::new(error))
}

/// Stores (creates or updates, by handle) one definition.
pub async fn upsert(store: &Store, def: &CoworkerDef) -> Result<Coworker, StoreError> {
    let manager_user_id = if def.manager.is_empty() {
        None
    } else {
        store
            .list_users()
            .await?
            .into_iter()
            // Case-insensitive, as `Store::link_managed_coworkers` links a manager who joins later.
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(def.manager.trim()))
            })
            .map(|u| u.id)
    };
    store
        .upsert_coworker(&CoworkerSpec {
            handle: def.handle.clone(),
            name: def.name.clone(),
            job_description: def.role.clone(),
            manager_user_id,
            timezone: def.timezone.clone(),
            settings: serde_json::to_value(def).map_err(|e| StoreError::Database(sqlx_error(e)))?,
        })
        .await
}

/// Reads every `*.toml` in `dir` (missing dir = none), validates them all before writing
/// any, and upserts them. With no definitions and no coworker in the database, creates the
/// default assistant. Returns the coworkers loaded from files.
pub async fn sync_from_dir(store: &Store, dir: &Path) -> Result<Vec<Coworker>, LoadError> {
    let mut defs: Vec<(String, CoworkerDef)> = Vec::new();
    if dir.is_dir() {
        let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
                path: name.clone(),
                source,
            })?;
            let def = CoworkerDef::parse(&name, &text)?;
            if let Some((first, _)) = defs.iter().find(|(_, d)| d.handle == def.handle) {
                return Err(LoadError::DuplicateHandle {
                    handle: def.handle,
                    first: first.clone(),
                    second: name,
                });
            }
            defs.push((name, def));
        }
    }
    let mut loaded = Vec::new();
    for (_, def) in &defs {
        loaded.push(upsert(store, def).await?);
    }
    if defs.is_empty() && store.list_coworkers().await?.is_empty() {
        upsert(store, &default_assistant()).await?;
    }
    Ok(loaded)
}
