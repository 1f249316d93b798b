//! The channel interface of design §5: how the outside world (Slack, later email, Teams…)
//! reaches coworkers and how their messages reach it. A channel turns its events into
//! [`InboundMessage`]s and renders [`OutboundMessage`]s — text, files and [`Action`]s such as
//! approve/reject buttons — in its own idiom, and can update a message it posted in place.
//!
//! This module owns only the vocabulary and the trait; it performs no I/O. The engine knows no
//! channel: it writes journal events and notification rows, which channels read.

use std::future::Future;
use std::pin::Pin;

/// A boxed future returned by [`Channel`] methods (object-safe without extra crates).
pub type ChannelFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ChannelError>> + Send + 'a>>;

/// Where a message lives inside a channel: a workspace, a conversation and, optionally, the
/// thread in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conversation {
    /// The workspace (Slack team id; empty where the channel has none).
    pub workspace: String,
    /// The conversation (Slack channel or DM id).
    pub id: String,
    /// The thread's root message, if the message belongs to one.
    pub thread: Option<String>,
}

/// One message that arrived from a channel, already authenticated by the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Channel kind (`"slack"`).
    pub channel: String,
    /// Where it was written.
    pub conversation: Conversation,
    /// The channel's id of the message (Slack `ts`), unique within the conversation.
    pub message_id: String,
    /// The channel's id of its author (Slack user id).
    pub sender: String,
    /// The text, with any mention of the app removed.
    pub text: String,
    /// Whether it was written in a direct conversation with the app.
    pub direct: bool,
}

/// How an action button looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActionStyle {
    /// Plain.
    #[default]
    Default,
    /// Affirmative (Slack `primary`).
    Primary,
    /// Destructive (Slack `danger`).
    Danger,
}

/// A button a person can press on an outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Stable id of the action (`approve`, `reject`).
    pub id: String,
    /// Label shown.
    pub label: String,
    /// Look.
    pub style: ActionStyle,
    /// Opaque value returned when pressed (an approval id).
    pub value: String,
}

/// A message to show: a title line, body text in Markdown, optional fields and actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundMessage {
    /// One line shown first, in bold (may be empty).
    pub title: String,
    /// Body in Markdown; the channel renders and splits it.
    pub text: String,
    /// Labelled short facts (`What`, `Why`).
    pub fields: Vec<(String, String)>,
    /// A preformatted preview (a diff, pretty arguments), shown as code.
    pub preview: Option<String>,
    /// Buttons.
    pub actions: Vec<Action>,
    /// A closing line in small print (`Approved by Ada`).
    pub footer: Option<String>,
}

impl OutboundMessage {
    /// A message with only body text.
    pub fn text(text: impl Into<String>) -> Self {
        OutboundMessage {
            text: text.into(),
            ..OutboundMessage::default()
        }
    }
}

/// A file to deliver into a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundFile {
    /// File name shown.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// A message a channel posted, by which it can be updated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageRef {
    /// Conversation id.
    pub conversation: String,
    /// The channel's message id (Slack `ts`).
    pub id: String,
}

/// Why a channel could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The remote service refused the request (bad token, unknown channel…): retrying the
    /// same request will not help.
    #[error("{service} refused {method}: {error}")]
    Refused {
        /// `slack`.
        service: String,
        /// The API method.
        method: String,
        /// The service's error code.
        error: String,
    },
    /// The request may or may not have reached the service (timeout, connection reset).
    #[error("{service} {method}: {message}")]
    Transport {
        /// `slack`.
        service: String,
        /// The API method.
        method: String,
        /// What happened.
        message: String,
    },
}

/// A place messages can be posted, updated in place and files delivered.
pub trait Channel: Send + Sync {
    /// Channel kind (`"slack"`).
    fn kind(&self) -> &str;

    /// Posts `message` into `to` (its thread when `to.thread` is set). Posted once: a caller
    /// that needs exactly-once records its intent before calling.
    fn post<'a>(&'a self, to: &'a Conversation, message: &'a OutboundMessage) -> ChannelFuture<'a, MessageRef>;

    /// Replaces the message `at` with `message` (buttons included).
    fn update<'a>(&'a self, at: &'a MessageRef, message: &'a OutboundMessage) -> ChannelFuture<'a, ()>;

    /// Uploads `file` into `to`.
    fn deliver_file<'a>(&'a self, to: &'a Conversation, file: &'a OutboundFile) -> ChannelFuture<'a, ()>;
}
