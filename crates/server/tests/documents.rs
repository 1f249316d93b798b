//! Deliverables end to end on both backends: a coworker on the scripted model calls the
//! `documents.*` tools; the files land in the workspace linked to the task, re-open with
//! their readers, pass validation (`validation_finished`) and the task is done. Validation
//! failures go back to the model and are fixed; failures past the bound reach the human and
//! the task is not done. Bad input is an error result to the model, and nothing is saved.

use std::sync::Arc;

use coworker_core::TaskId;
use coworker_core::domain::TaskStatus;
use coworker_documents::readers;
use coworker_store::RunEvent;
use coworker_testkit::scripted_model::{Format, Match, Reply, Script, ScriptedModelServer, Turn};
use coworker_testkit::{TestDb, TestNode, backend_tests};
use coworker_tools::workspace::{Author, Workspace};
use serde_json::{Value, json};

backend_tests!(
    each_format_from_the_models_tool_calls_is_saved_checked_and_delivered,
    a_validation_failure_is_retried_and_fixed,
    validation_failures_past_the_bound_reach_the_human_and_the_task_is_not_done,
    bad_input_is_an_error_result_and_saves_nothing,
    a_named_template_shapes_the_document_and_the_narrower_scope_wins,
    a_schedule_naming_a_template_makes_the_brief_through_it_every_week,
    the_prose_check_is_given_the_coworkers_approved_style_facts,
);

async fn start(db: &TestDb, script: Script) -> (TestNode, ScriptedModelServer) {
    start_configured(db, script, |_| {}).await
}

async fn start_configured(
    db: &TestDb,
    script: Script,
    extra: impl FnOnce(&mut coworker_core::config::Config),
) -> (TestNode, ScriptedModelServer) {
    let model = ScriptedModelServer::start(Format::OpenAi, script).await;
    let base_url = model.base_url();
    let node = TestNode::start_with(db.backend, |config| {
        extra(config);
        config.providers = vec![coworker_core::config::ProviderConfig {
            name: "scripted".into(),
            kind: coworker_core::config::ProviderKind::Openai,
            base_url,
            api_key_env: String::new(),
            api_key_secret: String::new(),
        }];
        config.models.default = "scripted/test-model".into();
        config.models.max_attempts = 1;
    })
    .await
    .expect("backend configured");
    (node, model)
}

fn workspace(node: &TestNode) -> Workspace {
    Workspace::new(node.node.store.clone(), &node.node.data_dir, Default::default())
}

async fn wait_for_end(node: &TestNode, task: TaskId) -> coworker_store::Task {
    let store = node.node.store.clone();
    coworker_testkit::process::wait_until("the task ends", || {
        let store = store.clone();
        async move {
            let task = store.get_task(task).await.unwrap().unwrap();
            matches!(
                task.status,
                TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled
            )
        }
    })
    .await;
    store.get_task(task).await.unwrap().unwrap()
}

async fn journal(node: &TestNode, task: TaskId) -> Vec<RunEvent> {
    let run = node.node.store.run_for_task(task).await.unwrap().unwrap();
    node.node.store.list_events(run.id, 0, 10_000).await.unwrap()
}

fn validations(events: &[RunEvent]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e.kind == "validation_finished")
        .map(|e| &e.payload)
        .collect()
}

fn png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(80, 40, image::Rgb([200, 60, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn call(id: &str, tool: &str, arguments: Value) -> (String, String, String) {
    (id.to_owned(), tool.to_owned(), arguments.to_string())
}

fn calls(list: Vec<(String, String, String)>) -> Reply {
    list.into_iter().fold(Reply::tool_calls(), |reply, (id, tool, args)| {
        reply.tool_call(id, tool, args)
    })
}

/// The validation prompt holds each deliverable fenced in `<<<`/`>>>`; the retry note starts
/// with `[validation]`.
const VALIDATION_PROMPT: &str = "<<<";
const RETRY_NOTE: &str = "[validation]";

async fn each_format_from_the_models_tool_calls_is_saved_checked_and_delivered(db: &TestDb) {
    let sheet = json!({
        "path": "pack/sales",
        "sheets": [{"name": "Sales", "columns": [{"name": "Region", "type": "text"}, {"name": "Revenue", "type": "currency"}],
                    "rows": [["North", 1200], ["South", 800], ["Total", "=SUM(B2:B3)"]]}]
    });
    let document = json!({
        "title": "Weekly Report", "path": "pack/report",
        "markdown": "# Summary\n\nRevenue is **2,000**.\n\n| Region | Revenue |\n|---|--:|\n| North | 1,200 |\n| South | 800 |\n\n# Risks\n\nNone this week."
    });
    let deck = json!({
        "title": "Weekly Pack", "path": "pack/deck",
        "slides": [{"title": "Revenue", "bullets": ["Up 12%"], "notes": "Lead with revenue.", "image": "brand/logo.png"},
                   {"title": "By region", "table": [["Region", "Revenue"], ["North", 1200], ["South", 800]]}]
    });
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly pack".into()),
            calls(vec![
                call("c1", "documents__create_spreadsheet", sheet),
                call("c2", "documents__create_document", document),
                call("c3", "documents__create_slides", deck),
            ]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Saved".into()),
            Reply::text("The weekly pack is ready."),
        ))
        .turn(Turn::when(
            Match::UserSays(VALIDATION_PROMPT.into()),
            Reply::text("PASS"),
        ));
    let (node, model) = start(db, script).await;
    let author = Author {
        created_by: "user:test".into(),
        task_id: None,
        project_id: None,
    };
    workspace(&node).write("brand/logo.png", &png(), &author).await.unwrap();

    let task = coworker_testkit::node::delegate(
        &node.base_url,
        &node.owner_token,
        "assistant",
        "prepare the weekly pack",
    )
    .await;
    let ended = wait_for_end(&node, task).await;
    let events = journal(&node, task).await;
    assert_eq!(ended.status, TaskStatus::Done, "{:?}\n{events:#?}", ended.result);

    let found = validations(&events);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["passed"], true, "{}", found[0]);
    let attached = ended.result.as_ref().unwrap()["files"]
        .as_array()
        .expect("files attached to the result")
        .clone();
    assert!(
        attached
            .iter()
            .any(|f| f["path"] == "pack/deck.pptx" && f["version"] == 1),
        "{attached:?}"
    );
    assert_eq!(found[0]["prose_checked"], true);
    let checked: Vec<&str> = found[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for path in [
        "pack/sales.xlsx",
        "pack/sales.csv",
        "pack/report.md",
        "pack/report.docx",
        "pack/report.pdf",
        "pack/report.html",
        "pack/deck.pptx",
        "pack/deck.pdf",
    ] {
        assert!(checked.contains(&path), "{path} validated: {checked:?}");
    }
    let prompt = model
        .model_requests()
        .iter()
        .map(|r| r.body.to_string())
        .find(|b| b.contains(VALIDATION_PROMPT))
        .expect("a validate call was made");
    assert!(
        prompt.contains("prepare the weekly pack") && prompt.contains("None this week"),
        "the brief and the prose: {prompt}"
    );

    // Each file is a workspace version linked to the task, and re-opens with its content.
    let workspace = workspace(&node);
    let read = |path: &'static str| {
        let workspace = workspace.clone();
        async move {
            let content = workspace.read(path, None).await.unwrap();
            assert_eq!(content.file.task_id, Some(task), "{path} is linked to the task");
            content.bytes
        }
    };
    let model_sheet: coworker_documents::spreadsheet::SpreadsheetArgs = serde_json::from_value(json!({
        "sheets": [{"name": "Sales", "columns": [{"name": "Region", "type": "text"}, {"name": "Revenue", "type": "currency"}],
                    "rows": [["North", 1200], ["South", 800], ["Total", "=SUM(B2:B3)"]]}]
    }))
    .unwrap();
    let sheet_model = coworker_documents::spreadsheet::check(&model_sheet).unwrap();
    assert_eq!(
        sheet_model.sheets[0].rows[2][1],
        coworker_documents::spreadsheet::Cell::Formula {
            text: "=SUM(B2:B3)".into(),
            value: 2000.0
        }
    );
    assert!(
        readers::inspect_xlsx(&read("pack/sales.xlsx").await, &sheet_model)
            .problems
            .is_empty()
    );
    assert_eq!(
        String::from_utf8(read("pack/sales.csv").await).unwrap(),
        "Region,Revenue\nNorth,1200\nSouth,800\nTotal,2000\n"
    );
    let docx = readers::inspect_docx(&read("pack/report.docx").await, &[]);
    assert_eq!(docx.texts, vec!["Weekly Report", "Summary", "Risks"]);
    let pdf = readers::inspect_pdf(
        &read("pack/report.pdf").await,
        None,
        &["Weekly Report".into(), "None this week".into()],
    );
    assert!(pdf.problems.is_empty() && pdf.units >= 1, "{:?}", pdf.problems);
    let html = String::from_utf8(read("pack/report.html").await).unwrap();
    assert!(html.contains("<h2>Risks</h2>"));
    let pptx = readers::inspect_pptx(
        &read("pack/deck.pptx").await,
        &["Weekly Pack".into(), "Revenue".into(), "By region".into()],
    );
    assert!(pptx.problems.is_empty(), "{:?}", pptx.problems);
    assert_eq!(pptx.notes[1], "Lead with revenue.");
    let deck_pdf = readers::inspect_pdf(&read("pack/deck.pdf").await, Some(3), &["By region".into()]);
    assert!(deck_pdf.problems.is_empty(), "{:?}", deck_pdf.problems);

    // The web app previews each kind and offers downloads and the version history.
    let page = |path: &'static str| {
        let workspace = workspace.clone();
        let node = &node;
        async move {
            let id = workspace.latest(path).await.unwrap().unwrap().id;
            let response = node
                .client()
                .get(node.url(&format!("/files/{id}")))
                .bearer_auth(&node.owner_token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            (id, response.text().await.unwrap())
        }
    };
    let (_, html) = page("pack/sales.xlsx").await;
    assert!(
        html.contains("Sheet Sales") && html.contains("<th>Revenue</th>") && html.contains("<td>2000</td>"),
        "{html}"
    );
    let (_, html) = page("pack/sales.csv").await;
    assert!(
        html.contains("<th>Region</th>") && html.contains("<td>North</td>"),
        "{html}"
    );
    let (_, html) = page("pack/report.html").await;
    assert!(html.contains("<iframe class=\"html-preview\" sandbox=\"\""), "{html}");
    assert!(
        !html.contains("srcdoc=\"<!DOCTYPE"),
        "the frame's document is escaped: {html}"
    );
    let (_, html) = page("pack/report.docx").await;
    assert!(
        html.contains("<li>Summary</li>") && html.contains("<li>Risks</li>"),
        "{html}"
    );
    let (_, html) = page("pack/deck.pptx").await;
    assert!(html.contains("<li>By region</li>"), "{html}");
    let (id, html) = page("pack/deck.pdf").await;
    assert!(
        html.contains("3 pages") && html.contains(&format!("/files/{id}/pages/3")),
        "{html}"
    );
    assert!(
        html.contains(&format!("/files/{id}/download?version=1")),
        "a download link"
    );
    let image = node
        .client()
        .get(node.url(&format!("/files/{id}/pages/2")))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    let png = image.bytes().await.unwrap();
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G']), "pdftoppm rendered a PNG");
    node.stop().await;
}

async fn a_validation_failure_is_retried_and_fixed(db: &TestDb) {
    let document = json!({"title": "Weekly Report", "path": "reports/weekly", "markdown": "# Summary\n\nAll good."});
    let fix =
        json!({"path": "reports/weekly.docx", "operation": "append_section", "markdown": "# Risks\n\nSupplier delay."});
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly report".into()),
            calls(vec![call("c1", "documents__create_document", document)]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Saved".into()),
            Reply::text("Done."),
        ))
        .turn(Turn::when(
            Match::UserSays(VALIDATION_PROMPT.into()),
            Reply::text("- The brief asks for a Risks section; the report has none."),
        ))
        .turn(Turn::when(
            Match::UserSays(RETRY_NOTE.into()),
            calls(vec![call("c2", "documents__edit_document", fix)]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Diff".into()),
            Reply::text("Done, with the risks."),
        ))
        .turn(Turn::when(
            Match::UserSays(VALIDATION_PROMPT.into()),
            Reply::text("PASS"),
        ));
    let (node, model) = start(db, script).await;
    let task = coworker_testkit::node::delegate(
        &node.base_url,
        &node.owner_token,
        "assistant",
        "write the weekly report with a Risks section",
    )
    .await;
    let ended = wait_for_end(&node, task).await;
    let events = journal(&node, task).await;
    assert_eq!(ended.status, TaskStatus::Done, "{:?}", ended.result);
    assert_eq!(ended.result.as_ref().unwrap()["text"], "Done, with the risks.");

    let found = validations(&events);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (found[0]["passed"].clone(), found[0]["retry"].clone()),
        (json!(false), json!(true))
    );
    assert!(found[0]["problems"][0].as_str().unwrap().contains("Risks section"));
    assert_eq!(found[1]["passed"], true);
    // The model was told exactly what was wrong.
    let retry_request = model
        .model_requests()
        .iter()
        .map(|r| r.body.to_string())
        .find(|b| b.contains(RETRY_NOTE))
        .expect("the problems went back to the model");
    assert!(retry_request.contains("Risks section"));
    // The edit made new versions, and its diff is in the journal.
    let finished = events
        .iter()
        .find(|e| e.kind == "tool_finished" && e.payload["tool"] == "documents.edit_document")
        .unwrap();
    assert!(
        finished.payload["content"].as_str().unwrap().contains("+# Risks"),
        "{}",
        finished.payload
    );
    let docx = workspace(&node).read("reports/weekly.docx", None).await.unwrap();
    assert_eq!(docx.file.version, 2);
    assert_eq!(
        readers::inspect_docx(&docx.bytes, &[]).texts,
        vec!["Weekly Report", "Summary", "Risks"]
    );
    node.stop().await;
}

async fn validation_failures_past_the_bound_reach_the_human_and_the_task_is_not_done(db: &TestDb) {
    let document = json!({"title": "Weekly Report", "path": "reports/weekly", "markdown": "# Summary\n\nAll good.", "formats": ["html"]});
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weekly report".into()),
            calls(vec![call("c1", "documents__create_document", document)]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Saved".into()),
            Reply::text("Done."),
        ))
        .turn(Turn::when(Match::UserSays(RETRY_NOTE.into()), Reply::text("It is fine as it is.")).repeating())
        .turn(
            Turn::when(
                Match::UserSays(VALIDATION_PROMPT.into()),
                Reply::text("- The Risks section is missing."),
            )
            .repeating(),
        );
    let (node, _model) = start(db, script).await;
    let task = coworker_testkit::node::delegate(
        &node.base_url,
        &node.owner_token,
        "assistant",
        "write the weekly report with a Risks section",
    )
    .await;
    let ended = wait_for_end(&node, task).await;
    let events = journal(&node, task).await;
    assert_eq!(
        ended.status,
        TaskStatus::Failed,
        "never marked done: {:?}",
        ended.result
    );
    let error = ended.result.as_ref().unwrap()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("did not pass validation after 3 attempt(s)") && error.contains("The Risks section is missing"),
        "{error}"
    );
    assert!(!events.iter().any(|e| e.kind == "completed"));
    let found = validations(&events);
    assert_eq!(found.len(), 3, "the default bound is two retries");
    assert_eq!(found[2]["retry"], false);

    // The delegator is told, with the problems.
    let notifications = node.node.store.task_notifications(task).await.unwrap();
    let told = notifications
        .iter()
        .find(|n| n.kind == "validation_failed")
        .expect("a validation_failed notification");
    assert!(
        told.body["problems"]
            .to_string()
            .contains("The Risks section is missing")
    );
    // The task page over the API shows the problems.
    let response = node
        .client()
        .get(node.url(&format!("/api/v1/tasks/{task}")))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body.to_string().contains("The Risks section is missing"), "{body}");
    node.stop().await;
}

async fn bad_input_is_an_error_result_and_saves_nothing(db: &TestDb) {
    let column = |t: &str| json!({"name": "Value", "type": t});
    let bad = vec![
        call(
            "b1",
            "documents__create_spreadsheet",
            json!({"sheets": [{"name": "S", "columns": [{"name": "A", "type": "text"}, column("number")], "rows": [["x", 1], ["y"]]}]}),
        ),
        call(
            "b2",
            "documents__create_spreadsheet",
            json!({"sheets": [{"name": "S", "columns": [column("decimal")], "rows": [[1]]}]}),
        ),
        call(
            "b3",
            "documents__create_spreadsheet",
            json!({"sheets": [{"name": "S", "columns": [column("number")], "rows": [[1], ["=SUM(A2:A99)"]]}]}),
        ),
        call(
            "b4",
            "documents__create_slides",
            json!({"title": "Deck", "slides": [{"title": "Logo", "image": "brand/none.png"}]}),
        ),
        call(
            "b5",
            "documents__create_document",
            json!({"title": "Huge", "markdown": "word ".repeat(2 * 1024 * 1024)}),
        ),
        call(
            "b6",
            "documents__edit_document",
            json!({"path": "reports/never-made.docx", "operation": "append_section", "markdown": "# X"}),
        ),
    ];
    let script = Script::new()
        .turn(Turn::when(Match::UserSays("bad inputs".into()), calls(bad)))
        .turn(Turn::when(
            Match::ToolResultFor("b6".into()),
            Reply::text("All six failed, as expected."),
        ));
    let (node, _model) = start(db, script).await;
    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "try the bad inputs").await;
    let ended = wait_for_end(&node, task).await;
    let events = journal(&node, task).await;
    assert_eq!(ended.status, TaskStatus::Done, "{:?}", ended.result);
    let result_of = |id: &str| {
        let event = events
            .iter()
            .find(|e| e.kind == "tool_finished" && e.payload["call_id"].as_str().is_some_and(|c| c.ends_with(id)))
            .unwrap_or_else(|| panic!("no result for {id}"));
        assert_eq!(event.payload["is_error"], true, "{}", event.payload);
        event.payload["content"].as_str().unwrap().to_owned()
    };
    assert!(
        result_of("b1").contains("row 2") && result_of("b1").contains("1 cells"),
        "{}",
        result_of("b1")
    );
    assert!(
        result_of("b2").contains("unknown column type \"decimal\""),
        "{}",
        result_of("b2")
    );
    assert!(
        result_of("b3").contains("A99 is outside the sheet"),
        "{}",
        result_of("b3")
    );
    assert!(
        result_of("b4").contains("brand/none.png") && result_of("b4").contains("does not exist"),
        "{}",
        result_of("b4")
    );
    assert!(result_of("b5").contains("more than the limit"), "{}", result_of("b5"));
    assert!(
        result_of("b6").contains("create the document first"),
        "{}",
        result_of("b6")
    );
    // Nothing half-made was saved, and with no deliverable there was nothing to validate.
    let files = workspace(&node).list("", None, 100).await.unwrap();
    assert!(
        files.files.iter().all(|f| f.path.starts_with("results/")),
        "{:?}",
        files.files
    );
    assert!(validations(&events).is_empty());
    node.stop().await;
}

/// A company DOCX: the generator's own output with its heading colour changed to the
/// company's dark red and a custom style added (what `templates add --style` receives).
fn company_docx() -> Vec<u8> {
    let args: coworker_documents::document::DocumentArgs =
        serde_json::from_value(json!({"title": "Company", "markdown": "# Sample\n", "formats": ["docx"]})).unwrap();
    let rendered = coworker_documents::render::document(&args, &Default::default()).unwrap();
    let docx = &rendered.outputs.iter().find(|o| o.format == "docx").unwrap().bytes;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(docx.as_slice())).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut content).unwrap();
        if name == "word/styles.xml" {
            content = String::from_utf8(content)
                .unwrap()
                .replace("1F3864", "C00000")
                .replace(
                    "</w:styles>",
                    "<w:style w:type=\"paragraph\" w:customStyle=\"1\" w:styleId=\"CompanyNote\"><w:name w:val=\"Company Note\"/></w:style></w:styles>",
                )
                .into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut out, &content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn docx_part(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut file = archive.by_name(name).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
    text
}

async fn api(node: &TestNode, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node
        .client()
        .request(method, node.url(&format!("/api/v1{path}")))
        .bearer_auth(&node.owner_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn a_named_template_shapes_the_document_and_the_narrower_scope_wins(db: &TestDb) {
    use base64::Engine as _;
    let arguments = json!({"template": "monday-brief", "data": {"week": 23, "items": [{"name": "Ads", "status": "on track"}, {"name": "Email", "status": "late"}]}});
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("monday brief".into()),
            calls(vec![call("t1", "documents__create_from_template", arguments)]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Made from template".into()),
            Reply::text("Brief ready."),
        ))
        .turn(Turn::when(
            Match::UserSays(VALIDATION_PROMPT.into()),
            Reply::text("PASS"),
        ));
    let (node, _model) = start(db, script).await;
    let post = reqwest::Method::POST;
    // The org's generic template, and the coworker's own with the company DOCX: the narrower wins.
    let (status, org) = api(
        &node,
        post.clone(),
        "/templates",
        Some(json!({"name": "monday-brief", "body": "# Org brief\n\nGeneric.\n"})),
    )
    .await;
    assert_eq!((status, org["scope"].as_str()), (201, Some("org")), "{org}");
    let company = company_docx();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&company);
    let body = "# Monday brief \u{2014} week {{ week }}\n\n## Status\n\n{% for item in items %}- {{ item.name }}: {{ item.status }}\n{% endfor %}";
    let ours = json!({"name": "monday-brief", "scope": "coworker:assistant", "body": body,
                      "style_file_name": "company.docx", "style_base64": encoded});
    let (status, stored) = api(&node, post.clone(), "/templates", Some(ours.clone())).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["style_kind"], "docx");
    let (status, conflict) = api(&node, post.clone(), "/templates", Some(ours)).await;
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{conflict}"
    );
    // A style file that cannot be used, a body that does not compile, an unknown scope: refused.
    for (bad, expected) in [
        (
            json!({"name": "x", "style_file_name": "x.docx", "style_base64": "bm90IGEgemlw"}),
            "zip",
        ),
        (json!({"name": "x", "body": "{% for %}"}), "does not compile"),
        (
            json!({"name": "x", "body": "hi", "scope": "coworker:nobody"}),
            "no coworker",
        ),
        (json!({"name": "Bad Name", "body": "hi"}), "not valid"),
    ] {
        let (status, refused) = api(&node, post.clone(), "/templates", Some(bad)).await;
        assert!(status == 400 || status == 404, "{status} {refused}");
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(expected),
            "{refused}"
        );
    }

    let task =
        coworker_testkit::node::delegate(&node.base_url, &node.owner_token, "assistant", "the monday brief").await;
    let ended = wait_for_end(&node, task).await;
    let events = journal(&node, task).await;
    assert_eq!(ended.status, TaskStatus::Done, "{:?}\n{events:#?}", ended.result);
    assert_eq!(validations(&events)[0]["passed"], true);
    let workspace = workspace(&node);
    let docx = workspace.read("documents/monday-brief.docx", None).await.unwrap();
    assert_eq!(
        readers::inspect_docx(&docx.bytes, &[]).texts,
        vec!["Monday brief \u{2014} week 23", "Status"]
    );
    // Made in the company's styles.
    let styles = docx_part(&docx.bytes, "word/styles.xml");
    assert!(styles.contains("CompanyNote") && styles.contains("C00000") && !styles.contains("1F3864"));
    let source = workspace.read("documents/monday-brief.md", None).await.unwrap();
    assert!(source.text().unwrap().contains("- Email: late"), "{:?}", source.text());

    // Listed, shown, the style file downloaded byte for byte, removed.
    let get = reqwest::Method::GET;
    let (_, listed) = api(&node, get.clone(), "/templates", None).await;
    assert_eq!(listed["templates"].as_array().unwrap().len(), 2, "{listed}");
    let style = node
        .client()
        .get(node.url("/api/v1/templates/coworker:assistant/monday-brief/style"))
        .bearer_auth(&node.owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(style.status().as_u16(), 200);
    assert_eq!(style.bytes().await.unwrap().to_vec(), company);
    let (status, _) = api(&node, reqwest::Method::DELETE, "/templates/org/monday-brief", None).await;
    assert_eq!(status, 204);
    let (status, _) = api(&node, get, "/templates/org/monday-brief", None).await;
    assert_eq!(status, 404);
    node.stop().await;
}

/// A clock the test moves by hand.
#[derive(Default)]
struct TestClock(std::sync::atomic::AtomicI64);

impl coworker_engine::scheduler::Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn a_schedule_naming_a_template_makes_the_brief_through_it_every_week(db: &TestDb) {
    let arguments = |week: u32| json!({"template": "weekly-brief", "data": {"week": week, "items": [{"name": "Ads", "status": "on track"}]}});
    let told = || Match::UserSays("document template \"weekly-brief\"".into());
    let script = Script::new()
        // First: the validation call's prompt repeats the brief, which names the template.
        .turn(Turn::when(Match::UserSays(VALIDATION_PROMPT.into()), Reply::text("PASS")).repeating())
        // One run a week, each with that week's data.
        .turn(Turn::when(
            told(),
            calls(vec![call("t1", "documents__create_from_template", arguments(49))]),
        ))
        .turn(Turn::when(
            told(),
            calls(vec![call("t1", "documents__create_from_template", arguments(50))]),
        ))
        .turn(
            Turn::when(
                Match::ToolResultContains("Made from template".into()),
                Reply::text("Brief ready."),
            )
            .repeating(),
        );
    // The node's own scheduler is off: this test moves time itself.
    let (node, model) = start_configured(db, script, |config| config.schedules.scheduler = false).await;
    let post = reqwest::Method::POST;
    let (status, stored) = api(
        &node,
        post.clone(),
        "/templates",
        Some(json!({"name": "weekly-brief", "scope": "coworker:assistant",
                    "body": "# Weekly brief, week {{ week }}\n\n## Status\n\n{% for item in items %}- {{ item.name }}: {{ item.status }}\n{% endfor %}\n## Risks\n\nNone flagged.\n"})),
    )
    .await;
    assert_eq!(status, 201, "{stored}");
    let schedule = json!({"to": "assistant", "cron": "0 8 * * MON", "timezone": "Europe/Paris",
                          "brief": "Draft my weekly brief.", "template": "weekly-brief"});
    let (status, unknown) = api(
        &node,
        post.clone(),
        "/schedules",
        Some(json!({"to": "assistant", "cron": "0 8 * * MON", "brief": "x", "template": "no-such"})),
    )
    .await;
    assert_eq!(status, 404, "an unknown template is refused: {unknown}");
    let (status, created) = api(&node, post, "/schedules", Some(schedule)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["template_name"], "weekly-brief");
    let first_fire = created["next_fire_at_ms"].as_i64().unwrap();

    let clock = Arc::new(TestClock::default());
    let scheduler = coworker_engine::scheduler::Scheduler::new(
        node.node.store.clone(),
        coworker_engine::tools::ToolRegistry::new(),
        clock.clone(),
        Default::default(),
    );
    let schedule_id: coworker_core::ScheduleId = created["id"].as_str().unwrap().parse().unwrap();
    let mut shapes = Vec::new();
    for week in 0..2 {
        clock.0.store(
            first_fire + week * 7 * 86_400_000 + 120,
            std::sync::atomic::Ordering::SeqCst,
        );
        assert_eq!(scheduler.tick().await.unwrap().fired, 1, "week {week}");
        let fires = node.node.store.schedule_fires(schedule_id, 10).await.unwrap();
        let task_id = fires
            .iter()
            .map(|f| f.task_id.unwrap())
            .find(|t| !shapes.iter().any(|(seen, _): &(TaskId, Vec<String>)| seen == t));
        let task_id = task_id.unwrap();
        let task = node.node.store.get_task(task_id).await.unwrap().unwrap();
        assert!(
            task.brief.contains("document template \"weekly-brief\""),
            "{}",
            task.brief
        );
        let ended = wait_for_end(&node, task_id).await;
        assert_eq!(ended.status, TaskStatus::Done, "{:?}", ended.result);
        let docx = workspace(&node)
            .read("documents/weekly-brief.docx", None)
            .await
            .unwrap();
        assert_eq!(docx.file.version, week + 1, "each week a new version of the same file");
        shapes.push((task_id, readers::inspect_docx(&docx.bytes, &[]).texts));
    }
    assert_eq!(shapes[0].1, vec!["Weekly brief, week 49", "Status", "Risks"]);
    assert_eq!(
        shapes[1].1,
        vec!["Weekly brief, week 50", "Status", "Risks"],
        "the same shape every week"
    );
    // The coworker was told which template to use.
    assert!(
        model
            .model_requests()
            .iter()
            .any(|r| r.body.to_string().contains("documents.create_from_template"))
    );
    node.stop().await;
}

async fn the_prose_check_is_given_the_coworkers_approved_style_facts(db: &TestDb) {
    let document = json!({"title": "Weekly Report", "path": "reports/weekly", "markdown": "# Summary\n\nAll good.", "formats": ["html"]});
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays(VALIDATION_PROMPT.into()),
            Reply::text("PASS"),
        ))
        .turn(Turn::when(
            Match::UserSays("weekly report".into()),
            calls(vec![call("c1", "documents__create_document", document)]),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("Saved".into()),
            Reply::text("Done."),
        ));
    let (node, model) = start(db, script).await;
    let post = reqwest::Method::POST;
    for (text, scope) in [
        ("House style: British spelling and a formal tone.", "coworker:assistant"),
        ("The org style guide puts dates as 1 December 2026.", "org"),
        ("The Lyon office opens at nine.", "coworker:assistant"),
    ] {
        let (status, added) = api(
            &node,
            post.clone(),
            "/memory/items",
            Some(json!({"text": text, "scope": scope})),
        )
        .await;
        assert!(
            status == 201 && added["item"]["status"] == "approved",
            "{status} {added}"
        );
    }
    let task = coworker_testkit::node::delegate(
        &node.base_url,
        &node.owner_token,
        "assistant",
        "write the weekly report",
    )
    .await;
    let ended = wait_for_end(&node, task).await;
    assert_eq!(ended.status, TaskStatus::Done, "{:?}", ended.result);
    let validation = model
        .model_requests()
        .iter()
        .map(|r| r.body.to_string())
        .find(|b| b.contains(VALIDATION_PROMPT))
        .expect("a validation call");
    assert!(
        validation.contains("British spelling and a formal tone"),
        "{validation}"
    );
    assert!(validation.contains("dates as 1 December 2026"), "{validation}");
    assert!(!validation.contains("Lyon office"), "only style facts: {validation}");
    let events = journal(&node, task).await;
    assert_eq!(validations(&events)[0]["style_facts"].as_array().unwrap().len(), 2);
    node.stop().await;
}
