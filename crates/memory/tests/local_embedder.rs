//! The local MiniLM embedder: loads, embeds unit vectors, finds a paraphrase that shares no
//! word with the fact, and refuses a missing or corrupt model directory with a clear error.

mod common;

use coworker_embed_local::LocalEmbedder;
use coworker_memory::{KindFilter, Scope, SearchQuery};
use coworker_testkit::{Backend, TestDb};

#[test]
fn vectors_are_unit_length_and_similar_texts_are_close() {
    let model = LocalEmbedder::load(&common::model_dir()).unwrap();
    assert_eq!(model.dims(), 384);
    let v = model
        .embed(&[
            "We ship releases on Tuesdays.",
            "Deployments go out every Tuesday.",
            "The cat sat on the mat.",
        ])
        .unwrap();
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.2,
        "{} vs {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );
    // A batch gives the same vectors as one at a time (padding must not leak into the mean).
    let single = model.embed(&["Deployments go out every Tuesday."]).unwrap();
    assert!(dot(&single[0], &v[1]) > 0.999);
}

#[test]
fn a_missing_or_corrupt_model_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = LocalEmbedder::load(&missing).unwrap_err().to_string();
    assert!(err.contains("is missing") && err.contains("install-model"), "{err}");

    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(common::model_dir().join(f), corrupt.join(f)).unwrap();
    }
    std::fs::write(corrupt.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = LocalEmbedder::load(&corrupt).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("not a usable"),
        "{err}"
    );

    std::fs::write(corrupt.join("config.json"), b"{").unwrap();
    let err = LocalEmbedder::load(&corrupt).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paraphrase_sharing_no_word_finds_the_fact() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let memory = common::open(&db.store, common::local_embedder()).await;
    for text in [
        "Invoices are sent to clients on the first business day of each month.",
        "The staging database is refreshed from production every Sunday night.",
        "Marketing prefers the colour teal for campaign banners.",
        "Our office closes at noon on Fridays in August.",
    ] {
        memory.add(common::fact(Scope::Org, text)).await.unwrap();
    }
    let query = SearchQuery {
        text: "when do we bill customers?".into(),
        scopes: vec!["org".into()],
        kind: KindFilter::Any,
        limit: 1,
    };
    let hits = memory.search(&query).await.unwrap().hits;
    assert!(hits[0].text.starts_with("Invoices are sent"), "{hits:?}");
    assert!(
        hits[0].components.fulltext_rank.is_none(),
        "the query shares no word with the fact"
    );
    assert_eq!(hits[0].components.vector_rank, Some(1));
}
