//! A small OTLP trace receiver (issue 18): `POST /v1/traces` (`application/x-protobuf`) on
//! one port and the gRPC `opentelemetry.proto.collector.trace.v1.TraceService/Export` on
//! another, both decoding the real protobuf (the generated `opentelemetry-proto` messages), so
//! a node's real exporter is exercised end to end. Spans are kept flattened, in arrival order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use tokio::sync::Notify;

/// How a span arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// OTLP/HTTP with a protobuf body.
    Http,
    /// OTLP/gRPC.
    Grpc,
}

/// An attribute value as received.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A float.
    Double(f64),
    /// A list of strings (other lists are kept as their strings' debug form).
    StrList(Vec<String>),
}

impl AttrValue {
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// One received span.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// How it came.
    pub via: Via,
    /// The resource's `service.name`.
    pub service_name: String,
    /// The instrumentation scope's name.
    pub scope: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root.
    pub parent_span_id: String,
    /// Name.
    pub name: String,
    /// OTLP span kind (1 internal, 3 client).
    pub kind: i32,
    /// Attributes by key.
    pub attributes: BTreeMap<String, AttrValue>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// Status message.
    pub status_message: String,
    /// Start, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(AttrValue::as_str)
    }
    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(AttrValue::as_i64)
    }
}

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// The headers of every HTTP request and the metadata of every gRPC call, lowercase.
    headers: Mutex<Vec<BTreeMap<String, String>>>,
    arrived: Notify,
}

impl Shared {
    fn take(&self, via: Via, request: ExportTraceServiceRequest, headers: BTreeMap<String, String>) {
        let mut out = Vec::new();
        for resource_spans in request.resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Any::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
                for span in scope_spans.spans {
                    let attributes = span
                        .attributes
                        .into_iter()
                        .filter_map(|kv| Some((kv.key, convert(kv.value?.value?))))
                        .collect();
                    let (status_code, status_message) = span.status.map(|s| (s.code, s.message)).unwrap_or_default();
                    out.push(ReceivedSpan {
                        via,
                        service_name: service_name.clone(),
                        scope: scope.clone(),
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        attributes,
                        status_code,
                        status_message,
                        start_unix_nano: span.start_time_unix_nano,
                        end_unix_nano: span.end_time_unix_nano,
                    });
                }
            }
        }
        self.spans.lock().expect("receiver lock").extend(out);
        self.headers.lock().expect("receiver lock").push(headers);
        self.arrived.notify_waiters();
    }
}

fn convert(value: Any) -> AttrValue {
    match value {
        Any::StringValue(s) => AttrValue::Str(s),
        Any::IntValue(i) => AttrValue::Int(i),
        Any::BoolValue(b) => AttrValue::Bool(b),
        Any::DoubleValue(d) => AttrValue::Double(d),
        Any::ArrayValue(list) => AttrValue::StrList(
            list.values
                .into_iter()
                .filter_map(|v| match v.value? {
                    Any::StringValue(s) => Some(s),
                    other => Some(format!("{other:?}")),
                })
                .collect(),
        ),
        other => AttrValue::Str(format!("{other:?}")),
    }
}

/// A running receiver; stops when dropped (its tasks are aborted).
pub struct OtlpReceiver {
    /// Base URL of the HTTP receiver (`http://127.0.0.1:PORT`; spans go to `/v1/traces`).
    pub http_url: String,
    /// URL of the gRPC receiver (`http://127.0.0.1:PORT`).
    pub grpc_url: String,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        self.0.take(Via::Grpc, request.into_inner(), headers);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl OtlpReceiver {
    /// Starts both receivers on ephemeral loopback ports.
    pub async fn start() -> OtlpReceiver {
        let shared = Arc::new(Shared::default());
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP/HTTP");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP/gRPC");
        let http_url = format!("http://{}", http.local_addr().expect("address"));
        let grpc_url = format!("http://{}", grpc.local_addr().expect("address"));

        let state = shared.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                    if content_type != Some("application/x-protobuf") {
                        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                    }
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return (StatusCode::BAD_REQUEST, Vec::new());
                    };
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    state.take(Via::Http, request, headers);
                    (
                        StatusCode::OK,
                        ExportTraceServiceResponse { partial_success: None }.encode_to_vec(),
                    )
                }
            }),
        );
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(http, app).await;
        });
        let service = TraceServiceServer::new(Grpc(shared.clone()));
        let grpc_task = tokio::spawn(async move {
            while let Ok((stream, _)) = grpc.accept().await {
                let service = hyper_util::service::TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        OtlpReceiver {
            http_url,
            grpc_url,
            shared,
            tasks: vec![http_task, grpc_task],
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.spans.lock().expect("receiver lock").clone()
    }

    /// The headers (HTTP) or metadata (gRPC) of every export received so far.
    pub fn headers(&self) -> Vec<BTreeMap<String, String>> {
        self.shared.headers.lock().expect("receiver lock").clone()
    }

    /// Waits until `done` holds for the spans received, woken by each export (no polling);
    /// panics after `timeout` with what did arrive.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                panic!("the OTLP receiver did not get the expected spans within {timeout:?}; got {names:?}");
            }
        }
    }
}
