//! Typed identifiers. Every entity id is a UUIDv7 (time-ordered, so primary-key indexes stay
//! append-mostly) wrapped in its own type so a `TaskId` can never be passed where a `RunId`
//! is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id (UUIDv7).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The raw UUID, for storage layers.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Short prefix used in logs and error messages (`task`, `run`, …).
            pub const KIND: &'static str = $prefix;
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| IdParseError { kind: $prefix, input: s.to_owned() })
            }
        }
    };
}

/// A string that is not a valid id of the expected kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{input:?} is not a valid {kind} id (expected a UUID such as 0192f0c4-6a3e-7c1d-9a53-1f0e2b3c4d5e)")]
pub struct IdParseError {
    /// Which kind of id was expected.
    pub kind: &'static str,
    /// The rejected input.
    pub input: String,
}

typed_id!(/// A human member of the organisation.
    UserId, "user");
typed_id!(/// An API token or sign-in token.
    TokenId, "token");
typed_id!(/// A named AI teammate.
    CoworkerId, "coworker");
typed_id!(/// A project: a scope grouping tasks, files and shared memory.
    ProjectId, "project");
typed_id!(/// A piece of delegated work.
    TaskId, "task");
typed_id!(/// The durable execution of a task.
    RunId, "run");
typed_id!(/// A pending human decision.
    ApprovalId, "approval");
typed_id!(/// A standing job on a cron schedule.
    ScheduleId, "schedule");
typed_id!(/// An event source (a signed webhook) that turns events into tasks.
    TriggerId, "trigger");
typed_id!(/// A curated statement in semantic memory.
    FactId, "fact");
typed_id!(/// The record of a finished task in episodic memory.
    EpisodeId, "episode");
typed_id!(/// An item in memory: a fact or an episode (issue 11 stores both in one table).
    MemoryId, "memory");
typed_id!(/// A versioned workspace file.
    FileId, "file");
typed_id!(/// A configured tool source (MCP server, OpenAPI spec, connector).
    ConnectionId, "connection");
typed_id!(/// A signed-in browser session.
    SessionId, "session");
typed_id!(/// An invitation link for a new member.
    InvitationId, "invitation");
typed_id!(/// Something a person is told (a notify-tier call, an escalation, a blocked task).
    NotificationId, "notification");
typed_id!(/// A named document template (issue 14).
    TemplateId, "template");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert!(a < b, "UUIDv7 ids created later must sort later");
        let parsed: TaskId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert_eq!(a.0.get_version_num(), 7);
    }

    #[test]
    fn bad_id_names_the_kind() {
        let err = "nope".parse::<RunId>().unwrap_err();
        assert!(err.to_string().contains("not a valid run id"), "{err}");
    }
}
