//! The behavioural suite both clients must pass, over real loopback HTTP against the scripted
//! servers: one body per behaviour, run for OpenAI and Anthropic, streaming and not.

mod common;

use std::time::Duration;

use common::{GOOD_KEY, KEY_ENV, Kind, MODEL, PROVIDER, harness, harness_with, options};
use coworker_models::{
    Message, ModelError, ModelRequest, Purpose, StopReason, StreamEvent, SystemBlock, TimeoutPhase, ToolChoice,
    ToolDefinition, Transport, Usage,
};
use coworker_testkit::scripted_model::{Fault, Format, Match, Reply, Script, ScriptedModelServer, Turn};
use futures::StreamExt;
use serde_json::{Value, json};

macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        mod openai_streaming { $( #[tokio::test] async fn $name() { super::$name(super::Kind { format: super::Format::OpenAi, transport: super::Transport::Streaming }).await; } )+ }
        mod openai_blocking { $( #[tokio::test] async fn $name() { super::$name(super::Kind { format: super::Format::OpenAi, transport: super::Transport::Blocking }).await; } )+ }
        mod anthropic_streaming { $( #[tokio::test] async fn $name() { super::$name(super::Kind { format: super::Format::Anthropic, transport: super::Transport::Streaming }).await; } )+ }
        mod anthropic_blocking { $( #[tokio::test] async fn $name() { super::$name(super::Kind { format: super::Format::Anthropic, transport: super::Transport::Blocking }).await; } )+ }
    };
}

suite!(
    text_reply_carries_usage_and_exact_cost,
    request_is_sent_in_the_providers_format,
    tool_call_round_trip_keeps_ids,
    stream_assembles_deltas_into_events,
    malformed_tool_arguments_come_back_as_data,
    rate_limit_is_retried_after_retry_after,
    retry_after_past_the_deadline_fails_at_once,
    server_errors_are_retried_then_reported,
    slow_first_byte_times_out_and_is_retried,
    dropped_connection_is_retried_by_complete,
    dropped_stream_ends_with_an_error_event,
    bad_key_is_an_authentication_error_with_a_fix,
    context_too_long_is_typed_and_not_retried,
    keys_never_appear_in_debug_output,
);

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

fn request(text: &str) -> ModelRequest {
    let mut request = ModelRequest::new(Purpose::Act, vec![Message::user(text)]);
    request.model = MODEL.to_owned();
    request.system = vec![
        SystemBlock::stable("You are Ada, a marketing ops coworker."),
        SystemBlock::volatile("Today is Monday."),
    ];
    request.tools = vec![weather_tool()];
    request.max_output_tokens = 512;
    request
}

fn last_message(format: Format, body: &Value) -> Value {
    let messages = body["messages"].as_array().expect("messages array");
    let _ = format;
    messages.last().cloned().expect("a message")
}

async fn text_reply_carries_usage_and_exact_cost(kind: Kind) {
    let (server, provider) = harness(
        kind,
        Script::new().turn(Turn::reply(
            Reply::text("Hello there, world").usage(1_200, 300).cache(500, 100),
        )),
    )
    .await;
    let response = provider.complete(request("hi")).await.expect("call succeeds");
    assert_eq!(response.text, "Hello there, world");
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert!(response.tool_calls.is_empty());
    assert_eq!(response.model, format!("{PROVIDER}/{MODEL}"));
    assert_eq!(response.attempts, 1);
    // OpenAI has no cache-write count; Anthropic reports all four.
    let cache_write = if kind.format == Format::Anthropic { 100 } else { 0 };
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 1_200,
            output_tokens: 300,
            cache_read_tokens: 500,
            cache_write_tokens: cache_write
        }
    );
    // $2/M in, $8/M out, $0.5/M cache read, $2.5/M cache write, in micro-dollars:
    // 1200×2 + 300×8 + 500×0.5 + cache_write×2.5 = 2400 + 2400 + 250 (+ 250).
    let expected = 2_400 + 2_400 + 250 + if cache_write > 0 { 250 } else { 0 };
    assert_eq!(response.cost_micros_usd, expected);
    assert_eq!(server.model_requests().len(), 1);
}

async fn request_is_sent_in_the_providers_format(kind: Kind) {
    let (server, provider) = harness(kind, Script::new().turn(Turn::reply(Reply::text("ok")))).await;
    let mut req = request("hi");
    req.temperature = Some(0.25);
    req.stop = vec!["END".into()];
    req.tool_choice = ToolChoice::Tool("get_weather".into());
    provider.complete(req).await.expect("call succeeds");
    let sent = &server.model_requests()[0];
    let body = &sent.body;
    let streaming = kind.transport == Transport::Streaming;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["temperature"], 0.25);
    match kind.format {
        Format::OpenAi => {
            assert_eq!(sent.path, "/v1/chat/completions");
            assert_eq!(
                sent.header("authorization"),
                Some(format!("Bearer {GOOD_KEY}").as_str())
            );
            assert_eq!(
                body["messages"][0],
                json!({"role": "system", "content": "You are Ada, a marketing ops coworker.\n\nToday is Monday."})
            );
            assert_eq!(body["messages"][1], json!({"role": "user", "content": "hi"}));
            assert_eq!(body["tools"][0]["type"], "function");
            assert_eq!(body["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
            assert_eq!(
                body["tool_choice"],
                json!({"type": "function", "function": {"name": "get_weather"}})
            );
            assert_eq!(body["max_tokens"], 512, "compatible servers get max_tokens");
            assert_eq!(body["stop"], json!(["END"]));
            if streaming {
                assert_eq!(body["stream"], true);
                assert_eq!(body["stream_options"], json!({"include_usage": true}));
            } else {
                assert!(body.get("stream").is_none());
            }
        }
        Format::Anthropic => {
            assert_eq!(sent.path, "/v1/messages");
            assert_eq!(sent.header("x-api-key"), Some(GOOD_KEY));
            assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
            assert!(sent.header("authorization").is_none());
            // The cache breakpoint sits after the stable prefix (tools + stable system), not
            // after the volatile block or on the tools (the system breakpoint covers them).
            assert_eq!(body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
            assert!(body["system"][1].get("cache_control").is_none());
            assert!(body["tools"][0].get("cache_control").is_none());
            assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["city"]));
            assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "get_weather"}));
            assert_eq!(body["max_tokens"], 512);
            assert_eq!(body["stop_sequences"], json!(["END"]));
            assert_eq!(
                body["messages"][0],
                json!({"role": "user", "content": [{"type": "text", "text": "hi"}]})
            );
            assert_eq!(body.get("stream").and_then(Value::as_bool).unwrap_or(false), streaming);
        }
    }
}

async fn tool_call_round_trip_keeps_ids(kind: Kind) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weather".into()),
            Reply::text("Let me check.")
                .tool_call("call_paris", "get_weather", r#"{"city": "Paris"}"#)
                .tool_call("call_lyon", "get_weather", r#"{"city":"Lyon"}"#)
                .usage(50, 20),
        ))
        .turn(Turn::when(
            Match::ToolResultFor("call_lyon".into()),
            Reply::text("Sunny in both.").usage(80, 5),
        ));
    let (server, provider) = harness(kind, script).await;

    let mut req = request("What's the weather in Paris and Lyon?");
    let first = provider.complete(req.clone()).await.expect("first turn");
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.text, "Let me check.");
    let calls: Vec<(&str, &str, Value)> = first
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_paris", "get_weather", json!({"city": "Paris"})),
            ("call_lyon", "get_weather", json!({"city": "Lyon"}))
        ]
    );
    assert!(first.tool_calls.iter().all(|c| c.malformed.is_none()));

    req.messages.push(first.to_message());
    req.messages
        .push(Message::tool_result("call_paris", r#"{"sky":"sunny"}"#));
    req.messages
        .push(Message::tool_result("call_lyon", r#"{"sky":"sunny"}"#));
    let second = provider.complete(req).await.expect("second turn");
    assert_eq!(second.text, "Sunny in both.");
    assert_eq!(server.remaining_turns(), 0);

    let sent = server.model_requests();
    assert_eq!(sent.len(), 2);
    let body = &sent[1].body;
    match kind.format {
        Format::OpenAi => {
            let messages = body["messages"].as_array().unwrap();
            let assistant = &messages[2];
            assert_eq!(assistant["role"], "assistant");
            assert_eq!(assistant["tool_calls"][0]["id"], "call_paris");
            assert_eq!(assistant["tool_calls"][1]["id"], "call_lyon");
            let args: Value =
                serde_json::from_str(assistant["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args, json!({"city": "Paris"}));
            assert_eq!(
                messages[3],
                json!({"role": "tool", "tool_call_id": "call_paris", "content": "{\"sky\":\"sunny\"}"})
            );
            assert_eq!(messages[4]["tool_call_id"], "call_lyon");
        }
        Format::Anthropic => {
            let messages = body["messages"].as_array().unwrap();
            assert_eq!(
                messages.len(),
                3,
                "user, assistant, one user message holding both results"
            );
            let assistant = &messages[1]["content"];
            assert_eq!(assistant[0], json!({"type": "text", "text": "Let me check."}));
            assert_eq!(
                assistant[1],
                json!({"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {"city": "Paris"}})
            );
            assert_eq!(assistant[2]["id"], "call_lyon");
            let results = last_message(kind.format, body);
            assert_eq!(results["role"], "user");
            assert_eq!(
                results["content"][0],
                json!({"type": "tool_result", "tool_use_id": "call_paris", "content": "{\"sky\":\"sunny\"}", "is_error": false})
            );
            assert_eq!(results["content"][1]["tool_use_id"], "call_lyon");
        }
    }
}

async fn stream_assembles_deltas_into_events(kind: Kind) {
    let script = Script::new().turn(Turn::reply(
        Reply::text("Checking the forecast now.")
            .tool_call("call_1", "get_weather", r#"{"city": "Reykjavík"}"#)
            .usage(40, 12),
    ));
    let (server, provider) = harness(kind, script).await;
    let events: Vec<StreamEvent> = provider
        .stream(request("weather?"))
        .await
        .expect("stream opens")
        .map(|e| e.expect("no stream error"))
        .collect()
        .await;
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| {
            if let StreamEvent::TextDelta { text } = e {
                Some(text.as_str())
            } else {
                None
            }
        })
        .collect();
    assert!(
        deltas.len() > 1,
        "the scripted server splits text; the client must pass deltas through: {deltas:?}"
    );
    assert_eq!(deltas.concat(), "Checking the forecast now.");
    let calls: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let StreamEvent::ToolCall { call } = e {
                Some(call.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "call_1");
    assert_eq!(calls[0].arguments, json!({"city": "Reykjavík"}));
    match events.last() {
        Some(StreamEvent::Done {
            stop_reason,
            usage,
            cost_micros_usd,
        }) => {
            assert_eq!(*stop_reason, StopReason::ToolUse);
            assert_eq!((usage.input_tokens, usage.output_tokens), (40, 12));
            assert_eq!(*cost_micros_usd, 40 * 2 + 12 * 8);
        }
        other => panic!("the stream must end with Done, got {other:?}"),
    }
    assert_eq!(
        server.model_requests()[0].body["stream"],
        true,
        "stream() always streams"
    );
}

async fn malformed_tool_arguments_come_back_as_data(kind: Kind) {
    let script = Script::new()
        .turn(Turn::when(
            Match::UserSays("weather".into()),
            Reply::tool_calls().tool_call("call_bad", "get_weather", r#"{"city": "Par"#),
        ))
        .turn(Turn::when(
            Match::ToolResultContains("not a valid JSON object".into()),
            Reply::text("Sorry, retrying."),
        ));
    let (server, provider) = harness(kind, script).await;
    let mut req = request("weather in Paris");
    let first = provider
        .complete(req.clone())
        .await
        .expect("malformed arguments are not a failed call");
    assert_eq!(first.tool_calls.len(), 1);
    let call = &first.tool_calls[0];
    assert_eq!(call.id, "call_bad");
    let malformed = call.malformed.as_ref().expect("flagged as malformed");
    assert_eq!(malformed.raw, r#"{"city": "Par"#);
    // The engine answers the call with the feedback instead of running the tool.
    req.messages.push(first.to_message());
    req.messages
        .push(Message::tool_error(&call.id, call.malformed_feedback().unwrap()));
    let second = provider.complete(req).await.expect("the model gets the error back");
    assert_eq!(second.text, "Sorry, retrying.");
    let sent = server.model_requests();
    let body = &sent[1].body;
    if kind.format == Format::OpenAi {
        // Replayed verbatim so the model sees exactly what it sent.
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"city": "Par"#
        );
    } else {
        assert_eq!(last_message(kind.format, body)["content"][0]["is_error"], true);
    }
}

async fn rate_limit_is_retried_after_retry_after(kind: Kind) {
    let script = Script::new().turn(Turn::reply(Reply::text("made it")).fault(Fault::RateLimited {
        retry_after_secs: Some(1),
    }));
    let (server, provider) = harness(kind, script).await;
    let response = provider.complete(request("hi")).await.expect("succeeds after waiting");
    assert_eq!(response.text, "made it");
    assert_eq!(response.attempts, 2);
    assert_eq!(server.model_requests().len(), 2);
}

async fn retry_after_past_the_deadline_fails_at_once(kind: Kind) {
    let mut opts = options(kind.transport);
    opts.retry.deadline = Duration::from_secs(5);
    let script = Script::new().turn(Turn::reply(Reply::text("never")).fault(Fault::RateLimited {
        retry_after_secs: Some(120),
    }));
    let (server, provider) = harness_with(kind, script, opts).await;
    let err = provider
        .complete(request("hi"))
        .await
        .expect_err("cannot wait 120 s within a 5 s deadline");
    match &err {
        ModelError::RateLimited { retry_after, .. } => assert_eq!(*retry_after, Some(Duration::from_secs(120))),
        other => panic!("expected a rate-limit error, got {other:?}"),
    }
    assert!(err.to_string().contains("rate limited"), "{err}");
    assert_eq!(server.model_requests().len(), 1);
}

async fn server_errors_are_retried_then_reported(kind: Kind) {
    let script = Script::new().turn(
        Turn::reply(Reply::text("third time lucky"))
            .fault(Fault::ServerError)
            .fault(Fault::Overloaded),
    );
    let (server, provider) = harness(kind, script).await;
    let response = provider
        .complete(request("hi"))
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(response.attempts, 3);
    assert_eq!(server.model_requests().len(), 3);

    let script = Script::new().turn(Turn::reply(Reply::text("never")).faults(Fault::ServerError, 10));
    let (server, provider) = harness(kind, script).await;
    let err = provider.complete(request("hi")).await.expect_err("gives up");
    assert!(matches!(err, ModelError::Server { status: 500, .. }), "{err:?}");
    assert_eq!(server.model_requests().len(), 3, "bounded by max_attempts");
}

async fn slow_first_byte_times_out_and_is_retried(kind: Kind) {
    let mut opts = options(kind.transport);
    opts.first_byte_timeout = Duration::from_millis(1_000);
    // The slow response takes far longer than the limit, so the outcome does not depend on
    // scheduling: the first attempt must time out, the second is answered at once.
    let script =
        Script::new().turn(Turn::reply(Reply::text("fast now")).fault(Fault::SlowFirstByte(Duration::from_secs(30))));
    let (server, provider) = harness_with(kind, script, opts.clone()).await;
    let response = provider.complete(request("hi")).await.expect("second attempt is fast");
    assert_eq!(response.text, "fast now");
    assert_eq!(server.model_requests().len(), 2);

    opts.retry.max_attempts = 2;
    let script =
        Script::new().turn(Turn::reply(Reply::text("never")).faults(Fault::SlowFirstByte(Duration::from_secs(30)), 10));
    let (server, provider) = harness_with(kind, script, opts).await;
    let err = provider.complete(request("hi")).await.expect_err("always slow");
    assert!(
        matches!(
            err,
            ModelError::Timeout {
                phase: TimeoutPhase::FirstByte,
                after_ms: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("timed out waiting for the first byte after 1000 ms"),
        "{err}"
    );
    assert_eq!(server.model_requests().len(), 2);
}

async fn dropped_connection_is_retried_by_complete(kind: Kind) {
    let script = Script::new().turn(
        Turn::reply(Reply::text("complete answer").tool_call("call_1", "get_weather", r#"{"city":"Oslo"}"#))
            .fault(Fault::DropMidStream),
    );
    let (server, provider) = harness(kind, script).await;
    let response = provider.complete(request("hi")).await.expect("retried after the drop");
    assert_eq!(
        response.text, "complete answer",
        "no duplicated or partial text from the broken attempt"
    );
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.attempts, 2);
    assert_eq!(server.model_requests().len(), 2);
}

async fn dropped_stream_ends_with_an_error_event(kind: Kind) {
    let script =
        Script::new().turn(Turn::reply(Reply::text("a long answer that breaks off")).fault(Fault::DropMidStream));
    let (server, provider) = harness(kind, script).await;
    let items: Vec<_> = provider
        .stream(request("hi"))
        .await
        .expect("stream opens")
        .collect()
        .await;
    eprintln!("{items:#?} requests={}", server.model_requests().len());
    let last = items.last().expect("at least the error");
    assert!(matches!(last, Err(ModelError::StreamInterrupted { .. })), "{last:?}");
    assert!(
        !items.iter().any(|i| matches!(i, Ok(StreamEvent::Done { .. }))),
        "a broken stream is never reported as done"
    );
    assert_eq!(
        server.model_requests().len(),
        1,
        "stream() does not retry once events flowed"
    );
}

async fn bad_key_is_an_authentication_error_with_a_fix(kind: Kind) {
    let server = ScriptedModelServer::start(
        kind.format,
        Script::new()
            .require_api_key(GOOD_KEY)
            .turn(Turn::reply(Reply::text("no"))),
    )
    .await;
    let provider = coworker_models::build_provider(
        common::settings(kind, server.base_url(), "sk-wrong-key-42", options(kind.transport)),
        common::catalog(),
    )
    .unwrap();
    let err = provider.complete(request("hi")).await.expect_err("rejected");
    match &err {
        ModelError::Authentication { status, fix, .. } => {
            assert_eq!(*status, 401);
            assert_eq!(fix, &format!("set {KEY_ENV} to a valid key"));
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert!(
        !err.to_string().contains("sk-wrong-key-42"),
        "the key must not leak into errors: {err}"
    );
    assert_eq!(server.model_requests().len(), 1, "a bad key is not retried");
}

async fn context_too_long_is_typed_and_not_retried(kind: Kind) {
    let script = Script::new().turn(Turn::reply(Reply::text("never")).fault(Fault::ContextTooLong));
    let (server, provider) = harness(kind, script).await;
    let err = provider.complete(request("hi")).await.expect_err("too long");
    assert!(matches!(err, ModelError::ContextTooLong { .. }), "{err:?}");
    assert!(!err.warrants_fallback());
    assert_eq!(server.model_requests().len(), 1);
}

async fn keys_never_appear_in_debug_output(kind: Kind) {
    let (_server, provider) = harness(kind, Script::new()).await;
    let debug = format!("{provider:?}");
    assert!(debug.contains(PROVIDER), "Debug output should still be useful: {debug}");
    assert!(!debug.contains(GOOD_KEY), "key leaked: {debug}");
    let settings = common::settings(kind, "http://127.0.0.1:1".into(), GOOD_KEY, options(kind.transport));
    assert!(!format!("{settings:?}").contains(GOOD_KEY));
}
