//! Socket Mode: the node dials Slack (`apps.connections.open` with the app-level token, then a
//! WebSocket), waits for `hello`, and acknowledges each envelope only after its event is
//! recorded durably (an unacknowledged envelope is redelivered by Slack, possibly with a new
//! `envelope_id` — dedupe is on the event). On `disconnect` (`warning`, `refresh_requested`, …)
//! the replacement is opened and greeted before the old socket is closed, so there are never
//! more than two. Health is judged by ping/pong, not by time since the last event: a socket
//! whose pong is overdue is closed and replaced. Failed connects back off exponentially.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Slack;

/// How long a new socket may take to say `hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the node pings Slack.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);

/// How long a pong may take before the socket is judged dead.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// First and largest pause between failed connection attempts.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// See [`BACKOFF_MIN`].
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Sockets open at once, at most (the old one and its replacement).
pub const MAX_SOCKETS: usize = 2;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Opening = Pin<Box<dyn Future<Output = Result<Ws, String>> + Send>>;

/// How serving one socket ended.
enum Ended {
    Stop,
    Replaced(Box<Ws>),
    Dropped(String),
}

/// Dials a new socket and waits for its `hello`.
async fn connect(slack: Slack) -> Result<Ws, String> {
    let url = slack.inner.client.open_connection().await.map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("cannot open the Socket Mode WebSocket: {e}"))?;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if value["type"] == "hello" {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("closed before hello".to_owned())
    })
    .await;
    match hello {
        Ok(Ok(())) => Ok(ws),
        Ok(Err(e)) => Err(format!("Socket Mode: {e}")),
        Err(_) => Err(format!("Socket Mode: no hello within {} s", HELLO_TIMEOUT.as_secs())),
    }
}

/// Runs Socket Mode until `stop`.
pub(crate) async fn run(slack: Slack, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut next: Option<Box<Ws>> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let ws = match next.take() {
            Some(ws) => *ws,
            None => match connect(slack.clone()).await {
                Ok(ws) => {
                    backoff = BACKOFF_MIN;
                    tracing::info!("Slack Socket Mode connected");
                    ws
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "Slack Socket Mode connect failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        match serve(&slack, ws, &mut stop).await {
            Ended::Stop => return,
            Ended::Replaced(ws) => {
                tracing::info!("Slack Socket Mode moved to the replacement socket");
                next = Some(ws);
            }
            Ended::Dropped(reason) => {
                tracing::warn!(%reason, "Slack Socket Mode socket lost; reconnecting");
            }
        }
    }
}

async fn serve(slack: &Slack, mut ws: Ws, stop: &mut watch::Receiver<bool>) -> Ended {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut pong_due: Option<Instant> = None;
    let mut replacement: Option<Opening> = None;
    loop {
        tokio::select! {
            () = async { let _ = stop.wait_for(|s| *s).await; } => {
                let _ = ws.close(None).await;
                return Ended::Stop;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    match value["type"].as_str() {
                        Some("disconnect") => {
                            tracing::info!(reason = %value["reason"], "Slack asked to reconnect; opening the replacement first");
                            if replacement.is_none() {
                                replacement = Some(Box::pin(connect(slack.clone())));
                            }
                        }
                        Some("hello") | None => {}
                        Some(_) => {
                            if let Some(ack) = handle_envelope(slack, &value).await
                                && let Err(e) = ws.send(Message::text(ack.to_string())).await
                            {
                                return Ended::Dropped(format!("cannot send an ack: {e}"));
                            }
                        }
                    }
                }
                Some(Ok(Message::Pong(_))) => pong_due = None,
                Some(Ok(Message::Close(_))) | None => {
                    return match replacement.take() {
                        Some(opening) => match opening.await {
                            Ok(new) => Ended::Replaced(Box::new(new)),
                            Err(e) => Ended::Dropped(format!("closed; replacement failed: {e}")),
                        },
                        None => Ended::Dropped("the socket closed".into()),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Dropped(e.to_string()),
            },
            _ = ping.tick() => {
                if pong_due.is_some_and(|due| Instant::now() >= due) {
                    let _ = ws.close(None).await;
                    return Ended::Dropped(format!("no pong within {} s", PONG_TIMEOUT.as_secs()));
                }
                if pong_due.is_none() {
                    pong_due = Some(Instant::now() + PONG_TIMEOUT);
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        return Ended::Dropped(format!("cannot ping: {e}"));
                    }
                }
            }
            opened = async { replacement.as_mut().expect("guarded by the branch condition").await }, if replacement.is_some() => {
                replacement = None;
                match opened {
                    Ok(new) => {
                        let _ = ws.close(None).await;
                        return Ended::Replaced(Box::new(new));
                    }
                    // Keep the old socket while it lasts; it is replaced when it closes.
                    Err(error) => tracing::warn!(%error, "Slack replacement socket failed"),
                }
            }
        }
    }
}

/// Acts on one envelope and returns its acknowledgement, or `None` to leave it
/// unacknowledged (the event could not be recorded; Slack will redeliver it).
pub(crate) async fn handle_envelope(slack: &Slack, envelope: &Value) -> Option<Value> {
    let envelope_id = envelope["envelope_id"].as_str()?;
    let payload = &envelope["payload"];
    match envelope["type"].as_str() {
        Some("events_api") => match slack.ingest(payload).await {
            Ok(_) => Some(json!({"envelope_id": envelope_id})),
            Err(error) => {
                tracing::warn!(%error, "cannot record a Slack event; leaving it unacknowledged");
                None
            }
        },
        Some("interactive") => {
            let reply = slack.interact(payload).await;
            Some(match reply {
                Some(body) => json!({"envelope_id": envelope_id, "payload": body}),
                None => json!({"envelope_id": envelope_id}),
            })
        }
        Some("slash_commands") => Some(json!({"envelope_id": envelope_id, "payload": slack.command(payload).await})),
        _ => Some(json!({"envelope_id": envelope_id})),
    }
}
