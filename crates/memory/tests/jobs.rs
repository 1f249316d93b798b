//! Consolidation with the scripted model (proposes a new fact, drops a near-duplicate of a
//! stored one) and decay (archives old unused items, keeps them listable, deletes nothing),
//! on both backends; reindex after a change of embedder.

mod common;

use coworker_core::config::{Config, MemoryConfig, ProviderConfig, ProviderKind};
use coworker_memory::{Embedder, KindFilter, Memory, NewItem, Scope, SearchQuery};
use coworker_store::MemoryFilter;
use coworker_testkit::scripted_model::{Format, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, backend_tests};
use serde_json::json;

backend_tests!(
    consolidation_proposes_new_facts_and_drops_near_duplicates,
    decay_archives_old_unused_items_without_deleting,
    reindex_embeds_what_another_embedder_left,
);

fn router(server: &ScriptedModelServer) -> coworker_models::Router {
    let mut config = Config {
        providers: vec![ProviderConfig {
            name: "scripted".into(),
            kind: ProviderKind::Openai,
            base_url: server.base_url(),
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }],
        ..Config::default()
    };
    config.models.default = "scripted/test-model".into();
    config.models.max_attempts = 1;
    config.models.detect_ollama = false;
    coworker_models::resolve_providers(&config, &[]).router().unwrap()
}

fn episode(text: &str) -> NewItem {
    NewItem {
        kind: "episode",
        status: "approved",
        source: "task",
        ..common::fact(Scope::Project("site".into()), text)
    }
}

async fn consolidation_proposes_new_facts_and_drops_near_duplicates(db: &TestDb) {
    db.store.create_project("site", "Site", "").await.unwrap();
    let memory = common::open(&db.store, common::local_embedder()).await;
    let existing = memory
        .add(common::fact(
            Scope::Project("site".into()),
            "We ship website releases on Tuesdays.",
        ))
        .await
        .unwrap()
        .0;
    memory
        .add(episode(
            "Task for @ada (done): publish the release notes. Outcome: published Tuesday as usual.",
        ))
        .await
        .unwrap();
    memory
        .add(episode(
            "Task for @bob (done): send the invoice. Outcome: sent; the client wants invoices in euros.",
        ))
        .await
        .unwrap();
    let server = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text(
            "```json\n[\"Website releases ship on Tuesdays.\", \"The client wants invoices in euros.\"]\n```",
        ))),
    )
    .await;

    let report = coworker_memory::consolidate::consolidate(&memory, &router(&server), 0)
        .await
        .unwrap();
    assert_eq!(report.episodes, 2);
    assert_eq!(report.duplicates.len(), 1, "{report:?}");
    assert_eq!(report.duplicates[0].1, existing);
    assert_eq!(report.proposed.len(), 1);
    let proposal = memory.get(report.proposed[0]).await.unwrap().unwrap();
    assert_eq!(proposal.text, "The client wants invoices in euros.");
    assert_eq!(
        (
            proposal.status.as_str(),
            proposal.source.as_str(),
            proposal.scope.as_str()
        ),
        ("proposed", "consolidation", "project:site")
    );
    // The model saw the episodes as fenced records, and the request asked for a summary.
    let sent = server.model_requests()[0].body.to_string();
    assert!(
        sent.contains("<record>") && sent.contains("invoices in euros"),
        "{sent}"
    );

    // A second run proposes nothing new: its candidate repeats the waiting proposal.
    let server = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new().turn(Turn::reply(Reply::text(
            "[\"The client wants their invoices in euros.\"]",
        ))),
    )
    .await;
    let again = coworker_memory::consolidate::consolidate(&memory, &router(&server), 0)
        .await
        .unwrap();
    assert!(again.proposed.is_empty(), "{again:?}");
    assert_eq!(again.duplicates[0].1, proposal.id);
}

async fn decay_archives_old_unused_items_without_deleting(db: &TestDb) {
    let config = MemoryConfig {
        decay_after_days: 0,
        decay_unused_days: 0,
        decay_max_use_count: 0,
        ..MemoryConfig::default()
    };
    let memory = Memory::open(db.store.clone(), Embedder::None, config).await.unwrap();
    let old = memory
        .add(common::fact(Scope::Org, "The old fax number is 555-0100."))
        .await
        .unwrap()
        .0;
    let used = memory
        .add(common::fact(Scope::Org, "The fax machine is on the second floor."))
        .await
        .unwrap()
        .0;
    db.store
        .record_memory_use(&[used], coworker_core::TaskId::new(), "coworker:ada")
        .await
        .unwrap();

    let archived = memory.decay(coworker_store::now_ms() + 1).await.unwrap();
    assert_eq!(archived, vec![old], "the used item stays");
    let search = SearchQuery {
        text: "fax".into(),
        scopes: vec!["org".into()],
        kind: KindFilter::Any,
        limit: 10,
    };
    let hits = memory.search(&search).await.unwrap().hits;
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![used]);
    let all = db
        .store
        .list_memory_items(
            &MemoryFilter {
                statuses: vec!["archived".into()],
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![old],
        "archived, still listed"
    );
    let history = db.store.memory_events(old).await.unwrap();
    assert_eq!(history.last().unwrap().action, "archived");
    assert_eq!(
        history.last().unwrap().detail,
        json!({"reason": "decay", "use_count": 0})
    );
}

async fn reindex_embeds_what_another_embedder_left(db: &TestDb) {
    // Stored with no embedder (full text only), then the local model arrives.
    let plain = Memory::open(db.store.clone(), Embedder::None, MemoryConfig::default())
        .await
        .unwrap();
    plain
        .add(common::fact(
            Scope::Org,
            "Invoices are sent on the first business day of the month.",
        ))
        .await
        .unwrap();
    let memory = common::open(&db.store, common::local_embedder()).await;
    let query = SearchQuery {
        text: "when do we bill customers".into(),
        scopes: vec!["org".into()],
        kind: KindFilter::Any,
        limit: 5,
    };
    assert!(
        memory.search(&query).await.unwrap().hits.is_empty(),
        "no shared word, no vector yet"
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let done = memory
        .reindex(&|done, total| seen.lock().unwrap().push((done, total)))
        .await
        .unwrap();
    assert_eq!(done, 1);
    assert_eq!(seen.lock().unwrap().last(), Some(&(1, 1)));
    assert_eq!(
        memory.search(&query).await.unwrap().hits.len(),
        1,
        "found by meaning after reindex"
    );
}
