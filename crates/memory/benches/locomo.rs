//! Long-conversation recall on the public LoCoMo dialogues (snap-research/locomo,
//! `locomo10`): every turn imported as an item dated by its session, every question with
//! cited turns (categories 1–4; the adversarial category 5 cites none that answer it)
//! searched in its own conversation, and the share of cited turns found in the top 5 and
//! top 10 reported, per category and overall.
//!
//! `COWORKER_BENCH_LOCOMO=PATH cargo bench -p coworker-memory --bench locomo`, where PATH is
//! `locomo10.json` or the folder of per-conversation files from the dataset's zip. Needs the
//! local model (`COWORKER_TEST_MODEL_DIR` or the installed one). Not run without the data.
//!
//! Turns are stored with the product's own full-text and vector indexing and searched with
//! [`Memory::retrieve`]. Knobs for trying retrieval ideas before building them:
//! - `COWORKER_BENCH_LOCOMO_CONVERSATIONS=N`: only the first N conversations;
//! - `COWORKER_BENCH_LOCOMO_CACHE=FILE`: keep computed vectors between runs (by exact text);
//! - `COWORKER_BENCH_LOCOMO_EMBED`: what is embedded per turn — empty (what the product embeds:
//!   the text and its date in words), `raw` (the text alone), `ctxN` / `rawctxN` (after up to
//!   N earlier turns of the same session);
//! - `COWORKER_BENCH_LOCOMO_PLACES=0`: store the turns without their place in the import (as
//!   `memory import` records it), which turns off the product's neighbour lift
//!   ([`coworker_memory::NEIGHBOUR_SHARE`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use coworker_core::config::MemoryConfig;
use coworker_memory::{Embedder, KindFilter, Memory, SearchQuery};
use coworker_store::NewMemoryItem;
use coworker_testkit::{Backend, TestDb};
use serde_json::Value;

struct Turn {
    dia_id: String,
    text: String,
    at_ms: i64,
}

struct Question {
    text: String,
    category: i64,
    evidence: Vec<String>,
}

struct Conversation {
    name: String,
    turns: Vec<Turn>,
    questions: Vec<Question>,
}

fn load(path: &Path) -> Vec<Conversation> {
    let mut docs: Vec<(String, Value)> = Vec::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("the LoCoMo folder reads")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files {
            let v: Value = serde_json::from_slice(&std::fs::read(&f).expect("reads")).expect("is JSON");
            docs.push((f.file_stem().unwrap().to_string_lossy().into_owned(), v));
        }
    } else {
        let v: Value = serde_json::from_slice(&std::fs::read(path).expect("reads")).expect("is JSON");
        for (i, c) in v.as_array().expect("an array of conversations").iter().enumerate() {
            let name = c["sample_id"].as_str().map_or_else(|| i.to_string(), str::to_owned);
            let mut doc = c["conversation"].clone();
            doc["qa"] = c["qa"].clone();
            docs.push((name, doc));
        }
    }
    docs.into_iter().map(|(name, doc)| conversation(name, &doc)).collect()
}

/// `1:56 pm on 8 May, 2023` → epoch ms (UTC).
fn session_time(s: &str) -> i64 {
    let (clock, date) = s.split_once(" on ").expect("time on date");
    let (hm, ampm) = clock.trim().split_once(' ').expect("h:mm am");
    let (h, m) = hm.split_once(':').expect("h:mm");
    let mut hour: i8 = h.parse().unwrap();
    let minute: i8 = m.parse().unwrap();
    if ampm.eq_ignore_ascii_case("pm") && hour != 12 {
        hour += 12;
    }
    if ampm.eq_ignore_ascii_case("am") && hour == 12 {
        hour = 0;
    }
    let date = date.replace(',', "");
    let mut parts = date.split_whitespace();
    let day: i8 = parts.next().unwrap().parse().unwrap();
    let month = parts.next().unwrap();
    let year: i16 = parts.next().unwrap().parse().unwrap();
    let months = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let month = months.iter().position(|m| *m == month.to_lowercase()).expect("a month") as i8 + 1;
    jiff::civil::date(year, month, day)
        .at(hour, minute, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn conversation(name: String, doc: &Value) -> Conversation {
    let mut turns = Vec::new();
    for n in 1.. {
        let Some(session) = doc.get(format!("session_{n}")).and_then(Value::as_array) else {
            if doc.get(format!("session_{}", n + 1)).is_some() {
                continue;
            }
            break;
        };
        let at_ms = session_time(doc[format!("session_{n}_date_time")].as_str().expect("a session date"));
        for t in session {
            let mut text = format!(
                "{}: {}",
                t["speaker"].as_str().unwrap_or(""),
                t["text"].as_str().unwrap_or("")
            );
            if let Some(caption) = t.get("blip_caption").and_then(Value::as_str) {
                text.push_str(&format!(" [shares {caption}]"));
            }
            turns.push(Turn {
                dia_id: t["dia_id"].as_str().unwrap_or("").to_owned(),
                text,
                at_ms,
            });
        }
    }
    let questions = doc["qa"]
        .as_array()
        .expect("qa")
        .iter()
        .filter_map(|q| {
            let category = q["category"].as_i64()?;
            let evidence: Vec<String> = q["evidence"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|e| e.split([';', ',']).map(|s| s.trim().to_owned()).collect::<Vec<_>>())
                .filter(|e| !e.is_empty())
                .collect();
            (category != 5 && !evidence.is_empty()).then(|| Question {
                text: q["question"].as_str().unwrap_or("").to_owned(),
                category,
                evidence,
            })
        })
        .collect();
    Conversation { name, turns, questions }
}

#[derive(Default)]
struct Tally {
    questions: usize,
    cited: usize,
    found5: usize,
    found10: usize,
    macro5: f64,
}

/// Vectors already computed, by exact text (the bench is run many times while tuning).
struct VectorCache {
    path: Option<PathBuf>,
    map: HashMap<String, Vec<f32>>,
    dirty: bool,
}

impl VectorCache {
    fn open() -> VectorCache {
        let path = std::env::var_os("COWORKER_BENCH_LOCOMO_CACHE").map(PathBuf::from);
        let map = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        VectorCache {
            path,
            map,
            dirty: false,
        }
    }

    async fn embed(&mut self, embedder: &Embedder, texts: &[String]) -> Vec<Vec<f32>> {
        let missing: Vec<String> = texts.iter().filter(|t| !self.map.contains_key(*t)).cloned().collect();
        for chunk in missing.chunks(64) {
            let vectors = embedder
                .embed(chunk.to_vec())
                .await
                .expect("embeds")
                .expect("a local model");
            for (t, v) in chunk.iter().zip(vectors) {
                self.map.insert(t.clone(), v);
            }
            self.dirty = true;
        }
        texts.iter().map(|t| self.map[t].clone()).collect()
    }

    fn save(&self) {
        if let (Some(path), true) = (&self.path, self.dirty) {
            std::fs::write(path, serde_json::to_vec(&self.map).unwrap()).expect("the cache writes");
        }
    }
}

/// What is embedded for turn `i`: its text (with the date words when `dated`), after up to
/// `context` earlier turns of the same session.
fn embedded_text(turns: &[Turn], i: usize, variant: &str) -> String {
    let own = if variant.contains("raw") {
        turns[i].text.clone()
    } else {
        coworker_memory::text::search_text(&turns[i].text, Some(turns[i].at_ms))
    };
    let context: usize = variant
        .split("ctx")
        .nth(1)
        .and_then(|r| r.get(..1))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let mut parts = Vec::new();
    let mut j = i;
    for _ in 0..context {
        if j == 0 || turns[j - 1].at_ms != turns[i].at_ms {
            break;
        }
        j -= 1;
        parts.push(turns[j].text.clone());
    }
    parts.reverse();
    parts.push(own);
    parts.join("\n")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let Some(path) = std::env::var_os("COWORKER_BENCH_LOCOMO").map(PathBuf::from) else {
        println!("locomo: skipped (set COWORKER_BENCH_LOCOMO to locomo10.json or its folder)");
        return;
    };
    let dir = std::env::var_os("COWORKER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(coworker_memory::embed::default_model_dir)
        .expect("a model directory");
    let embedder = Embedder::local(&dir).expect("the local model loads");
    let embedder_id = embedder.id().expect("the local model has an id");
    let only: Option<usize> = std::env::var("COWORKER_BENCH_LOCOMO_CONVERSATIONS")
        .ok()
        .and_then(|s| s.parse().ok());
    let variant = std::env::var("COWORKER_BENCH_LOCOMO_EMBED").unwrap_or_default();
    let places = std::env::var("COWORKER_BENCH_LOCOMO_PLACES").map_or(true, |v| v != "0");
    let mut cache = VectorCache::open();
    let conversations = load(&path);
    let conversations = &conversations[..conversations.len().min(only.unwrap_or(usize::MAX))];
    // Each conversation in its own database, imported once.
    let mut prepared = Vec::new();
    for conv in conversations {
        let db = TestDb::new(Backend::Sqlite).await.expect("sqlite");
        let texts: Vec<String> = (0..conv.turns.len())
            .map(|i| embedded_text(&conv.turns, i, &variant))
            .collect();
        let vectors = cache.embed(&embedder, &texts).await;
        let rows: Vec<NewMemoryItem> = conv
            .turns
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(position, (t, v))| NewMemoryItem {
                kind: "fact".into(),
                scope: "org".into(),
                search_text: coworker_memory::text::search_text(&t.text, Some(t.at_ms)),
                text: t.text.clone(),
                status: "approved".into(),
                source: "import".into(),
                source_task_id: None,
                created_by_user_id: None,
                // What `memory import` records of a line's place in its file.
                details: if places {
                    serde_json::json!({"import": {"source": conv.name, "position": position}})
                } else {
                    serde_json::json!({})
                },
                occurred_at_ms: Some(t.at_ms),
                actor: "bench".into(),
                embedding: Some((embedder_id.clone(), v)),
            })
            .collect();
        let mut id_of: HashMap<coworker_core::MemoryId, Vec<String>> = HashMap::new();
        for (chunk, turns) in rows.chunks(500).zip(conv.turns.chunks(500)) {
            let inserted = db.store.insert_memory_items(chunk).await.expect("the turns import");
            for (t, ins) in turns.iter().zip(inserted) {
                id_of.entry(ins.id()).or_default().push(t.dia_id.clone());
            }
        }
        let memory = Memory::open(db.store.clone(), embedder.clone(), MemoryConfig::default())
            .await
            .expect("memory opens");
        let questions: Vec<String> = conv.questions.iter().map(|q| q.text.clone()).collect();
        let qvectors = cache.embed(&embedder, &questions).await;
        prepared.push((db, memory, id_of, qvectors));
    }
    cache.save();
    {
        let mut tallies: BTreeMap<i64, Tally> = BTreeMap::new();
        for (conv, (_db, memory, id_of, qvectors)) in conversations.iter().zip(&prepared) {
            for (q, qv) in conv.questions.iter().zip(qvectors) {
                let hits = memory
                    .retrieve(
                        &SearchQuery {
                            text: q.text.clone(),
                            scopes: vec!["org".to_owned()],
                            kind: KindFilter::Any,
                            limit: 50,
                        },
                        Some(qv),
                    )
                    .await
                    .expect("search");
                let mut hits = hits;
                hits.truncate(10);
                let ranked: Vec<&String> = hits
                    .iter()
                    .flat_map(|h| id_of.get(&h.id).into_iter().flatten())
                    .collect();
                let top5: Vec<&String> = hits
                    .iter()
                    .take(5)
                    .flat_map(|h| id_of.get(&h.id).into_iter().flatten())
                    .collect();
                let f5 = q.evidence.iter().filter(|e| top5.contains(e)).count();
                let f10 = q.evidence.iter().filter(|e| ranked.contains(e)).count();
                let t = tallies.entry(q.category).or_default();
                t.questions += 1;
                t.cited += q.evidence.len();
                t.found5 += f5;
                t.found10 += f10;
                t.macro5 += f5 as f64 / q.evidence.len() as f64;
            }
        }
        let mut all = Tally::default();
        let mut per_category = String::new();
        for (category, t) in &tallies {
            per_category.push_str(&format!(" c{category} {:.3}", t.found5 as f64 / t.cited as f64));
            all.questions += t.questions;
            all.cited += t.cited;
            all.found5 += t.found5;
            all.found10 += t.found10;
            all.macro5 += t.macro5;
        }
        println!(
            "locomo [embed {variant:?}, places {places}] {} questions, {} cited: recall@5 {:.3}, recall@10 {:.3}, per-question recall@5 {:.3};{per_category}",
            all.questions,
            all.cited,
            all.found5 as f64 / all.cited.max(1) as f64,
            all.found10 as f64 / all.cited.max(1) as f64,
            all.macro5 / all.questions.max(1) as f64
        );
    }
}
