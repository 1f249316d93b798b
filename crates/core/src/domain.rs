//! The enums every layer shares (roles, statuses, risk classes, tiers). Each has a stable
//! lowercase string form used in the database, the API and the CLI.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that is not one of an enum's allowed string forms.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{input:?} is not a valid {what}; expected one of: {allowed}")]
pub struct EnumParseError {
    /// What was being parsed (`role`, `task status`, …).
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
    /// The allowed values, comma-separated.
    pub allowed: String,
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form (database, API, CLI).
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = EnumParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(EnumParseError {
                        what: $what,
                        input: s.to_owned(),
                        allowed: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

string_enum!(
    /// A human member's role. Ordered from most to least powerful.
    Role, "role", {
        /// Full control, including other owners.
        Owner => "owner",
        /// Manages users, coworkers, connections and policy.
        Admin => "admin",
        /// Delegates tasks and decides approvals they are asked for.
        Member => "member",
        /// Reads only.
        Viewer => "viewer",
    }
);

impl Role {
    /// Numeric rank: higher is more powerful.
    pub fn rank(&self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
            Role::Viewer => 0,
        }
    }

    /// Whether this role grants at least the powers of `required`.
    pub fn at_least(&self, required: Role) -> bool {
        self.rank() >= required.rank()
    }

    /// The lesser of two roles (a token capped below its user's role acts with the cap).
    pub fn min(self, other: Role) -> Role {
        if self.rank() <= other.rank() { self } else { other }
    }
}

// Other modules of this crate (schedule) declare their enums the same way.
pub(crate) use string_enum;

string_enum!(
    /// Lifecycle of a task as people see it.
    TaskStatus, "task status", {
        /// Created, not yet picked up.
        Queued => "queued",
        /// A worker is executing its run.
        Running => "running",
        /// Waiting on a human (approval, answer) or a timer.
        Waiting => "waiting",
        /// Stuck: an approval expired twice or a limit needs a human.
        Blocked => "blocked",
        /// Finished successfully.
        Done => "done",
        /// Finished unsuccessfully.
        Failed => "failed",
        /// Stopped by a human.
        Cancelled => "cancelled",
    }
);

impl TaskStatus {
    /// Whether no further work will happen on the task.
    pub fn is_terminal(&self) -> bool {
        matches!(self, TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

string_enum!(
    /// Scheduling state of a run (engine view).
    RunStatus, "run status", {
        /// Runnable: any worker may claim it.
        Ready => "ready",
        /// Claimed by a worker holding a lease.
        Running => "running",
        /// Suspended until `wake_at` or an external event; holds no lease.
        Waiting => "waiting",
        /// Finished; never claimed again.
        Finished => "finished",
    }
);

string_enum!(
    /// How urgent a task is.
    Priority, "priority", {
        /// Background work.
        Low => "low",
        /// The default.
        Normal => "normal",
        /// Ahead of normal work.
        High => "high",
        /// Ahead of everything.
        Urgent => "urgent",
    }
);

string_enum!(
    /// What a tool call can do to the world (design §3).
    RiskClass, "risk class", {
        /// Search, fetch, list, read.
        Read => "read",
        /// Internal, revertible changes.
        Write => "write",
        /// Reaches people or systems outside the team.
        External => "external",
        /// Deletes data, deploys, moves money.
        Destructive => "destructive",
    }
);

string_enum!(
    /// What the policy gate does with a call.
    Tier, "tier", {
        /// Do it.
        Auto => "auto",
        /// Do it and tell the delegator.
        Notify => "notify",
        /// Block until a human approves.
        Approve => "approve",
    }
);

string_enum!(
    /// State of an approval row.
    ApprovalStatus, "approval status", {
        /// Waiting for a decision.
        Pending => "pending",
        /// A human said yes.
        Approved => "approved",
        /// A human said no.
        Rejected => "rejected",
        /// Nobody decided in time.
        Expired => "expired",
    }
);

string_enum!(
    /// Review state of a memory fact.
    FactStatus, "fact status", {
        /// Awaiting review; never injected into prompts.
        Proposed => "proposed",
        /// Injected into prompts when relevant.
        Approved => "approved",
        /// Out of retrieval; kept, never silently deleted.
        Archived => "archived",
    }
);

string_enum!(
    /// Memory scopes, widest first (design §4).
    Scope, "scope", {
        /// The whole organisation.
        Org => "org",
        /// One project.
        Project => "project",
        /// One coworker.
        Coworker => "coworker",
        /// One user.
        User => "user",
    }
);

string_enum!(
    /// What the gate does with provenance (issue 19, `[policy] provenance`): `enforce` raises
    /// a call whose arguments only untrusted content introduced to `approve`; `warn` journals
    /// and notifies only; `off` skips the check.
    ProvenanceMode, "provenance mode", {
        /// Raise tainted open-world calls to `approve` (the default).
        Enforce => "enforce",
        /// Journal the finding and notify the delegator; the tier is unchanged.
        Warn => "warn",
        /// No provenance check.
        Off => "off",
    }
);

// The enum comes from `string_enum!`, which has no way to mark a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for ProvenanceMode {
    fn default() -> Self {
        ProvenanceMode::Enforce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_variant() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        for status in TaskStatus::ALL {
            assert_eq!(status.to_string().parse::<TaskStatus>().unwrap(), *status);
        }
    }

    #[test]
    fn parse_error_lists_allowed_values() {
        let err = "boss".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("owner, admin, member, viewer"), "{err}");
    }

    #[test]
    fn role_ranks() {
        assert!(Role::Owner.at_least(Role::Admin));
        assert!(!Role::Viewer.at_least(Role::Member));
    }
}
