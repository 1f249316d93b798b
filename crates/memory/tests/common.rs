//! Helpers shared by the memory test files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use coworker_core::config::MemoryConfig;
use coworker_memory::{Embedder, Memory, NewItem, Scope};
use coworker_store::Store;

/// The local model the tests use: `COWORKER_TEST_MODEL_DIR` (set by `.ci/run`, which
/// installs it from PyPI), else the directory `coworker memory install-model` uses.
/// Panics when neither holds a model: these tests must run, not skip.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COWORKER_TEST_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let fallback = coworker_memory::embed::default_model_dir().expect("HOME is set");
    assert!(
        fallback.join("model.safetensors").is_file(),
        "no local model for the tests: run `coworker memory install-model` or set COWORKER_TEST_MODEL_DIR (.ci/run does)"
    );
    fallback
}

/// The local embedder, loaded once per test binary.
pub fn local_embedder() -> Embedder {
    static EMBEDDER: std::sync::OnceLock<Embedder> = std::sync::OnceLock::new();
    EMBEDDER
        .get_or_init(|| Embedder::local(&model_dir()).expect("the test model loads"))
        .clone()
}

/// Memory over `store` with `embedder` and default settings.
pub async fn open(store: &Store, embedder: Embedder) -> Arc<Memory> {
    Memory::open(store.clone(), embedder, MemoryConfig::default())
        .await
        .expect("memory opens")
}

/// An approved org-or-other-scope fact added by a person.
pub fn fact(scope: Scope, text: &str) -> NewItem {
    NewItem {
        kind: "fact",
        scope,
        text: text.to_owned(),
        occurred_at_ms: None,
        status: "approved",
        source: "human",
        source_task_id: None,
        created_by_user_id: None,
        details: serde_json::json!({}),
        actor: "system".to_owned(),
    }
}
