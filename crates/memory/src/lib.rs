//! Coworker's memory: facts and episodes, embedded and retrieved by hybrid search (full-text
//! rank and vector similarity fused by reciprocal rank, then recency and use count), always
//! filtered to the scopes the caller may see; plus consolidation and decay.
//!
//! Architecture invariants:
//! - Every read takes the list of scopes it may see; there is no unscoped search.
//! - Only `approved` items are retrieved; proposals wait for review, archived items stay
//!   listable but are never returned by search.
//! - The vector index is a derived copy of the store, rebuilt at start and kept current by
//!   reading changed rows; the store is the truth.
//! - Embedding runs off the async threads (the local model on a blocking thread).

pub mod consolidate;
pub mod embed;
pub mod index;
pub mod install;
pub mod scope;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use coworker_core::config::MemoryConfig;
use coworker_core::{MemoryId, TaskId, UserId};
use coworker_store::{Inserted, MemoryItem, NewMemoryItem, Store, StoreError, decode_vector};
use serde::Serialize;
use tokio::sync::{Mutex, RwLock};

pub use embed::Embedder;
pub use index::{KindFilter, VectorIndex};
pub use scope::{Scope, ScopeParseError, episode_scope, visible_from, visible_to_task};

/// Most hits one search returns.
pub const MAX_SEARCH_LIMIT: usize = 50;

/// Candidates each ranker (full text, vectors) contributes to fusion.
pub const CANDIDATES_PER_RANKER: usize = 60;

/// Reciprocal rank fusion constant. Smaller than the customary 60 so the first few ranks of
/// each list dominate: on the LoCoMo conversations (3 of 10, 383 questions) k = 5 raised
/// recall@5 from 0.49 (k = 60) to 0.59, against 0.57 for full text alone.
pub const RRF_K: f64 = 5.0;

/// Weight of the vector list in the fusion (full text has 1): MiniLM alone finds fewer of
/// the cited turns than BM25 there (0.39 vs 0.57), but fused at 0.7 it adds what words miss.
pub const VECTOR_RRF_WEIGHT: f64 = 0.7;

/// Share of a hit's score that the items next to it in the same import (the line before and
/// after, from the same source and with the same time) gain. In a conversation or a document
/// the passage that answers a question is often beside the one that shares its words: on the
/// LoCoMo conversations 0.4 raised recall@5 (see `benches/locomo.rs`).
pub const NEIGHBOUR_SHARE: f64 = 0.4;

/// Most items stored in one call (an import sends batches of at most this many).
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Longest search query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Overlap, in ms, when the index catches up with changed rows: rows committed late by
/// another node with a slightly older `updated_at_ms` are still picked up.
pub const SYNC_OVERLAP_MS: i64 = 5_000;

/// Rows read per page while the index catches up.
const SYNC_PAGE_ROWS: i64 = 5_000;

/// Longest a search waits before looking for other nodes' writes, in ms (this node's own
/// writes are in the index before they return).
pub const SYNC_INTERVAL_MS: i64 = 1_000;

/// What went wrong in memory. Messages say what, on what input, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The input was refused; nothing was stored.
    #[error("{message}")]
    Invalid {
        /// What was wrong.
        message: String,
    },
    /// The local model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] coworker_embed_local::EmbedError),
    /// A remote embedder failed.
    #[error("embedding failed: {0}")]
    Embedding(String),
    /// Installing the model failed.
    #[error("installing the model failed: {0}")]
    Install(String),
    /// Consolidation's model call failed.
    #[error("consolidation failed: {0}")]
    Consolidation(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MemoryError {
    fn invalid(message: impl Into<String>) -> Self {
        MemoryError::Invalid {
            message: message.into(),
        }
    }
}

/// A fact or episode to store.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// `fact` or `episode`.
    pub kind: &'static str,
    /// Where it belongs.
    pub scope: Scope,
    /// The text.
    pub text: String,
    /// When the thing it records happened, epoch ms.
    pub occurred_at_ms: Option<i64>,
    /// `approved` or `proposed`.
    pub status: &'static str,
    /// `human`, `coworker`, `consolidation`, `import` or `task`.
    pub source: &'static str,
    /// The task it came from.
    pub source_task_id: Option<TaskId>,
    /// The person who added it.
    pub created_by_user_id: Option<UserId>,
    /// Kind-specific details.
    pub details: serde_json::Value,
    /// Who, for the history.
    pub actor: String,
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The query text.
    pub text: String,
    /// The scopes the searcher may see.
    pub scopes: Vec<String>,
    /// Facts, episodes or both.
    pub kind: KindFilter,
    /// Hits wanted (1..=50).
    pub limit: usize,
}

/// How a hit's score was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreComponents {
    /// Rank in the full-text list (1 = best), if it was there.
    pub fulltext_rank: Option<u32>,
    /// Full-text score (bm25 / ts_rank_cd; higher is better).
    pub fulltext_score: Option<f64>,
    /// Rank in the vector list (1 = best), if it was there.
    pub vector_rank: Option<u32>,
    /// Cosine similarity to the query.
    pub vector_similarity: Option<f64>,
    /// Reciprocal rank fusion of the two ranks.
    pub rrf: f64,
    /// Recency in 0..=1 (1 = today), from when it happened or was stored.
    pub recency: f64,
    /// How many tasks used it.
    pub use_count: i64,
    /// What it gained from a strong hit next to it in the same import (see
    /// [`NEIGHBOUR_SHARE`]).
    pub neighbour: f64,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hit {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: MemoryId,
    /// The whole stored text.
    pub text: String,
    /// Scope.
    pub scope: String,
    /// `fact` or `episode`.
    pub kind: String,
    /// Final score (higher is better).
    pub score: f64,
    /// How the score was made.
    pub components: ScoreComponents,
    /// When it happened, epoch ms.
    pub occurred_at_ms: Option<i64>,
    /// Stored, epoch ms.
    pub created_at_ms: i64,
    /// The task it came from.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source_task_id: Option<TaskId>,
}

/// Search results with the time each step took.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// Best first.
    pub hits: Vec<Hit>,
    /// Embedding the query, µs.
    pub embed_micros: u64,
    /// Retrieval (full text, vectors, fusion, loading hits), µs.
    pub retrieve_micros: u64,
}

/// What storing a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AddOutcome {
    /// Ids in input order (an existing item's id for a duplicate).
    pub ids: Vec<MemoryId>,
    /// How many were new.
    pub added: usize,
    /// How many were already stored (same scope and text) and added nothing.
    pub duplicates: usize,
}

struct IndexState {
    index: VectorIndex,
    /// Highest `updated_at_ms` read so far.
    watermark_ms: i64,
    /// The `updated_at_ms` of each row as last applied (so a re-read window skips them).
    applied: HashMap<MemoryId, i64>,
}

/// The memory service: one per node, shared by the API, the engine and the jobs.
pub struct Memory {
    store: Store,
    embedder: Embedder,
    config: MemoryConfig,
    index: RwLock<IndexState>,
    sync_lock: Mutex<()>,
    /// When the last sync started, epoch ms.
    last_sync_ms: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("embedder", &self.embedder).finish()
    }
}

impl Memory {
    /// Opens memory over `store` with `embedder`, loading the vector index.
    pub async fn open(store: Store, embedder: Embedder, config: MemoryConfig) -> Result<Arc<Memory>, MemoryError> {
        let dims = match &embedder {
            Embedder::Local(model, _) => model.dims(),
            _ => 0,
        };
        let memory = Arc::new(Memory {
            store,
            embedder,
            config,
            index: RwLock::new(IndexState {
                index: VectorIndex::new(dims),
                watermark_ms: i64::MIN,
                applied: HashMap::new(),
            }),
            sync_lock: Mutex::new(()),
            last_sync_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        });
        memory.sync().await?;
        Ok(memory)
    }

    /// The embedder.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Live vectors in the index.
    pub async fn indexed(&self) -> usize {
        self.index.read().await.index.len()
    }

    /// Brings the vector index up to date with rows changed since it last looked (this
    /// node's writes and other nodes'). Reads only ids and change times first, so rows the
    /// index already holds cost no vector transfer; a search calls it at most every
    /// [`SYNC_INTERVAL_MS`], a write of this node always.
    pub async fn sync(&self) -> Result<(), MemoryError> {
        self.sync_inner(true).await
    }

    async fn sync_inner(&self, force: bool) -> Result<(), MemoryError> {
        let Some(embedder_id) = self.embedder.id() else {
            return Ok(());
        };
        if !force {
            let last = self.last_sync_ms.load(std::sync::atomic::Ordering::Relaxed);
            if coworker_store::now_ms().saturating_sub(last) < SYNC_INTERVAL_MS {
                return Ok(());
            }
        }
        let _guard = self.sync_lock.lock().await;
        let started_ms = coworker_store::now_ms();
        let mut since = {
            let state = self.index.read().await;
            if state.watermark_ms == i64::MIN {
                i64::MIN
            } else {
                state.watermark_ms - SYNC_OVERLAP_MS
            }
        };
        loop {
            let changes = self.store.memory_changes_since(since, SYNC_PAGE_ROWS).await?;
            let full_page = changes.len() as i64 == SYNC_PAGE_ROWS;
            let wanted: Vec<MemoryId> = {
                let state = self.index.read().await;
                changes
                    .iter()
                    .filter(|(id, at)| state.applied.get(id) != Some(at))
                    .map(|(id, _)| *id)
                    .collect()
            };
            for chunk in wanted.chunks(500) {
                let rows = self.store.memory_vectors(chunk).await?;
                let mut state = self.index.write().await;
                if state.index.dims() == 0
                    && let Some(first) = rows
                        .iter()
                        .find(|r| r.embedder.as_deref() == Some(embedder_id.as_str()))
                {
                    state.index = VectorIndex::new(first.embedding.len() / 4);
                }
                for row in &rows {
                    let vector =
                        (row.embedder.as_deref() == Some(embedder_id.as_str())).then(|| decode_vector(&row.embedding));
                    state
                        .index
                        .upsert(row.id, row.kind == "fact", &row.scope, &row.status, vector.as_deref());
                    state.applied.insert(row.id, row.updated_at_ms);
                }
            }
            if let Some((_, newest)) = changes.last() {
                let mut state = self.index.write().await;
                state.watermark_ms = state.watermark_ms.max(*newest);
            }
            match changes.last() {
                // A page may end inside a run of equal timestamps: continue from that time
                // (re-reading a few ids is harmless), but never loop on one timestamp.
                Some((_, last)) if full_page && *last > since => since = *last,
                Some(_) if full_page => since += 1,
                _ => break,
            }
        }
        self.last_sync_ms
            .store(started_ms, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Checks a text: not empty, not over `max_text_bytes`.
    pub fn check_text(&self, text: &str) -> Result<(), MemoryError> {
        if text.trim().is_empty() {
            return Err(MemoryError::invalid("the text is empty; say what should be remembered"));
        }
        let max = self.config.max_text_bytes as usize;
        if text.len() > max {
            return Err(MemoryError::invalid(format!(
                "the text is {} bytes, over the limit of {max} ([memory] max_text_bytes); split it into smaller facts",
                text.len()
            )));
        }
        Ok(())
    }

    /// Checks that a scope names something that exists (a project, a coworker, a user).
    pub async fn check_scope_exists(&self, scope: &Scope) -> Result<(), MemoryError> {
        let exists = match scope {
            Scope::Org => true,
            Scope::Project(slug) => self.store.project_by_slug(slug).await?.is_some(),
            Scope::Coworker(handle) => self.store.coworker_by_handle(handle).await?.is_some(),
            Scope::User(id) => self.store.get_user(*id).await?.is_some(),
        };
        if exists {
            Ok(())
        } else {
            Err(MemoryError::invalid(
                format!(
                    "unknown scope {scope:?}: no such {}; list them with `coworker projects` / `coworker coworkers`",
                    match scope {
                        Scope::Project(_) => "project",
                        Scope::Coworker(_) => "coworker",
                        _ => "user",
                    }
                )
                .replace(&format!("{scope:?}"), &format!("\"{scope}\"")),
            ))
        }
    }

    /// Validates every item, then embeds and stores them all in one transaction: either the
    /// whole batch is stored (duplicates adding nothing) or nothing is. Returns once every
    /// new item is embedded and searchable. `dry_run` validates only.
    pub async fn add_many(&self, items: Vec<NewItem>, dry_run: bool) -> Result<AddOutcome, MemoryError> {
        if items.len() > MAX_BATCH_ITEMS {
            return Err(MemoryError::invalid(format!(
                "{} items in one batch, over the limit of {MAX_BATCH_ITEMS}; send smaller batches",
                items.len()
            )));
        }
        for (i, item) in items.iter().enumerate() {
            self.check_text(&item.text)
                .map_err(|e| MemoryError::invalid(format!("item {}: {e}", i + 1)))?;
        }
        let mut checked: Vec<&Scope> = Vec::new();
        for item in &items {
            if !checked.contains(&&item.scope) {
                self.check_scope_exists(&item.scope).await?;
                checked.push(&item.scope);
            }
        }
        if dry_run {
            return Ok(AddOutcome::default());
        }
        let search_texts: Vec<String> = items
            .iter()
            .map(|i| text::search_text(&i.text, i.occurred_at_ms))
            .collect();
        // Embed only what is not stored yet: a re-import costs lookups, not model time.
        let existing = self.existing_keys(&items).await?;
        let to_embed: Vec<usize> = (0..items.len()).filter(|i| !existing[*i]).collect();
        let vectors = self
            .embedder
            .embed(to_embed.iter().map(|i| search_texts[*i].clone()).collect())
            .await?;
        let mut embedding_of: HashMap<usize, Vec<f32>> = HashMap::new();
        if let Some(vectors) = vectors {
            for (i, v) in to_embed.iter().zip(vectors) {
                embedding_of.insert(*i, v);
            }
        }
        let embedder_id = self.embedder.id();
        let rows: Vec<NewMemoryItem> = items
            .into_iter()
            .zip(search_texts)
            .enumerate()
            .map(|(i, (item, search_text))| NewMemoryItem {
                kind: item.kind.to_owned(),
                scope: item.scope.to_string(),
                text: item.text,
                search_text,
                status: item.status.to_owned(),
                source: item.source.to_owned(),
                source_task_id: item.source_task_id,
                created_by_user_id: item.created_by_user_id,
                details: item.details,
                occurred_at_ms: item.occurred_at_ms,
                actor: item.actor,
                embedding: embedder_id.clone().zip(embedding_of.remove(&i)),
            })
            .collect();
        let inserted = self.store.insert_memory_items(&rows).await?;
        self.sync().await?;
        let added = inserted.iter().filter(|i| matches!(i, Inserted::New(_))).count();
        Ok(AddOutcome {
            ids: inserted.iter().map(Inserted::id).collect(),
            added,
            duplicates: inserted.len() - added,
        })
    }

    async fn existing_keys(&self, items: &[NewItem]) -> Result<Vec<bool>, MemoryError> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(
                self.store
                    .memory_item_exists(&item.scope.to_string(), &item.text)
                    .await?,
            );
        }
        Ok(out)
    }

    /// Stores one item (see [`Memory::add_many`]).
    pub async fn add(&self, item: NewItem) -> Result<(MemoryId, bool), MemoryError> {
        // Checked here too, so a single item's error does not name a position.
        self.check_text(&item.text)?;
        let outcome = self.add_many(vec![item], false).await?;
        Ok((outcome.ids[0], outcome.added == 1))
    }

    /// Hybrid search: full-text and vector candidates (each at most
    /// [`CANDIDATES_PER_RANKER`]), fused by reciprocal rank, then weighted by recency and
    /// use count. Only approved items in `query.scopes`.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults, MemoryError> {
        if query.text.trim().is_empty() {
            return Err(MemoryError::invalid("the query is empty; say what to look for"));
        }
        if query.text.len() > MAX_QUERY_BYTES {
            return Err(MemoryError::invalid(format!(
                "the query is {} bytes, over the limit of {MAX_QUERY_BYTES}; shorten it",
                query.text.len()
            )));
        }
        if query.limit == 0 || query.limit > MAX_SEARCH_LIMIT {
            return Err(MemoryError::invalid(format!(
                "limit {} is out of range; use 1 to {MAX_SEARCH_LIMIT}",
                query.limit
            )));
        }
        let started = Instant::now();
        let vector = self
            .embedder
            .embed(vec![query.text.clone()])
            .await?
            .and_then(|mut v| v.pop());
        let embed_micros = started.elapsed().as_micros() as u64;
        let started = Instant::now();
        let hits = self.retrieve(query, vector.as_deref()).await?;
        Ok(SearchResults {
            hits,
            embed_micros,
            retrieve_micros: started.elapsed().as_micros() as u64,
        })
    }

    /// The retrieval step of [`Memory::search`] given the query's vector (benchmarks time it
    /// apart from embedding).
    pub async fn retrieve(&self, query: &SearchQuery, vector: Option<&[f32]>) -> Result<Vec<Hit>, MemoryError> {
        let started = Instant::now();
        self.sync_inner(false).await?;
        let synced = started.elapsed();
        let terms = text::query_terms(&query.text);
        let kind = match query.kind {
            KindFilter::Any => None,
            KindFilter::Facts => Some("fact"),
            KindFilter::Episodes => Some("episode"),
        };
        let fulltext = self
            .store
            .memory_fulltext(&terms, &query.scopes, &["approved"], kind, CANDIDATES_PER_RANKER as i64)
            .await?;
        let searched_text = started.elapsed();
        let vectors = match vector {
            Some(v) => self
                .index
                .read()
                .await
                .index
                .search(v, &query.scopes, query.kind, CANDIDATES_PER_RANKER),
            None => Vec::new(),
        };
        let searched_vectors = started.elapsed();
        let mut fused: HashMap<MemoryId, ScoreComponents> = HashMap::new();
        for (rank, (id, score)) in fulltext.iter().enumerate() {
            let c = fused.entry(*id).or_default();
            c.fulltext_rank = Some(rank as u32 + 1);
            c.fulltext_score = Some(*score);
            c.rrf += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
        for (rank, (id, similarity)) in vectors.iter().enumerate() {
            let c = fused.entry(*id).or_default();
            c.vector_rank = Some(rank as u32 + 1);
            c.vector_similarity = Some(f64::from(*similarity));
            c.rrf += VECTOR_RRF_WEIGHT / (RRF_K + rank as f64 + 1.0);
        }
        let ids: Vec<MemoryId> = fused.keys().copied().collect();
        let items = self.store.get_memory_items(&ids).await?;
        let now = coworker_store::now_ms();
        let mut places: Vec<Option<ImportPlace>> = Vec::with_capacity(items.len());
        let mut hits: Vec<Hit> = items
            .into_iter()
            // The index may lag a status change by one sync: the row is the truth.
            .filter(|item| item.status == "approved" && query.scopes.contains(&item.scope))
            .filter_map(|item| {
                let mut c = fused.remove(&item.id)?;
                let at = item
                    .last_used_at_ms
                    .unwrap_or(item.created_at_ms)
                    .max(item.created_at_ms);
                let age_days = ((now - at).max(0) as f64) / 86_400_000.0;
                c.recency = 0.5f64.powf(age_days / 90.0);
                c.use_count = item.use_count;
                // Fusion decides; recency and use only break near-ties (each at most +5%).
                let score = c.rrf * (1.0 + 0.05 * c.recency + 0.05 * ((1 + item.use_count) as f64).ln().min(1.0));
                places.push(ImportPlace::of(&item));
                Some(Hit {
                    id: item.id,
                    text: item.text,
                    scope: item.scope,
                    kind: item.kind,
                    score,
                    components: c,
                    occurred_at_ms: item.occurred_at_ms,
                    created_at_ms: item.created_at_ms,
                    source_task_id: item.source_task_id,
                })
            })
            .collect();
        lift_neighbours(&mut hits, &places);
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.as_uuid().cmp(&b.id.as_uuid())));
        hits.truncate(query.limit);
        tracing::debug!(
            sync_us = synced.as_micros() as u64,
            fulltext_us = (searched_text - synced).as_micros() as u64,
            vectors_us = (searched_vectors - searched_text).as_micros() as u64,
            load_us = (started.elapsed() - searched_vectors).as_micros() as u64,
            "memory retrieval"
        );
        Ok(hits)
    }

    /// Changes an item's status (approve, reject, archive, restore) with a history entry,
    /// and updates the index at once.
    pub async fn set_status(
        &self,
        id: MemoryId,
        from: &[&str],
        to: &str,
        actor: &str,
        detail: serde_json::Value,
    ) -> Result<bool, MemoryError> {
        let changed = self.store.set_memory_status(id, from, to, actor, detail).await?;
        self.sync().await?;
        Ok(changed)
    }

    /// Re-embeds every item whose vector is missing or came from another embedder, in
    /// batches; `progress(done, total)` after each. Returns how many were embedded.
    pub async fn reindex(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<u64, MemoryError> {
        let Some(embedder_id) = self.embedder.id() else {
            return Err(MemoryError::invalid(
                "the embedder is \"none\", so there is nothing to reindex; set [memory] embedder and restart",
            ));
        };
        let total = self.store.count_memory_items_to_embed(&embedder_id).await?.max(0) as u64;
        let mut done = 0u64;
        progress(0, total);
        loop {
            let batch = self.store.memory_items_to_embed(&embedder_id, 64).await?;
            if batch.is_empty() {
                break;
            }
            let texts = batch.iter().map(|(_, t)| t.clone()).collect();
            let vectors = self.embedder.embed(texts).await?.unwrap_or_default();
            for ((id, _), vector) in batch.iter().zip(&vectors) {
                self.store.set_memory_embedding(*id, &embedder_id, vector).await?;
            }
            done += batch.len() as u64;
            progress(done.min(total), total);
        }
        self.sync().await?;
        Ok(done)
    }

    /// Archives approved items that are old, unused and rarely used (thresholds from
    /// `[memory]`), each with a history entry. Nothing is deleted. Returns the ids.
    pub async fn decay(&self, now_ms: i64) -> Result<Vec<MemoryId>, MemoryError> {
        const DAY_MS: i64 = 86_400_000;
        let created_before = now_ms - i64::from(self.config.decay_after_days) * DAY_MS;
        let unused_since = now_ms - i64::from(self.config.decay_unused_days) * DAY_MS;
        let mut archived = Vec::new();
        loop {
            let stale = self
                .store
                .stale_memory_items(
                    created_before,
                    unused_since,
                    i64::from(self.config.decay_max_use_count),
                    200,
                )
                .await?;
            if stale.is_empty() {
                break;
            }
            for item in &stale {
                if self
                    .store
                    .set_memory_status(
                        item.id,
                        &["approved"],
                        "archived",
                        "system",
                        serde_json::json!({"reason": "decay", "use_count": item.use_count}),
                    )
                    .await?
                {
                    archived.push(item.id);
                }
            }
        }
        self.sync().await?;
        Ok(archived)
    }

    /// One item.
    pub async fn get(&self, id: MemoryId) -> Result<Option<MemoryItem>, MemoryError> {
        Ok(self.store.get_memory_item(id).await?)
    }
}

impl Memory {
    /// An existing fact in `scope` (approved or proposed) that `text` repeats: the same
    /// text, a vector at least [`consolidate::DUPLICATE_SIMILARITY`] similar, or (without
    /// vectors) a word overlap of at least [`consolidate::DUPLICATE_WORD_OVERLAP`].
    pub async fn near_duplicate(&self, scope: &Scope, text: &str) -> Result<Option<MemoryId>, MemoryError> {
        let scope_text = scope.to_string();
        let scopes = vec![scope_text.clone()];
        if let Some(vector) = self
            .embedder
            .embed(vec![text.to_owned()])
            .await?
            .and_then(|mut v| v.pop())
        {
            self.sync().await?;
            let nearest = self
                .index
                .read()
                .await
                .index
                .search_with(&vector, &scopes, KindFilter::Facts, true, 1);
            if let Some((id, similarity)) = nearest.first()
                && f64::from(*similarity) >= consolidate::DUPLICATE_SIMILARITY
            {
                return Ok(Some(*id));
            }
        }
        let words = |t: &str| {
            text::query_terms(t)
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
        };
        let mine = words(text);
        let filter = coworker_store::MemoryFilter {
            kind: Some("fact".into()),
            statuses: vec!["approved".into(), "proposed".into()],
            scopes,
            before_ms: None,
        };
        for item in self
            .store
            .list_memory_items(&filter, coworker_store::MAX_MEMORY_PAGE)
            .await?
        {
            let theirs = words(&item.text);
            let union = mine.union(&theirs).count();
            let overlap = if union == 0 {
                0.0
            } else {
                mine.intersection(&theirs).count() as f64 / union as f64
            };
            if item.text.trim().eq_ignore_ascii_case(text.trim()) || overlap >= consolidate::DUPLICATE_WORD_OVERLAP {
                return Ok(Some(item.id));
            }
        }
        Ok(None)
    }
}

/// Where an imported item sits in its import: scope, source, position and time. Items next
/// to each other there are read together by [`lift_neighbours`].
#[derive(Debug, Clone)]
struct ImportPlace {
    scope: String,
    source: String,
    position: u64,
    occurred_at_ms: Option<i64>,
}

impl ImportPlace {
    /// The place recorded in an item's details (`{"import": {"source", "position"}}`).
    fn of(item: &MemoryItem) -> Option<ImportPlace> {
        let import = item.details.get("import")?;
        Some(ImportPlace {
            scope: item.scope.clone(),
            source: import.get("source")?.as_str()?.to_owned(),
            position: import.get("position")?.as_u64()?,
            occurred_at_ms: item.occurred_at_ms,
        })
    }

    /// The lookup key of the place at `position` in the same source, scope and time.
    fn key(&self, position: u64) -> (&str, &str, Option<i64>, u64) {
        (&self.scope, &self.source, self.occurred_at_ms, position)
    }
}

/// Adds to each hit [`NEIGHBOUR_SHARE`] of the better score of the hits just before and after
/// it in the same import (same source, same time); `places[i]` is `hits[i]`'s place. One pass
/// over the scores as fused, so a lift never lifts again.
fn lift_neighbours(hits: &mut [Hit], places: &[Option<ImportPlace>]) {
    let score_at: HashMap<(&str, &str, Option<i64>, u64), f64> = places
        .iter()
        .zip(hits.iter())
        .filter_map(|(p, h)| p.as_ref().map(|p| (p.key(p.position), h.score)))
        .collect();
    if score_at.len() < 2 {
        return;
    }
    let lifts: Vec<f64> = places
        .iter()
        .map(|place| {
            let Some(place) = place else { return 0.0 };
            let best = [place.position.checked_sub(1), place.position.checked_add(1)]
                .into_iter()
                .flatten()
                .filter_map(|p| score_at.get(&place.key(p)))
                .fold(0.0f64, |a, b| a.max(*b));
            NEIGHBOUR_SHARE * best
        })
        .collect();
    for (hit, lift) in hits.iter_mut().zip(lifts) {
        hit.components.neighbour = lift;
        hit.score += lift;
    }
}
