//! `coworker.toml`: the configuration schema, its defaults, environment overrides and the
//! errors people see when they get it wrong.
//!
//! Loading is pure: the caller reads the file and the environment and passes them in, so
//! every error path is unit-tested without touching the disk. Precedence, lowest first:
//! built-in defaults, `COWORKER_HOME` (default data dir only), the file, environment
//! variables. Command-line flags are applied by the CLI on top.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::text::{closest, line_column};

/// Prefix of every environment variable the configuration reads.
pub const ENV_PREFIX: &str = "COWORKER_";

/// Prefix of the standard OpenTelemetry variables the configuration also reads
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, …; see [`crate::trace::config`]).
pub const OTEL_ENV_PREFIX: &str = "OTEL_";

/// Separator between path segments in `COWORKER_SECTION__KEY` variables.
pub const ENV_PATH_SEPARATOR: &str = "__";

/// Short environment names for the most common overrides, with the key each one sets.
pub const ENV_SHORTCUTS: &[(&str, &str)] = &[
    ("COWORKER_DATABASE_URL", "storage.database_url"),
    ("COWORKER_DATA_DIR", "storage.data_dir"),
    ("COWORKER_LISTEN", "server.listen"),
];

/// Environment variable naming the default data directory (used when neither the file nor
/// `COWORKER_DATA_DIR` sets one).
pub const ENV_HOME: &str = "COWORKER_HOME";

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".coworker";

/// Default listen address: loopback only, so a fresh install is not exposed to the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The whole configuration. Every key is optional; see [`Config::default`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Database and data directory.
    pub storage: StorageConfig,
    /// Logging.
    pub log: LogConfig,
    /// Model providers (`[[providers]]`); empty means zero-config detection.
    pub providers: Vec<ProviderConfig>,
    /// Model choice, call limits and catalog overrides.
    pub models: ModelsConfig,
    /// The run engine: workers, leases, limits.
    pub engine: EngineConfig,
    /// Policy gate defaults: tiers by risk class, approval lifetime.
    pub policy: PolicyConfig,
    /// MCP servers (`[[mcp]]`), in addition to those added with `coworker mcp add`.
    pub mcp: Vec<McpServerConfig>,
    /// Built-in toolsets.
    pub tools: ToolsConfig,
    /// Encryption of stored secrets.
    pub secrets: SecretsConfig,
    /// The scheduler (schedules, watches) and inbound webhooks.
    pub schedules: SchedulesConfig,
    /// Memory: embedder, context sizes, consolidation and decay (issue 11).
    pub memory: MemoryConfig,
    /// Slack (issue 13): off unless `bot_token` is set.
    pub slack: SlackConfig,
    /// Mailboxes (`[[email]]`, issue 16).
    pub email: Vec<crate::email::EmailConfig>,
    /// Calendars (`[[calendar]]`, issue 16).
    pub calendar: Vec<crate::calendar::CalendarConfig>,
    /// OpenTelemetry traces (issue 18): off unless an endpoint is set here or in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub traces: crate::trace::config::TracesConfig,
}

/// `[policy]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Org default tier for each risk class. (How long an approval waits is each
    /// coworker's `limits.approval_ttl_secs`.)
    pub tiers: crate::policy::TierDefaults,
    /// Provenance checks (issue 19): `enforce` (default) raises a call to `approve` when an
    /// argument value only untrusted content introduced reaches an open-world tool; `warn`
    /// journals and notifies only; `off`.
    pub provenance: crate::domain::ProvenanceMode,
}

/// Per-tool overrides of what an MCP server's annotations say.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpToolOverride {
    /// Risk class to use instead of the one derived from annotations.
    pub risk: Option<crate::domain::RiskClass>,
    /// Idempotency to use instead of `idempotentHint`.
    pub idempotent: Option<bool>,
}

/// Tool namespaces of the engine and the built-in toolsets; no MCP server may take one.
pub const RESERVED_TOOL_NAMESPACES: &[&str] = &["tasks", "workspace", "http", "documents", "email", "calendar"];

/// Checks `name` can be the namespace of a tool source (an MCP server, an OpenAPI
/// connection): tools are named `{name}.{tool}`, so it must be letters, digits, `-` or single
/// `_`, and not a built-in toolset's. `key` names it in the error.
pub fn check_tool_namespace(name: &str, key: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || name.contains("__")
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?} is not a server name"),
            "use letters, digits, '-' or single '_' (tools are named \"{name}.{tool}\"), e.g. \"fs\"",
        ));
    }
    if RESERVED_TOOL_NAMESPACES.contains(&name) {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?} is the namespace of a built-in toolset"),
            format!("choose another name; reserved: {}", RESERVED_TOOL_NAMESPACES.join(", ")),
        ));
    }
    Ok(())
}

/// One `[[mcp]]` server: a child process (`command`) or a streamable-HTTP endpoint (`url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    /// Namespace of its tools: `{name}.{tool}`.
    pub name: String,
    /// Program to start (stdio transport).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment; a value `secret:NAME` is read from the secret store.
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory of the child (empty: the node's).
    pub cwd: String,
    /// Streamable-HTTP endpoint (instead of `command`).
    pub url: String,
    /// HTTP headers; a value `secret:NAME` is read from the secret store.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Seconds one tool call may take before it is cancelled.
    pub timeout_secs: u64,
    /// Roles whose delegated tasks may use this server's tools (empty: every role that can
    /// delegate).
    pub roles: Vec<crate::domain::Role>,
    /// Overrides by tool name (glob, without the server prefix).
    pub tools: std::collections::BTreeMap<String, McpToolOverride>,
    /// Set for a remote server that people connect to with their own OAuth sign-in (the MCP
    /// authorization spec, issue 17): the node then runs no connection of its own to it, and
    /// each call uses the delegator's connection (or an org-wide one their role may use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<McpOauthConfig>,
}

/// `[mcp.oauth]`: how people connect to an OAuth-protected remote MCP server. Every key is
/// optional: with none, the client registers itself (RFC 7591) at the authorization server
/// the server's protected-resource metadata names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpOauthConfig {
    /// A client registered beforehand at the authorization server (empty: dynamic client
    /// registration).
    pub client_id: String,
    /// Its secret, for a confidential client: `secret:NAME` (empty: a public client).
    pub client_secret: String,
    /// Scopes to ask for (empty: those the server's metadata lists, if any).
    pub scopes: Vec<String>,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            command: String::new(),
            args: Vec::new(),
            env: Default::default(),
            cwd: String::new(),
            url: String::new(),
            headers: Default::default(),
            timeout_secs: 60,
            roles: Vec::new(),
            tools: Default::default(),
            oauth: None,
        }
    }
}

impl McpServerConfig {
    /// Checks one server entry; `at` names it in errors (e.g. `mcp[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{at}.{k}");
        check_tool_namespace(&self.name, &key("name"))?;
        match (self.command.trim().is_empty(), self.url.trim().is_empty()) {
            (true, true) => {
                return Err(ConfigError::invalid(
                    &key("command"),
                    "neither command nor url is set",
                    "set command (and args) to start a stdio server, or url for a streamable-HTTP one",
                ));
            }
            (false, false) => {
                return Err(ConfigError::invalid(
                    &key("url"),
                    "both command and url are set",
                    "keep one: command for a stdio server, url for a streamable-HTTP one",
                ));
            }
            (true, false) if !is_empty_or_http_url(&self.url) => {
                return Err(ConfigError::invalid(
                    &key("url"),
                    format!("{:?} is not an http(s) URL", self.url),
                    "use the server's full endpoint, e.g. \"https://mcp.example.com/mcp\"",
                ));
            }
            _ => {}
        }
        if let Some(oauth) = &self.oauth {
            if self.url.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &key("oauth"),
                    "OAuth sign-in is for remote (streamable HTTP) servers, and url is not set",
                    "set url to the server's endpoint, or remove [mcp.oauth] for a stdio server",
                ));
            }
            if self.headers.keys().any(|h| h.eq_ignore_ascii_case("authorization")) {
                return Err(ConfigError::invalid(
                    &key("headers"),
                    "an Authorization header is set on a server people connect to with OAuth",
                    "remove it: each call sends the delegator's own token",
                ));
            }
            if !oauth.client_secret.is_empty() && !oauth.client_secret.starts_with("secret:") {
                return Err(ConfigError::invalid(
                    &key("oauth.client_secret"),
                    "is not a secret reference",
                    "store it with `coworker secrets set NAME` and write \"secret:NAME\"",
                ));
            }
            if !oauth.client_secret.is_empty() && oauth.client_id.is_empty() {
                return Err(ConfigError::invalid(
                    &key("oauth.client_id"),
                    "a client_secret is set without its client_id",
                    "set the client_id the authorization server gave with the secret",
                ));
            }
        }
        if self.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                &key("timeout_secs"),
                "must be at least 1",
                "the default is 60",
            ));
        }
        Ok(())
    }
}

/// `[tools]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// `http.fetch`.
    pub http: HttpFetchConfig,
    /// `workspace.*`.
    pub workspace: WorkspaceConfig,
}

/// `[tools.http]`: the egress policy and limits of `http.fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpFetchConfig {
    /// Host globs always allowed (even if they resolve to private addresses).
    pub allow: Vec<String>,
    /// Host globs always refused.
    pub deny: Vec<String>,
    /// Allow loopback, private and link-local addresses (never the metadata address).
    pub allow_private: bool,
    /// Largest response body read, in bytes.
    pub max_bytes: u64,
    /// Seconds for the whole fetch.
    pub timeout_secs: u64,
}

impl Default for HttpFetchConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            allow_private: false,
            max_bytes: 2 * 1024 * 1024,
            timeout_secs: 20,
        }
    }
}

/// `[tools.workspace]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceConfig {
    /// Largest file a coworker may write, in bytes.
    pub max_file_bytes: u64,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 10 * 1024 * 1024,
        }
    }
}

// ---- memory (issue 11) ----

/// Which embedder turns memory text into vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// A MiniLM-class model run in-process from `model_dir` (or the installed default);
    /// full text only, with a start-up line, when no model is installed and none configured.
    #[default]
    Local,
    /// An OpenAI-compatible `/embeddings` endpoint.
    Openai,
    /// No vectors: full-text retrieval only (`doctor` warns).
    None,
}

impl EmbedderKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedderKind::Local => "local",
            EmbedderKind::Openai => "openai",
            EmbedderKind::None => "none",
        }
    }
}

/// `[memory]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// `local`, `openai` or `none`.
    pub embedder: EmbedderKind,
    /// Directory holding `model.safetensors`, `tokenizer.json` and `config.json`. Empty: the
    /// directory `coworker memory install-model` installs to.
    pub model_dir: String,
    /// Base URL of the OpenAI-compatible embeddings endpoint (`embedder = "openai"`).
    pub openai_base_url: String,
    /// Embedding model name at that endpoint.
    pub openai_model: String,
    /// Environment variable holding its API key.
    pub openai_api_key_env: String,
    /// Approved facts put into a task's context.
    pub facts_in_context: u32,
    /// Past episodes put into a task's context.
    pub episodes_in_context: u32,
    /// Most tokens memory may take of a task's context.
    pub max_context_tokens: u32,
    /// Largest text of one memory item, in bytes.
    pub max_text_bytes: u32,
    /// Hours between consolidation runs (0 = never; `coworker memory consolidate` runs it now).
    pub consolidate_every_hours: u32,
    /// Hours between decay runs (0 = never).
    pub decay_every_hours: u32,
    /// Decay archives approved items older than this many days ...
    pub decay_after_days: u32,
    /// ... unused for this many days ...
    pub decay_unused_days: u32,
    /// ... and used at most this many times.
    pub decay_max_use_count: u32,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            embedder: EmbedderKind::Local,
            model_dir: String::new(),
            openai_base_url: "https://api.openai.com/v1".to_owned(),
            openai_model: "text-embedding-3-small".to_owned(),
            openai_api_key_env: "OPENAI_API_KEY".to_owned(),
            facts_in_context: 5,
            episodes_in_context: 10,
            max_context_tokens: 4000,
            max_text_bytes: 16384,
            consolidate_every_hours: 168,
            decay_every_hours: 24,
            decay_after_days: 180,
            decay_unused_days: 90,
            decay_max_use_count: 0,
        }
    }
}

/// `[secrets]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// File holding the master key (created 0600 on first run). Empty: `master.key` in the
    /// data dir. `COWORKER_MASTER_KEY` (64 hex digits) wins over the file.
    pub key_file: String,
}

/// `[schedules]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulesConfig {
    /// Run the scheduler on this node (every node may: fires are claimed atomically).
    pub scheduler: bool,
    /// Longest the scheduler sleeps between looks at the schedules, in ms.
    pub max_sleep_ms: u64,
    /// Schedules claimed per transaction (1–200).
    pub batch: u32,
    /// Largest webhook body accepted on `/hooks/{id}`, in bytes (larger: 413).
    pub max_webhook_bytes: u64,
    /// How far a webhook's timestamp may be from now, in seconds (older or newer: 401).
    pub webhook_tolerance_secs: u64,
}

impl Default for SchedulesConfig {
    fn default() -> Self {
        Self {
            scheduler: true,
            max_sleep_ms: 250,
            batch: 100,
            max_webhook_bytes: 256 * 1024,
            webhook_tolerance_secs: 300,
        }
    }
}

/// `[engine]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Runs driven concurrently by this node (0 = this node runs no engine: API only).
    pub workers: u32,
    /// Lease length in ms: a crashed node's runs are taken over after this.
    pub lease_ttl_ms: u64,
    /// Lease renewal period in ms; must be well under `lease_ttl_ms`.
    pub heartbeat_ms: u64,
    /// Fallback poll period in ms when no wake-up notification arrives.
    pub poll_interval_ms: u64,
    /// Largest tool result put into a model's context, in bytes.
    pub max_tool_result_bytes: u64,
    /// Directory of coworker definitions (`<handle>.toml`), relative to the working directory.
    pub coworkers_dir: String,
    /// Limits on coworkers delegating to coworkers (issue 15).
    pub delegation: DelegationConfig,
}

/// `[engine.delegation]`: limits on delegation between coworkers (issue 15).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelegationConfig {
    /// Deepest level a subtask may be at; the task a person delegated is depth 0.
    pub max_depth: u32,
    /// Most subtasks one task may delegate.
    pub max_fan_out: u32,
    /// Most unfinished subtasks across the organisation at once.
    pub max_in_flight: u32,
    /// Failures of the same subtask after which delegating it again asks the delegator.
    pub max_subtask_failures: u32,
    /// A task tree's total cost, in US dollars, past which it waits for an approval to
    /// continue (each approval allows as much again); 0 disables the check.
    pub tree_cost_approval_usd: f64,
}

impl Default for DelegationConfig {
    fn default() -> Self {
        Self {
            max_depth: 3,
            max_fan_out: 10,
            max_in_flight: 100,
            max_subtask_failures: 3,
            tree_cost_approval_usd: 10.0,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_ttl_ms: 30_000,
            heartbeat_ms: 10_000,
            poll_interval_ms: 5_000,
            max_tool_result_bytes: 16_384,
            coworkers_dir: "coworkers".to_owned(),
            delegation: DelegationConfig::default(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// URL people use to reach this node; used in links sent to chat and email. Empty means
    /// `http://{listen}`.
    pub public_url: String,
    /// Largest request body accepted, in bytes; larger requests get 413.
    pub max_request_bytes: u64,
    /// How long graceful shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            public_url: String::new(),
            max_request_bytes: 2 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the SQLite database, blobs, key file and credentials.
    pub data_dir: String,
    /// Empty: SQLite in the data dir. `postgres://…`: PostgreSQL (scale-out).
    pub database_url: String,
    /// Largest number of pooled database connections.
    pub max_connections: u32,
    /// How long a query waits for a locked SQLite database or a pooled connection, in ms.
    pub busy_timeout_ms: u64,
    /// SQLite's page cache for the whole pool, in MiB, shared out evenly among the
    /// connections (SQLite's own default is 2 MiB per connection, which lets a long-running
    /// node's memory creep up as each connection fills its cache). Ignored on PostgreSQL.
    pub sqlite_cache_mib: u32,
    /// Where file content lives: empty for `{data_dir}/blobs`, or `s3://bucket/prefix` on
    /// S3-compatible storage (several nodes share it; see `[storage.s3]`).
    pub blobs: String,
    /// The S3-compatible store of `blobs = "s3://…"`.
    pub s3: S3Config,
}

/// `[storage.s3]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint URL of an S3-compatible server (MinIO, R2, Ceph…); empty for AWS.
    pub endpoint: String,
    /// Region (AWS: the bucket's; others accept any). Default `us-east-1`.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key: `secret:NAME`, `env:NAME` or the literal.
    pub secret_access_key: String,
    /// Allow a plain-`http://` endpoint (local servers only).
    pub allow_http: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: DEFAULT_DATA_DIR.to_owned(),
            database_url: String::new(),
            max_connections: 16,
            busy_timeout_ms: 5_000,
            sqlite_cache_mib: 8,
            blobs: String::new(),
            s3: S3Config::default(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Wire format of a model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI chat completions, and every server speaking it (Ollama, vLLM, llama.cpp server,
    /// OpenRouter, Groq, …).
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    /// The lowercase name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }

    /// The vendor's own API, used when `base_url` is empty.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The environment variable holding the vendor's API key by convention.
    pub fn default_api_key_env(self) -> &'static str {
        match self {
            ProviderKind::Openai => "OPENAI_API_KEY",
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// One `[[providers]]` entry. Holds the *name* of the variable with the key, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name used in model references: `{name}/{model}`.
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// API base URL. Empty: the vendor's own API for `kind`.
    #[serde(default)]
    pub base_url: String,
    /// Environment variable holding the API key. Empty: `OPENAI_API_KEY` /
    /// `ANTHROPIC_API_KEY` when `base_url` is the vendor's API, else no key (local servers).
    #[serde(default)]
    pub api_key_env: String,
    /// Name of a stored secret (`coworker secrets set NAME`) holding the API key, encrypted at
    /// rest, instead of an environment variable.
    #[serde(default)]
    pub api_key_secret: String,
}

impl ProviderConfig {
    /// The base URL to call.
    pub fn effective_base_url(&self) -> &str {
        let url = self.base_url.trim();
        if url.is_empty() {
            self.kind.default_base_url()
        } else {
            url
        }
    }

    /// The variable to read the key from, or `None` when no key is sent.
    pub fn effective_api_key_env(&self) -> Option<&str> {
        let var = self.api_key_env.trim();
        if !var.is_empty() {
            Some(var)
        } else if self.base_url.trim().is_empty() || self.base_url.trim_end_matches('/') == self.kind.default_base_url()
        {
            Some(self.kind.default_api_key_env())
        } else {
            None
        }
    }
}

/// `[models]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model for every purpose not set in `purposes`, as `provider/model`. Empty: chosen from
    /// the connected providers.
    pub default: String,
    /// Model tried when the chosen one's provider still fails after its retries. Empty: none.
    pub fallback: String,
    /// Model per purpose; empty entries use `default`.
    pub purposes: PurposeModels,
    /// Stream responses (server-sent events) rather than wait for one JSON body.
    pub stream: bool,
    /// Most attempts per model call, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry, in ms; doubles per retry, with jitter.
    pub retry_base_delay_ms: u64,
    /// Longest backoff between two attempts, in ms (a provider's Retry-After may ask longer).
    pub retry_max_delay_ms: u64,
    /// Total time for one model call across all its attempts and waits, in ms.
    pub retry_deadline_ms: u64,
    /// Limit on opening a connection to a provider, in ms.
    pub connect_timeout_ms: u64,
    /// Limit on waiting for the first byte of a response (and between streamed chunks), in ms.
    pub first_byte_timeout_ms: u64,
    /// Limit on one attempt, whole response included, in ms.
    pub call_timeout_ms: u64,
    /// With no `[[providers]]`, look for an Ollama server on 127.0.0.1:11434 at start-up.
    pub detect_ollama: bool,
    /// Catalog additions and overrides (`[[models.catalog]]`).
    pub catalog: Vec<CatalogEntryConfig>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            default: String::new(),
            fallback: String::new(),
            purposes: PurposeModels::default(),
            stream: true,
            max_attempts: 4,
            retry_base_delay_ms: 500,
            retry_max_delay_ms: 20_000,
            retry_deadline_ms: 600_000,
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 120_000,
            call_timeout_ms: 300_000,
            detect_ollama: true,
            catalog: Vec::new(),
        }
    }
}

/// `[models.purposes]`: model per call purpose; empty uses `models.default`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PurposeModels {
    /// Proposing a plan.
    pub plan: String,
    /// The main tool-calling loop.
    pub act: String,
    /// Cheap triage decisions.
    pub classify: String,
    /// Compressing history and documents.
    pub summarize: String,
    /// Checking deliverables.
    pub validate: String,
}

impl PurposeModels {
    /// `(purpose name, model)` pairs, in a fixed order.
    pub fn entries(&self) -> [(&'static str, &str); 5] {
        [
            ("plan", self.plan.as_str()),
            ("act", self.act.as_str()),
            ("classify", self.classify.as_str()),
            ("summarize", self.summarize.as_str()),
            ("validate", self.validate.as_str()),
        ]
    }
}

/// One `[[models.catalog]]` entry: adds a model or overrides the fields it sets. Prices are
/// dollars per million tokens as written on price pages; Coworker converts them once to
/// integer micro-dollars.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntryConfig {
    /// `provider/model`, e.g. `openrouter/meta-llama/llama-3.3-70b-instruct`.
    pub id: String,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Dollars per million uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_usd_per_mtok: Option<f64>,
    /// Dollars per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_usd_per_mtok: Option<f64>,
    /// Dollars per million input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_usd_per_mtok: Option<f64>,
    /// Dollars per million input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_usd_per_mtok: Option<f64>,
}

/// Highest price per million tokens accepted in `[[models.catalog]]`, in dollars: anything
/// above is surely a unit mistake (per token instead of per million is the other way round,
/// but per billion or cents would land here).
pub const MAX_USD_PER_MTOK: f64 = 10_000.0;

/// Most attempts a model call may be configured to make.
pub const MAX_MODEL_ATTEMPTS: u32 = 10;

/// How Slack reaches the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Socket Mode: the node opens a WebSocket to Slack (no public URL needed).
    #[default]
    Socket,
    /// Events API: Slack POSTs signed requests to the node's `/slack/*` endpoints.
    Events,
}

/// Default Slack Web API base URL (method names are appended).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api/";

/// `[slack]`: the Slack app this node speaks for. Token values are credential references
/// ([`CredentialRef`]), never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// `socket` or `events`.
    pub mode: SlackMode,
    /// Bot token (`xoxb-…`); Slack is off while empty.
    pub bot_token: String,
    /// App-level token (`xapp-…`, `connections:write`) for Socket Mode.
    pub app_token: String,
    /// Signing secret for the Events API.
    pub signing_secret: String,
    /// Web API base URL, ending in `/`.
    pub api_url: String,
    /// Handle of the coworker a message goes to when it names none.
    pub default_coworker: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            mode: SlackMode::Socket,
            bot_token: String::new(),
            app_token: String::new(),
            signing_secret: String::new(),
            api_url: DEFAULT_SLACK_API_URL.to_owned(),
            default_coworker: "assistant".to_owned(),
        }
    }
}

impl std::fmt::Debug for SlackConfig {
    // Literal tokens may sit in these fields: show only whether each is set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &str| if v.is_empty() { "(unset)" } else { "(set)" };
        f.debug_struct("SlackConfig")
            .field("mode", &self.mode)
            .field("bot_token", &shown(&self.bot_token))
            .field("app_token", &shown(&self.app_token))
            .field("signing_secret", &shown(&self.signing_secret))
            .field("api_url", &self.api_url)
            .field("default_coworker", &self.default_coworker)
            .finish()
    }
}

/// Where a credential's value comes from: `env:NAME`, `secret:NAME`, or the literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// The value itself.
    Literal,
    /// An environment variable.
    Env(String),
    /// A secret in the encrypted secret store.
    Secret(String),
}

impl CredentialRef {
    /// Classifies a configured value.
    pub fn parse(value: &str) -> CredentialRef {
        let value = value.trim();
        if let Some(name) = value.strip_prefix("env:") {
            CredentialRef::Env(name.trim().to_owned())
        } else if let Some(name) = value.strip_prefix("secret:") {
            CredentialRef::Secret(name.trim().to_owned())
        } else {
            CredentialRef::Literal
        }
    }
}

impl SlackConfig {
    /// Whether Slack is configured at all.
    pub fn enabled(&self) -> bool {
        !self.bot_token.trim().is_empty()
    }

    /// Checks the section (only when enabled).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        for (key, value) in [
            ("bot_token", &self.bot_token),
            ("app_token", &self.app_token),
            ("signing_secret", &self.signing_secret),
        ] {
            match CredentialRef::parse(value) {
                CredentialRef::Env(name) | CredentialRef::Secret(name) if name.is_empty() => {
                    return Err(ConfigError::invalid(
                        &format!("slack.{key}"),
                        format!("{value:?} names no variable or secret"),
                        "write env:NAME, secret:NAME or the value itself",
                    ));
                }
                _ => {}
            }
        }
        match self.mode {
            SlackMode::Socket if self.app_token.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "slack.app_token",
                    "is empty, and mode = \"socket\" needs it",
                    "create an app-level token with connections:write (Slack app settings → Basic Information), or use mode = \"events\" with signing_secret",
                ));
            }
            SlackMode::Events if self.signing_secret.trim().is_empty() => {
                return Err(ConfigError::invalid(
                    "slack.signing_secret",
                    "is empty, and mode = \"events\" needs it",
                    "copy the signing secret from the Slack app's Basic Information page",
                ));
            }
            _ => {}
        }
        let url = self.api_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || !url.ends_with('/') {
            return Err(ConfigError::invalid(
                "slack.api_url",
                format!("{url:?} is not an http(s) URL ending in '/'"),
                format!("the default is {DEFAULT_SLACK_API_URL:?}; method names are appended to it"),
            ));
        }
        if self.default_coworker.trim().is_empty() {
            return Err(ConfigError::invalid(
                "slack.default_coworker",
                "is empty",
                "name the coworker a message goes to when it names none, e.g. \"assistant\"",
            ));
        }
        Ok(())
    }
}

/// Environment variables as (name, value) pairs.
type EnvVars = Vec<(String, String)>;

/// Which database a configuration points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// SQLite file inside the data dir.
    Sqlite,
    /// PostgreSQL at the given URL.
    Postgres,
}

impl Config {
    /// Parses `file_text` (if any) and applies `env` overrides, then validates.
    ///
    /// `file_name` is only used in error messages. `env` is the process environment (or a
    /// test's stand-in); variables not starting with `COWORKER_` are ignored.
    pub fn load<I, K, V>(file_name: &str, file_text: Option<&str>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (env, otel_env): (EnvVars, EnvVars) = env
            .into_iter()
            .filter(|(k, _)| k.as_ref().starts_with(ENV_PREFIX) || k.as_ref().starts_with(OTEL_ENV_PREFIX))
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .partition(|(k, _)| k.starts_with(ENV_PREFIX));

        let (mut config, file_sets_data_dir) = match file_text {
            Some(text) => (parse_file(file_name, text)?, file_sets_data_dir(text)),
            None => (Config::default(), false),
        };
        if !file_sets_data_dir && let Some((_, home)) = env.iter().find(|(k, v)| k == ENV_HOME && !v.is_empty()) {
            config.storage.data_dir = home.clone();
        }
        // The standard OTEL_* variables sit between the file and COWORKER_TRACES__*.
        crate::trace::config::apply_otel_env(&mut config.traces, &otel_env)?;
        config = apply_env(config, &env)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.storage.data_dir.trim().is_empty() {
            return Err(ConfigError::invalid(
                "storage.data_dir",
                "must not be empty",
                "set it to a directory path, e.g. \".coworker\"",
            ));
        }
        self.database_kind()?;
        if self.engine.heartbeat_ms == 0 || self.engine.heartbeat_ms * 2 > self.engine.lease_ttl_ms {
            return Err(ConfigError::invalid(
                "engine.heartbeat_ms",
                format!(
                    "({}) must be at least 1 and at most half of engine.lease_ttl_ms ({})",
                    self.engine.heartbeat_ms, self.engine.lease_ttl_ms
                ),
                "the defaults are 10000 and 30000",
            ));
        }
        if self.storage.max_connections == 0 {
            return Err(ConfigError::invalid(
                "storage.max_connections",
                "must be at least 1",
                "the default is 16",
            ));
        }
        if !(1..=65_536).contains(&self.storage.sqlite_cache_mib) {
            return Err(ConfigError::invalid(
                "storage.sqlite_cache_mib",
                format!("({}) must be between 1 and 65536", self.storage.sqlite_cache_mib),
                "the default is 8",
            ));
        }
        if self.server.max_request_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_request_bytes",
                "must be at least 1024",
                "the default is 2097152 (2 MiB)",
            ));
        }
        if !is_empty_or_http_url(&self.server.public_url) {
            return Err(ConfigError::invalid(
                "server.public_url",
                format!("{:?} is not an http(s) URL", self.server.public_url),
                "use a full URL such as \"https://coworker.example.com\", or leave it empty",
            ));
        }
        self.validate_models()?;
        validate_named(
            "mcp",
            "[[mcp]] servers",
            "give each server its own name",
            &self.mcp,
            |s| &s.name,
            |s, at| s.validate(at),
        )?;
        self.slack.validate()?;
        crate::email::validate_all(&self.email)?;
        crate::calendar::validate_all(&self.calendar)?;
        self.traces.validate()?;
        if self.tools.http.timeout_secs == 0 || self.tools.http.max_bytes == 0 {
            return Err(ConfigError::invalid(
                "tools.http",
                "timeout_secs and max_bytes must be at least 1",
                "the defaults are 20 and 2097152",
            ));
        }
        Ok(())
    }

    fn validate_models(&self) -> Result<(), ConfigError> {
        let mut names: Vec<&str> = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |key: &str| format!("providers[{i}].{key}");
            let name = p.name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(ConfigError::invalid(
                    &at("name"),
                    format!("{:?} is not a provider name", p.name),
                    "use letters, digits, '-', '_' or '.', e.g. \"openai\" (models are addressed as \"name/model\")",
                ));
            }
            if names.contains(&name) {
                return Err(ConfigError::invalid(
                    &at("name"),
                    format!("{name:?} is used by two providers"),
                    "give each [[providers]] entry its own name",
                ));
            }
            names.push(name);
            if !p.api_key_env.trim().is_empty() && !p.api_key_secret.trim().is_empty() {
                return Err(ConfigError::invalid(
                    &at("api_key_secret"),
                    "is set together with api_key_env",
                    "keep one: api_key_secret (a stored, encrypted secret) or api_key_env (an environment variable)",
                ));
            }
            let url = p.base_url.trim();
            if !is_empty_or_http_url(url) {
                return Err(ConfigError::invalid(
                    &at("base_url"),
                    format!("{url:?} is not an http(s) URL"),
                    "e.g. \"https://api.openai.com/v1\" or \"http://127.0.0.1:11434/v1\"; empty uses the vendor's API",
                ));
            }
            let var = p.api_key_env.trim();
            if !var.is_empty() && !is_env_var_name(var) {
                return Err(ConfigError::invalid(
                    &at("api_key_env"),
                    format!("{var:?} is not an environment variable name"),
                    "name the variable that holds the key, e.g. \"OPENAI_API_KEY\" (never the key itself)",
                ));
            }
        }
        let models = &self.models;
        let mut refs = vec![
            ("models.default".to_owned(), models.default.as_str()),
            ("models.fallback".to_owned(), models.fallback.as_str()),
        ];
        refs.extend(
            models
                .purposes
                .entries()
                .into_iter()
                .map(|(purpose, model)| (format!("models.purposes.{purpose}"), model)),
        );
        for (key, model) in refs {
            if !model.trim().is_empty() && !is_model_ref(model) {
                return Err(ConfigError::invalid(
                    &key,
                    format!("{model:?} is not a model reference"),
                    "write \"provider/model\", e.g. \"openai/gpt-4.1-mini\", or leave it empty",
                ));
            }
        }
        if models.max_attempts == 0 || models.max_attempts > MAX_MODEL_ATTEMPTS {
            return Err(ConfigError::invalid(
                "models.max_attempts",
                format!("must be between 1 and {MAX_MODEL_ATTEMPTS}"),
                "the default is 4",
            ));
        }
        for (key, value) in [
            ("models.retry_deadline_ms", models.retry_deadline_ms),
            ("models.connect_timeout_ms", models.connect_timeout_ms),
            ("models.first_byte_timeout_ms", models.first_byte_timeout_ms),
            ("models.call_timeout_ms", models.call_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(
                    key,
                    "must be at least 1",
                    "it is a time limit in milliseconds",
                ));
            }
        }
        let mut ids: Vec<&str> = Vec::new();
        for (i, entry) in models.catalog.iter().enumerate() {
            if !is_model_ref(&entry.id) {
                return Err(ConfigError::invalid(
                    &format!("models.catalog[{i}].id"),
                    format!("{:?} is not a model reference", entry.id),
                    "write \"provider/model\", e.g. \"openrouter/meta-llama/llama-3.3-70b-instruct\"",
                ));
            }
            if ids.contains(&entry.id.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("models.catalog[{i}].id"),
                    format!("{:?} is listed twice", entry.id),
                    "keep one entry per model",
                ));
            }
            ids.push(&entry.id);
            for (key, price) in [
                ("input_usd_per_mtok", entry.input_usd_per_mtok),
                ("output_usd_per_mtok", entry.output_usd_per_mtok),
                ("cache_read_usd_per_mtok", entry.cache_read_usd_per_mtok),
                ("cache_write_usd_per_mtok", entry.cache_write_usd_per_mtok),
            ] {
                if let Some(price) = price
                    && !(price.is_finite() && (0.0..=MAX_USD_PER_MTOK).contains(&price))
                {
                    return Err(ConfigError::invalid(
                        &format!("models.catalog[{i}].{key}"),
                        format!("{price} is not a price between 0 and {MAX_USD_PER_MTOK}"),
                        "prices are dollars per million tokens, e.g. 2.5 for $2.50/M",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.trim().parse().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!("{:?} is not an address and port", self.server.listen),
                "use IP:PORT, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\"",
            )
        })
    }

    /// Which database `storage.database_url` selects.
    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.storage.database_url.trim();
        if url.is_empty() {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(ConfigError::invalid(
                "storage.database_url",
                "must be empty (SQLite in the data dir) or a postgres:// URL",
                "e.g. \"postgres://coworker@db.internal/coworker\"",
            ))
        }
    }

    /// The URL people use to reach this node.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen.trim())
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }
}

fn is_model_ref(text: &str) -> bool {
    text.trim()
        .split_once('/')
        .is_some_and(|(provider, model)| !provider.is_empty() && !model.is_empty())
}

fn is_empty_or_http_url(url: &str) -> bool {
    url.is_empty() || url.starts_with("http://") || url.starts_with("https://")
}

fn is_env_var_name(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn file_sets_data_dir(text: &str) -> bool {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("storage")
                .and_then(|s| s.as_table())
                .map(|s| s.contains_key("data_dir"))
        })
        .unwrap_or(false)
}

fn parse_file(file_name: &str, text: &str) -> Result<Config, ConfigError> {
    let position = |span: Option<std::ops::Range<usize>>| span.map_or((0, 0), |s| line_column(text, s.start));
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        let (line, column) = position(e.span());
        ConfigError::Syntax {
            file: file_name.to_owned(),
            line,
            column,
            message: e.message().to_owned(),
        }
    })?;
    serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|e| {
        let (line, column) = position(e.inner().span());
        let key_path = e.path().to_string();
        let message = e.inner().message().to_owned();
        classify_serde_error(file_name, line, column, key_path, message)
    })
}

fn classify_serde_error(file: &str, line: usize, column: usize, key_path: String, message: String) -> ConfigError {
    if message.starts_with("unknown field") {
        // serde's message: unknown field `x`, expected one of `a`, `b` (or `a` or `b`).
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        let valid: Vec<String> = quoted.iter().skip(1).map(|s| (*s).to_owned()).collect();
        let unknown = quoted.first().copied().unwrap_or_default();
        let parent = key_path.rsplit_once('.').map(|(p, _)| p.to_owned());
        let suggestion = closest(unknown, valid.iter().map(String::as_str))
            .map(|s| parent.as_ref().map_or_else(|| s.to_owned(), |p| format!("{p}.{s}")));
        return ConfigError::UnknownKey {
            file: file.to_owned(),
            line,
            column,
            key_path,
            suggestion,
            valid,
        };
    }
    ConfigError::InvalidValue {
        file: file.to_owned(),
        line,
        column,
        key_path,
        message,
    }
}

/// The key path an environment variable sets, or `None` if it is not a config variable.
pub fn env_key_path(var: &str) -> Option<String> {
    if let Some((_, path)) = ENV_SHORTCUTS.iter().find(|(name, _)| *name == var) {
        return Some((*path).to_owned());
    }
    let rest = var.strip_prefix(ENV_PREFIX)?;
    if !rest.contains(ENV_PATH_SEPARATOR) {
        return None;
    }
    Some(
        rest.split(ENV_PATH_SEPARATOR)
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn apply_env(config: Config, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut overrides: Vec<(&str, String, &str)> = env
        .iter()
        .filter_map(|(var, value)| env_key_path(var).map(|path| (var.as_str(), path, value.as_str())))
        .collect();
    if overrides.is_empty() {
        return Ok(config);
    }
    // Shortcuts first, so an explicit COWORKER_SECTION__KEY wins over its shortcut.
    overrides.sort_by_key(|(var, _, _)| !ENV_SHORTCUTS.iter().any(|(name, _)| name == var));

    let mut table =
        toml::Table::try_from(&config).map_err(|e| ConfigError::invalid("(environment)", e.to_string(), ""))?;
    let schema = toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError::invalid("(environment)", e.to_string(), ""))?;
    for (var, path, raw) in overrides {
        let segments: Vec<&str> = path.split('.').collect();
        let Some(expected) = lookup(&schema, &segments) else {
            let all = all_key_paths(&schema, "");
            return Err(ConfigError::UnknownEnvKey {
                var: var.to_owned(),
                key_path: path.clone(),
                suggestion: closest(&path, all.iter().map(String::as_str)).map(str::to_owned),
            });
        };
        let value = typed_env_value(expected, raw).map_err(|message| ConfigError::InvalidEnvValue {
            var: var.to_owned(),
            key_path: path.clone(),
            message,
        })?;
        set(&mut table, &segments, value);
    }
    let text = toml::to_string(&table).map_err(|e| ConfigError::invalid("(environment)", e.to_string(), ""))?;
    toml::from_str::<Config>(&text).map_err(|e| ConfigError::InvalidEnvValue {
        var: "(environment)".to_owned(),
        key_path: String::new(),
        message: e.message().to_owned(),
    })
}

fn lookup<'a>(table: &'a toml::Table, segments: &[&str]) -> Option<&'a toml::Value> {
    let (first, rest) = segments.split_first()?;
    let value = table.get(*first)?;
    if rest.is_empty() {
        Some(value)
    } else {
        lookup(value.as_table()?, rest)
    }
}

fn set(table: &mut toml::Table, segments: &[&str], value: toml::Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.insert((*first).to_owned(), value);
        return;
    }
    let entry = table
        .entry((*first).to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(inner) = entry {
        set(inner, rest, value);
    }
}

fn all_key_paths(table: &toml::Table, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => out.extend(all_key_paths(inner, &path)),
            _ => out.push(path),
        }
    }
    out
}

/// Converts an environment string to the TOML type the key expects.
fn typed_env_value(expected: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match expected {
        toml::Value::String(_) => Ok(toml::Value::String(raw.to_owned())),
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{raw:?} is not a whole number")),
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("{raw:?} is not a number")),
        toml::Value::Boolean(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        _ => {
            let parsed: toml::Table = format!("v = {raw}")
                .parse()
                .map_err(|_| format!("{raw:?} is not a TOML value (arrays are written [\"a\", \"b\"])"))?;
            parsed
                .get("v")
                .cloned()
                .ok_or_else(|| format!("{raw:?} is not a TOML value"))
        }
    }
}

/// A configuration problem, written for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML.
    #[error("{file}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A key that Coworker does not know.
    #[error("{file}:{line}:{column}: unknown key `{key_path}`{}", suggestion_text(suggestion.as_deref(), valid))]
    UnknownKey {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Full dotted path of the unknown key.
        key_path: String,
        /// The closest valid key path, if any is close.
        suggestion: Option<String>,
        /// Valid keys at that level.
        valid: Vec<String>,
    },
    /// A known key with a value of the wrong type or shape.
    #[error("{file}:{line}:{column}: `{key_path}`: {message}")]
    InvalidValue {
        /// File name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Full dotted path of the key.
        key_path: String,
        /// What is wrong.
        message: String,
    },
    /// A `COWORKER_SECTION__KEY` variable naming no known key.
    #[error("environment variable {var} sets unknown key `{key_path}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}` ({})?", env_var_for(s))).unwrap_or_default())]
    UnknownEnvKey {
        /// The variable name.
        var: String,
        /// The key path it maps to.
        key_path: String,
        /// The closest valid key path.
        suggestion: Option<String>,
    },
    /// An environment variable whose value does not fit its key.
    #[error("environment variable {var} (`{key_path}`): {message}")]
    InvalidEnvValue {
        /// The variable name.
        var: String,
        /// The key path it maps to.
        key_path: String,
        /// What is wrong.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("`{key_path}` {message}{}", if hint.is_empty() { String::new() } else { format!(" ({hint})") })]
    Invalid {
        /// Full dotted path of the key.
        key_path: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key_path: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key_path: key_path.to_owned(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

fn suggestion_text(suggestion: Option<&str>, valid: &[String]) -> String {
    match (suggestion, valid.is_empty()) {
        (Some(s), _) => format!("; did you mean `{s}`?"),
        (None, false) => format!("; valid keys here: {}", valid.join(", ")),
        (None, true) => String::new(),
    }
}

/// The environment variable that sets `key_path` by the general rule.
pub fn env_var_for(key_path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key_path
            .split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join(ENV_PATH_SEPARATOR)
    )
}

/// Checks each entry of an array of sections (`validate` gets its `section[i]` path) and that
/// their names are unique; `what` names them in the error (`[[mcp]] servers`).
pub(crate) fn validate_named<T>(
    section: &str,
    what: &str,
    fix: &str,
    items: &[T],
    name: impl Fn(&T) -> &str,
    validate: impl Fn(&T, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let mut names: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{section}[{i}]");
        validate(item, &at)?;
        let this = name(item);
        if names.contains(&this) {
            return Err(ConfigError::invalid(
                &format!("{at}.name"),
                format!("{this:?} is used by two {what}"),
                fix,
            ));
        }
        names.push(this);
    }
    Ok(())
}

/// The commented `coworker.toml` that `coworker init` writes: every key, its default and a
/// one-line explanation. Uncommenting any line yields a valid file (a test checks that the
/// fully uncommented file parses to exactly [`Config::default`]).
pub const CONFIG_TEMPLATE: &str = r#"# coworker.toml — every key is optional; the values shown are the defaults.
# Environment variables override the file: COWORKER_SECTION__KEY (e.g. COWORKER_SERVER__LISTEN),
# plus the shortcuts COWORKER_LISTEN, COWORKER_DATA_DIR and COWORKER_DATABASE_URL.

# [server]
# Address and port to listen on. Use "0.0.0.0:8080" to accept connections from other machines.
# listen = "127.0.0.1:8080"
# URL people use to reach this node (links in chat and email). Empty: http://{listen}.
# public_url = ""
# Largest request body accepted, in bytes (larger requests get 413).
# max_request_bytes = 2097152
# Seconds graceful shutdown waits for in-flight requests on SIGINT/SIGTERM.
# shutdown_grace_secs = 30

# [storage]
# Directory for the SQLite database, files, key file and the owner credential.
# Default: $COWORKER_HOME if set, else ".coworker" in the working directory.
# data_dir = ".coworker"
# Empty: SQLite in the data dir. "postgres://user@host/db": PostgreSQL, to run several nodes.
# database_url = ""
# Largest number of pooled database connections.
# max_connections = 16
# Milliseconds a query waits for a busy database or a free pooled connection.
# busy_timeout_ms = 5000
# SQLite only: MiB of page cache for the whole pool, shared among its connections (bounds
# how much memory caching takes on a long-running node).
# sqlite_cache_mib = 8
# Where file content lives: empty for the data dir, or "s3://bucket/prefix" on S3-compatible
# storage that several nodes share (with [storage.s3]; copy what the data dir already holds
# with `coworker migrate-blobs --to s3`).
# blobs = ""

# [storage.s3]
# Endpoint of an S3-compatible server (MinIO, R2, Ceph, moto); empty for AWS.
# endpoint = ""
# Region; empty means us-east-1.
# region = ""
# access_key_id = ""
# "secret:NAME", "env:NAME" or the literal.
# secret_access_key = ""
# A plain-http endpoint (local servers only).
# allow_http = false

# [log]
# "human" for terminals, "json" for log shippers (also: --log-format).
# format = "human"
# Which messages to log, in RUST_LOG syntax; RUST_LOG itself wins when set.
# filter = "info"

# [engine]
# Runs this node drives at once (0: serve the API only and leave runs to other nodes).
# workers = 4
# Lease length in ms: if a node dies, another takes its runs over after this.
# lease_ttl_ms = 30000
# Lease renewal period in ms (well under lease_ttl_ms).
# heartbeat_ms = 10000
# Fallback poll period in ms when no wake-up notification arrives.
# poll_interval_ms = 5000
# Largest tool result put into a model's context, in bytes (the rest is cut, with a note).
# max_tool_result_bytes = 16384
# Directory of coworker definitions, one <handle>.toml each.
# coworkers_dir = "coworkers"

# [engine.delegation]
# Deepest level a subtask may be at (the task a person delegated is depth 0).
# max_depth = 3
# Most subtasks one task may delegate.
# max_fan_out = 10
# Most unfinished subtasks across the organisation at once.
# max_in_flight = 100
# Failures of the same subtask after which delegating it again asks the delegator.
# max_subtask_failures = 3
# A task tree's total cost in US dollars past which it waits for an approval (0: never).
# tree_cost_approval_usd = 10.0

# Model providers. With none configured, Coworker uses OPENAI_API_KEY or ANTHROPIC_API_KEY
# from the environment, or an Ollama server on 127.0.0.1:11434, and says so at start-up.
# Add one [[providers]] section per provider (models are addressed as "name/model"):
#   [[providers]]
#   name = "openai"                     # the "openai" in "openai/gpt-4.1-mini"
#   kind = "openai"                     # "openai" (any OpenAI-compatible server) | "anthropic"
#   base_url = "https://api.openai.com/v1"   # empty: the vendor's API
#   api_key_env = "OPENAI_API_KEY"      # the variable holding the key, never the key itself
#   api_key_secret = ""                 # or: a secret holding it (`coworker secrets set NAME`)
#
#   [[providers]]
#   name = "ollama"
#   kind = "openai"
#   base_url = "http://127.0.0.1:11434/v1"

# [models]
# Model for every purpose not set below, as "provider/model". Empty: picked from the
# connected providers.
# default = ""
# Model tried when the chosen one's provider still fails after its retries. Empty: none.
# fallback = ""
# Stream responses as server-sent events (false: wait for one JSON body).
# stream = true
# Most attempts per model call, the first included (429, 5xx and broken connections are retried).
# max_attempts = 4
# Backoff before the first retry, in ms; doubles each retry, with jitter.
# retry_base_delay_ms = 500
# Longest backoff between attempts, in ms (a provider's Retry-After may ask for longer).
# retry_max_delay_ms = 20000
# Total time for one model call across all attempts and waits, in ms.
# retry_deadline_ms = 600000
# Limits on connecting, on waiting for the first byte, and on one whole attempt, in ms.
# connect_timeout_ms = 10000
# first_byte_timeout_ms = 120000
# call_timeout_ms = 300000
# With no [[providers]], look for an Ollama server on 127.0.0.1:11434 at start-up.
# detect_ollama = true
# Add models to the catalog or override prices (dollars per million tokens):
#   [[models.catalog]]
#   id = "openrouter/meta-llama/llama-3.3-70b-instruct"
#   context_window = 131072
#   input_usd_per_mtok = 0.13
#   output_usd_per_mtok = 0.40
#   cache_read_usd_per_mtok = 0.0
#   cache_write_usd_per_mtok = 0.0

# [models.purposes]
# Model per purpose, as "provider/model"; empty uses models.default.
# plan = ""
# act = ""
# classify = ""
# summarize = ""
# validate = ""

# [policy]
# Provenance (injection resistance): a URL, host, email, phone or account number, file path,
# channel or user name that only untrusted content (tool results, fetched pages, messages
# from non-members) introduced raises a call to an open-world tool to "approve". "warn"
# journals and notifies only; "off" disables the check. Per-coworker allow-lists are the
# allow_hosts and allow_recipients keys of the [provenance] table in coworkers/<handle>.toml.
# provenance = "enforce"

# [policy.tiers]
# What happens to a tool call by its risk class: "auto" (do it), "notify" (do it and tell the
# delegator) or "approve" (wait for a human). Coworkers override these per tool glob; how long
# an approval waits before it goes to the coworker's manager (and, after as long again, blocks
# the task) is each coworker's limits.approval_ttl_secs (default 4 h).
# read = "auto"
# write = "notify"
# external = "approve"
# destructive = "approve"

# MCP servers; their tools are named "{name}.{tool}". Also: coworker mcp add NAME -- COMMAND ARGS
#   [[mcp]]
#   name = "fs"
#   command = "npx"
#   args = ["-y", "@modelcontextprotocol/server-filesystem", "./shared-drive"]
#   env = { LOG_LEVEL = "warn" }        # a value "secret:NAME" comes from `coworker secrets`
#   timeout_secs = 60                   # per tool call
#   roles = ["owner", "admin", "member"]   # whose tasks may use it (empty: everyone)
#   tools = { "write_*" = { risk = "write", idempotent = false } }   # override annotations
#
#   [[mcp]]
#   name = "tickets"
#   url = "https://mcp.example.com/mcp"
#   headers = { Authorization = "secret:tickets-token" }
#
#   [[mcp]]                             # people connect their own accounts (OAuth 2.1)
#   name = "notes"
#   url = "https://mcp.example.com/mcp"
#   [mcp.oauth]                         # client_id / client_secret = "secret:NAME" / scopes;
#                                       # empty: dynamic client registration

# [tools.http]
# http.fetch egress policy: host globs always allowed / always refused.
# allow = []
# deny = []
# Allow loopback, private (10/8, 172.16/12, 192.168/16) and link-local addresses. The cloud
# metadata address stays refused.
# allow_private = false
# Largest response body read, in bytes, and seconds for the whole fetch.
# max_bytes = 2097152
# timeout_secs = 20

# [tools.workspace]
# Largest file a coworker may write, in bytes.
# max_file_bytes = 10485760

# [secrets]
# File holding the master key that encrypts stored secrets (created with mode 0600 on first
# run). Empty: master.key in the data dir. COWORKER_MASTER_KEY (64 hex digits) wins over it.
# key_file = ""

# [schedules]
# Run the scheduler on this node; any number of nodes may (each fire is claimed once).
# scheduler = true
# Longest the scheduler sleeps between looks at the schedules, in ms.
# max_sleep_ms = 250
# Schedules claimed per transaction (1-200).
# batch = 100
# Largest webhook body accepted on /hooks/{id}, in bytes (larger: 413).
# max_webhook_bytes = 262144
# How far a webhook's X-Coworker-Timestamp may be from now, in seconds (else 401).
# webhook_tolerance_secs = 300

# [memory]
# Embedder: "local" (a MiniLM model run in-process; `coworker memory install-model` installs
# it), "openai" (an OpenAI-compatible /embeddings endpoint) or "none" (full text only).
# embedder = "local"
# Directory holding model.safetensors, tokenizer.json and config.json; empty: the installed one.
# model_dir = ""
# openai_base_url = "https://api.openai.com/v1"
# openai_model = "text-embedding-3-small"
# openai_api_key_env = "OPENAI_API_KEY"
# Facts and past episodes put into each task's context, and the tokens they may take.
# facts_in_context = 5
# episodes_in_context = 10
# max_context_tokens = 4000
# Largest text of one memory item, in bytes.
# max_text_bytes = 16384
# Hours between consolidation (episodes -> proposed facts) and decay runs; 0 = never.
# consolidate_every_hours = 168
# decay_every_hours = 24
# Decay archives approved items older than decay_after_days, unused for decay_unused_days
# and used at most decay_max_use_count times. Nothing is deleted.
# decay_after_days = 180
# decay_unused_days = 90
# decay_max_use_count = 0

# [slack]
# Off while bot_token is empty. Each token is a literal, "env:NAME" (an environment variable)
# or "secret:NAME" (the encrypted secret store: `coworker secrets set NAME`).
# "socket" (Socket Mode: needs app_token, no public URL) or "events" (Events API over HTTP at
# /slack/events, /slack/interactivity and /slack/commands: needs signing_secret).
# mode = "socket"
# bot_token = ""
# app_token = ""
# signing_secret = ""
# Slack's Web API base; method names are appended (point it at a test server in tests).
# api_url = "https://slack.com/api/"
# The coworker a message goes to when it names none.
# default_coworker = "assistant"

# [traces]
# OpenTelemetry traces over OTLP: one trace per task run, spans for model calls, tool calls,
# approval waits and deliveries (GenAI conventions). Off while endpoint is empty; the standard
# OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, _HEADERS, _TIMEOUT and OTEL_SERVICE_NAME set the same
# keys (COWORKER_TRACES__* wins over them; OTEL_SDK_DISABLED=true turns traces off).
# The collector: base URL for http/protobuf (/v1/traces is appended), e.g. http://localhost:4318;
# for grpc, e.g. http://localhost:4317.
# endpoint = ""
# "http/protobuf" or "grpc".
# protocol = "http/protobuf"
# service_name = "coworker"
# Sent with every export; each value a literal, "env:NAME" or "secret:NAME".
# headers = {}
# Milliseconds one export may take.
# timeout_ms = 10000
# Finished spans held while the collector is slow or down; past it new spans are dropped.
# max_queue_spans = 2048

#   [[email]]
# A coworker's mailbox: mail from members becomes tasks, replies reach the same run, and
# email.send / email.reply send through SMTP (external tier: they wait for approval).
#   name = "ada"
#   coworker = "ada"
#   address = "ada@example.com"
#   imap_url = "imaps://imap.example.com:993"   # imap:// is plaintext unless starttls = true
#   smtp_url = "smtps://smtp.example.com:465"   # smtp:// is plaintext unless starttls = true
#   username = "ada@example.com"
#   password = "secret:ada-mail"                # or env:NAME, or the literal
#   starttls = false
#   folder = "INBOX"
#   poll_secs = 60                               # without IDLE; IDLE is renewed as often
#   max_message_bytes = 26214400                 # larger mail is refused and left in place
#   [[email.triggers]]                           # mail from non-members: data for a task
#   name = "invoices"
#   from = "@supplier.example"
#   subject = "invoice"
#   owner = "finance@example.com"
#   brief = "File the invoice: {{ email.subject }}"

#   [[calendar]]
# An ICS feed or CalDAV collection, polled; triggers fire before matching events.
#   name = "ada-work"
#   owner = "you@example.com"                    # or coworker = "ada"
#   coworker = "ada"
#   url = "https://calendar.example.com/feed.ics"
#   kind = "ics"                                 # or "caldav" (also calendar.create_event)
#   username = ""
#   password = ""
#   timezone = "UTC"                             # for floating times
#   poll_secs = 300
#   [[calendar.triggers]]
#   name = "prep"
#   minutes_before = 60
#   external_only = true
#   brief = "Prepare a brief for {{ event.summary }} at {{ event.start }}"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::load("coworker.toml", Some(text), no_env())
    }

    #[test]
    fn traces_come_from_the_file_then_otel_variables_then_coworker_variables() {
        let file = "[traces]\nendpoint = \"http://file:4318\"\nservice_name = \"from-file\"\n";
        let config = load(file).unwrap();
        assert_eq!(config.traces.export_url(), "http://file:4318/v1/traces");
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("COWORKER_TRACES__SERVICE_NAME", "from-coworker-env"),
            ("OTEL_SERVICE_NAME", "from-otel-env"),
        ];
        let config = Config::load("coworker.toml", Some(file), env).unwrap();
        assert_eq!(config.traces.endpoint, "http://otel:4317");
        assert_eq!(config.traces.protocol().as_str(), "grpc");
        assert_eq!(config.traces.service_name, "from-coworker-env");
        // Nothing set: off.
        assert!(!load("").unwrap().traces.enabled());
    }

    #[test]
    fn bad_trace_settings_fail_the_load_with_the_key_or_variable() {
        let error = load("[traces]\nendpoint = \"http://c:4318\"\nprotocol = \"udp\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("traces.protocol") && error.contains("\"udp\""),
            "{error}"
        );
        let error = load("[traces]\nendpoint = \"localhost:4318\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("traces.endpoint") && error.contains("http://"),
            "{error}"
        );
        let error = Config::load("x", None, [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && error.contains("not supported"),
            "{error}"
        );
    }

    #[test]
    fn empty_and_missing_files_give_defaults() {
        assert_eq!(load("").unwrap(), Config::default());
        assert_eq!(Config::load("x", None, no_env()).unwrap(), Config::default());
    }

    #[test]
    fn template_uncommented_is_exactly_the_defaults() {
        let uncommented: String = CONFIG_TEMPLATE
            .lines()
            .map(|line| {
                let body = line.strip_prefix("# ").unwrap_or(line);
                let is_setting = body.starts_with('[') || body.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '));
                if is_setting { body.to_owned() } else { String::new() }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = load(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(parsed, Config::default());
        // And the template as written (all commented) is valid too.
        assert_eq!(load(CONFIG_TEMPLATE).unwrap(), Config::default());
    }

    #[test]
    fn slack_section_is_checked_only_when_enabled() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        assert_eq!(
            load("[slack]\nmode = \"events\"\n").unwrap().slack.mode,
            SlackMode::Events
        );
        assert!(err("[slack]\nbot_token = \"env:B\"\n").contains("slack.app_token"));
        assert!(err("[slack]\nmode = \"events\"\nbot_token = \"x\"\n").contains("slack.signing_secret"));
        assert!(err("[slack]\nbot_token = \"x\"\napp_token = \"secret:\"\n").contains("names no variable"));
        assert!(
            err("[slack]\nbot_token = \"x\"\napp_token = \"y\"\napi_url = \"http://h/api\"\n")
                .contains("ending in '/'")
        );
        let ok = load("[slack]\nbot_token = \"xoxb-1\"\napp_token = \"env:APP\"\n").unwrap();
        assert!(
            !format!("{:?}", ok.slack).contains("xoxb"),
            "tokens never Debug-printed"
        );
        assert_eq!(CredentialRef::parse("env:APP"), CredentialRef::Env("APP".into()));
        assert_eq!(CredentialRef::parse("secret:s"), CredentialRef::Secret("s".into()));
        assert_eq!(CredentialRef::parse("xoxb-1"), CredentialRef::Literal);
    }

    #[test]
    fn mcp_servers_are_validated_with_their_position() {
        let err = |text: &str| load(text).unwrap_err().to_string();
        assert!(err("[[mcp]]\nname = \"fs\"\n").contains("mcp[0].command"));
        assert!(
            err("[[mcp]]\nname = \"fs\"\ncommand = \"x\"\nurl = \"http://a/mcp\"\n").contains("both command and url")
        );
        assert!(err("[[mcp]]\nname = \"a__b\"\ncommand = \"x\"\n").contains("not a server name"));
        assert!(err("[[mcp]]\nname = \"workspace\"\ncommand = \"x\"\n").contains("built-in toolset"));
        assert!(
            err("[[mcp]]\nname = \"fs\"\ncommand = \"x\"\n[[mcp]]\nname = \"fs\"\nurl = \"http://a/mcp\"\n")
                .contains("mcp[1].name")
        );
        let ok = load(
            "[[mcp]]\nname = \"fs\"\ncommand = \"npx\"\nargs = [\"-y\", \"pkg\"]\n[mcp.tools.\"write_*\"]\nrisk = \"write\"\n",
        )
        .unwrap();
        assert_eq!(ok.mcp[0].timeout_secs, 60);
        assert_eq!(ok.mcp[0].tools["write_*"].risk, Some(crate::domain::RiskClass::Write));
    }

    #[test]
    fn malformed_toml_reports_line_and_column() {
        let err = load("[server]\nlisten = \"127.0.0.1:1\"\nmax_request_bytes = = 3\n").unwrap_err();
        match &err {
            ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (3, 21)),
            other => panic!("expected a syntax error, got {other:?}"),
        }
        assert!(err.to_string().starts_with("coworker.toml:3:21: invalid TOML"), "{err}");
    }

    #[test]
    fn unknown_key_names_path_position_and_closest_key() {
        let err = load("[server]\nlisen = \"127.0.0.1:9\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "coworker.toml:2:1: unknown key `server.lisen`; did you mean `server.listen`?"
        );
        let err = load("[storag]\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown key `storag`; did you mean `storage`?"),
            "{err}"
        );
        let err = load("[server]\nzzzzzzzzzz = 1\n").unwrap_err();
        assert!(err.to_string().contains("valid keys here: listen, public_url"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load("[storage]\nmax_connections = \"many\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("coworker.toml:2:19: `storage.max_connections`"),
            "{text}"
        );
    }

    #[test]
    fn invalid_listen_address_is_explained() {
        let err = load("[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("`server.listen` \"localhost\" is not an address and port"),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_win_over_the_file_and_are_typed() {
        let env = vec![
            ("COWORKER_LISTEN".to_owned(), "0.0.0.0:9000".to_owned()),
            ("COWORKER_STORAGE__MAX_CONNECTIONS".to_owned(), "4".to_owned()),
            ("COWORKER_DATABASE_URL".to_owned(), "postgres://u@h/db".to_owned()),
            ("COWORKER_TOKEN".to_owned(), "ignored: not a config key".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = Config::load("c.toml", Some("[server]\nlisten = \"127.0.0.1:1\"\n"), env).unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9000");
        assert_eq!(config.storage.max_connections, 4);
        assert_eq!(config.database_kind().unwrap(), DatabaseKind::Postgres);
    }

    #[test]
    fn explicit_env_key_wins_over_shortcut() {
        let env = vec![
            ("COWORKER_SERVER__LISTEN".to_owned(), "127.0.0.1:2".to_owned()),
            ("COWORKER_LISTEN".to_owned(), "127.0.0.1:1".to_owned()),
        ];
        assert_eq!(Config::load("c", None, env).unwrap().server.listen, "127.0.0.1:2");
    }

    #[test]
    fn unknown_or_mistyped_env_keys_are_errors() {
        let err = Config::load("c", None, vec![("COWORKER_SERVER__LISTN", "x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable COWORKER_SERVER__LISTN sets unknown key `server.listn`; did you mean `server.listen` (COWORKER_SERVER__LISTEN)?"
        );
        let err = Config::load("c", None, vec![("COWORKER_STORAGE__MAX_CONNECTIONS", "lots")]).unwrap_err();
        assert!(err.to_string().contains("\"lots\" is not a whole number"), "{err}");
    }

    #[test]
    fn coworker_home_sets_default_data_dir_only() {
        let env = vec![("COWORKER_HOME", "/srv/cw")];
        assert_eq!(
            Config::load("c", None, env.clone()).unwrap().storage.data_dir,
            "/srv/cw"
        );
        let from_file = Config::load("c", Some("[storage]\ndata_dir = \"/data\"\n"), env).unwrap();
        assert_eq!(from_file.storage.data_dir, "/data");
    }

    #[test]
    fn database_url_must_be_postgres_or_empty() {
        let err = load("[storage]\ndatabase_url = \"mysql://x\"\n").unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn providers_and_models_parse_with_defaults() {
        let config = load(
            "[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\n[[providers]]\nname = \"ollama\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\n\n[models]\ndefault = \"openai/gpt-4.1-mini\"\n[models.purposes]\nplan = \"ollama/llama3.2\"\n[[models.catalog]]\nid = \"ollama/llama3.2\"\ncontext_window = 131072\n",
        )
        .unwrap();
        assert_eq!(config.providers.len(), 2);
        let openai = &config.providers[0];
        assert_eq!(openai.effective_base_url(), "https://api.openai.com/v1");
        assert_eq!(openai.effective_api_key_env(), Some("OPENAI_API_KEY"));
        let ollama = &config.providers[1];
        assert_eq!(
            ollama.effective_api_key_env(),
            None,
            "a local server gets no key unless asked"
        );
        assert_eq!(config.models.purposes.plan, "ollama/llama3.2");
        assert_eq!(config.models.max_attempts, 4);
        assert_eq!(config.models.catalog[0].context_window, Some(131072));
    }

    #[test]
    fn bad_provider_and_model_settings_name_the_key() {
        let err = load("[[providers]]\nname = \"a/b\"\nkind = \"openai\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`providers[0].name` \"a/b\" is not a provider name"),
            "{err}"
        );
        let err =
            load("[[providers]]\nname = \"x\"\nkind = \"openai\"\n[[providers]]\nname = \"x\"\nkind = \"anthropic\"\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("`providers[1].name` \"x\" is used by two providers"),
            "{err}"
        );
        let err = load("[[providers]]\nname = \"x\"\nkind = \"openai\"\napi_key_env = \"sk-123\"\n").unwrap_err();
        assert!(err.to_string().contains("never the key itself"), "{err}");
        let err = load("[[providers]]\nname = \"x\"\nkind = \"gemini\"\n").unwrap_err();
        assert!(err.to_string().contains("providers[0].kind"), "{err}");
        let err = load("[models.purposes]\nplan = \"gpt-4\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`models.purposes.plan` \"gpt-4\" is not a model reference"),
            "{err}"
        );
        let err = load("[models]\nmax_attempts = 0\n").unwrap_err();
        assert!(err.to_string().contains("models.max_attempts"), "{err}");
        let err = load("[[models.catalog]]\nid = \"a/b\"\ninput_usd_per_mtok = -1.0\n").unwrap_err();
        assert!(
            err.to_string().contains("`models.catalog[0].input_usd_per_mtok`"),
            "{err}"
        );
    }

    #[test]
    fn model_settings_can_come_from_the_environment() {
        let env = vec![
            ("COWORKER_MODELS__DEFAULT", "anthropic/claude-sonnet-4-5"),
            ("COWORKER_MODELS__MAX_ATTEMPTS", "2"),
        ];
        let config = Config::load("c", None, env).unwrap();
        assert_eq!(config.models.default, "anthropic/claude-sonnet-4-5");
        assert_eq!(config.models.max_attempts, 2);
    }
}
