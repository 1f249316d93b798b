//! Memory benchmarks. `cargo bench -p coworker-memory --bench retrieval` prints:
//! - retrieval latency p50/p95 (the retrieval step: full text + vector index + fusion +
//!   loading hits; query embedding excluded) at 10k and 100k items on SQLite and, when
//!   `COWORKER_TEST_DATABASE_URL` is set, PostgreSQL;
//! - local model throughput, single texts and batches (needs `COWORKER_TEST_MODEL_DIR` or
//!   the installed model; skipped with a note otherwise), and import throughput (embed +
//!   store + index, items/s).
//!
//! Items are synthetic: sentences from a 2,000-word vocabulary and random unit vectors,
//! spread over 10 scopes (a query sees 3 of them).

use std::time::Instant;

use coworker_core::config::MemoryConfig;
use coworker_memory::{Embedder, KindFilter, Memory, NewItem, Scope, SearchQuery};
use coworker_store::NewMemoryItem;
use coworker_testkit::{Backend, TestDb};

const DIMS: usize = 384;
const QUERIES: usize = 300;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIMS).map(|_| (self.next() % 2001) as f32 / 1000.0 - 1.0).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
    fn sentence(&mut self, words: &[String]) -> String {
        (0..12)
            .map(|_| words[(self.next() % words.len() as u64) as usize].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "der", "mon", "lis",
    ];
    (0..2000)
        .map(|i| {
            format!(
                "{}{}{}",
                syllables[i % 14],
                syllables[(i / 14) % 14],
                syllables[(i / 196) % 14]
            )
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn retrieval(backend: Backend, sizes: &[usize]) {
    let Some(db) = TestDb::new(backend).await else {
        println!("retrieval {backend:?}: skipped (set COWORKER_TEST_DATABASE_URL)");
        return;
    };
    // The bench needs an embedder id for its stored vectors; `Local` supplies dims too, so
    // the vectors are written under the id the index reads.
    let Some(embedder) = local() else {
        println!("retrieval: skipped, no local model (its id and width name the stored vectors)");
        return;
    };
    let embedder_id = embedder.id().unwrap();
    let words = vocabulary();
    let mut rng = Rng(0x0BE7_C4A1_5EED_0001);
    let mut stored = 0usize;
    for &size in sizes {
        while stored < size {
            let batch: Vec<NewMemoryItem> = (0..1000.min(size - stored))
                .map(|i| {
                    let text = rng.sentence(&words);
                    NewMemoryItem {
                        kind: "fact".into(),
                        scope: format!("project:p{}", (stored + i) % 10),
                        search_text: text.clone(),
                        text,
                        status: "approved".into(),
                        source: "import".into(),
                        source_task_id: None,
                        created_by_user_id: None,
                        details: serde_json::json!({}),
                        occurred_at_ms: None,
                        actor: "bench".into(),
                        embedding: Some((embedder_id.clone(), rng.unit())),
                    }
                })
                .collect();
            stored += batch.len();
            db.store.insert_memory_items(&batch).await.unwrap();
        }
        let memory = Memory::open(db.store.clone(), embedder.clone(), MemoryConfig::default())
            .await
            .unwrap();
        let scopes: Vec<String> = vec![
            "org".into(),
            "project:p1".into(),
            "project:p2".into(),
            "project:p3".into(),
        ];
        let mut times = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let text: String = rng.sentence(&words).split(' ').take(5).collect::<Vec<_>>().join(" ");
            let vector = rng.unit();
            let query = SearchQuery {
                text,
                scopes: scopes.clone(),
                kind: KindFilter::Any,
                limit: 10,
            };
            let started = Instant::now();
            let hits = memory.retrieve(&query, Some(&vector)).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(!hits.is_empty());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "retrieval {backend:?} {size} items (a query sees ~{} of them): p50 {:.2} ms, p95 {:.2} ms",
            size * 3 / 10,
            percentile(&times, 0.5),
            percentile(&times, 0.95)
        );
    }
}

fn local() -> Option<Embedder> {
    let dir = std::env::var_os("COWORKER_TEST_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .or_else(coworker_memory::embed::default_model_dir)?;
    Embedder::local(&dir).ok()
}

async fn embedding_and_import() {
    let Some(embedder) = local() else {
        println!("embedding: skipped, no local model");
        return;
    };
    let words = vocabulary();
    let mut rng = Rng(7);
    let texts: Vec<String> = (0..256).map(|_| rng.sentence(&words)).collect();
    let started = Instant::now();
    for text in texts.iter().take(64) {
        embedder.embed(vec![text.clone()]).await.unwrap();
    }
    println!(
        "embedding single: {:.1} items/s",
        64.0 / started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    embedder.embed(texts.clone()).await.unwrap();
    println!(
        "embedding batch (32 per pass): {:.1} items/s",
        texts.len() as f64 / started.elapsed().as_secs_f64()
    );

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let memory = Memory::open(db.store.clone(), embedder, MemoryConfig::default())
        .await
        .unwrap();
    let items: Vec<NewItem> = (0..1000)
        .map(|_| NewItem {
            kind: "fact",
            scope: Scope::Org,
            text: rng.sentence(&words),
            occurred_at_ms: Some(1_700_000_000_000),
            status: "approved",
            source: "import",
            source_task_id: None,
            created_by_user_id: None,
            details: serde_json::json!({}),
            actor: "bench".into(),
        })
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(250) {
        memory.add_many(chunk.to_vec(), false).await.unwrap();
    }
    println!(
        "import (embed + store + index, SQLite): {:.1} items/s",
        1000.0 / started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("COWORKER_BENCH_MEMORY_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    embedding_and_import().await;
    retrieval(Backend::Sqlite, &sizes).await;
    retrieval(Backend::Postgres, &sizes).await;
}
