//! The connector catalog (issue 17): well-known services as MCP servers, shipped in the
//! binary (`catalog/connectors.toml`, versioned, reviewed by hand), each with its server
//! (an npm/uvx command or a remote URL), how it authenticates, the scopes it asks for and
//! risk overrides for its tools. [`Catalog::server`] turns an entry plus the operator's
//! inputs into the `McpServerConfig` that `coworker mcp add` would store. Pure: no I/O.

use std::collections::BTreeMap;

use coworker_core::config::{McpServerConfig, McpToolOverride};
use coworker_core::domain::RiskClass;
use serde::{Deserialize, Serialize};

/// The catalog's text.
pub const CATALOG_TOML: &str = include_str!("../catalog/connectors.toml");

/// How a connector authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorAuth {
    /// A key or token kept in the secret store.
    Token,
    /// Nothing.
    None,
    /// A per-person OAuth sign-in (issue 17): for a remote server, people connect their own
    /// accounts in the web app; a stdio entry with it cannot be connected (its server signs
    /// in by itself, outside Coworker).
    Oauth,
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connector {
    /// Its name: the server's name and the tools' namespace.
    pub name: String,
    /// For people.
    pub title: String,
    /// What it gives coworkers.
    pub description: String,
    /// Program of a stdio server.
    #[serde(default)]
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Endpoint of a remote (streamable HTTP) server.
    #[serde(default)]
    pub url: String,
    /// Headers sent to a remote server.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How it authenticates.
    pub auth: ConnectorAuth,
    /// The suggested secret name for its credential.
    #[serde(default)]
    pub secret: String,
    /// Values the operator must give (`--set NAME=VALUE`).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// What it asks the service for (OAuth scopes, token permissions).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Risk classes by tool glob.
    #[serde(default)]
    pub risk: BTreeMap<String, RiskClass>,
}

/// The catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Bumped with every change to the list.
    pub version: u32,
    /// The entries.
    #[serde(rename = "connector")]
    pub connectors: Vec<Connector>,
}

/// Why an entry could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// No such entry.
    #[error("there is no connector {name:?} in the catalog{}; `coworker connect --list` shows them", .suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    Unknown {
        /// What was asked for.
        name: String,
        /// The closest name.
        suggestion: Option<String>,
    },
    /// It needs a per-person sign-in its server runs by itself (a stdio server).
    #[error(
        "{name} signs in with OAuth inside its own (stdio) server, which Coworker cannot drive; if you have a \
         token its server accepts, add it with `coworker mcp add` instead, or give a remote endpoint with --url"
    )]
    NeedsOauth {
        /// The connector.
        name: String,
    },
    /// An input is missing or unknown.
    #[error("{0}")]
    Input(String),
    /// The result is not a valid server (a catalog bug).
    #[error("connector {name}: {message}")]
    Invalid {
        /// The connector.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl Catalog {
    /// The catalog shipped in the binary.
    pub fn builtin() -> Catalog {
        // Checked by a test on every build: a broken catalog never ships.
        toml::from_str(CATALOG_TOML).expect("catalog/connectors.toml is valid (checked by tests)")
    }

    /// The entry `name`, or the error with the closest name.
    pub fn get(&self, name: &str) -> Result<&Connector, CatalogError> {
        self.connectors.iter().find(|c| c.name == name).ok_or_else(|| {
            let lower = name.to_ascii_lowercase();
            let suggestion = self
                .connectors
                .iter()
                .find(|c| c.name == lower || c.title.to_ascii_lowercase() == lower)
                .map(|c| c.name.as_str())
                .or_else(|| coworker_core::text::closest(name, self.connectors.iter().map(|c| c.name.as_str())))
                .map(str::to_owned);
            CatalogError::Unknown {
                name: name.to_owned(),
                suggestion,
            }
        })
    }
}

impl Connector {
    /// The server this entry describes, named `name` (default: the entry's), with `secret`
    /// as its credential's secret name (default: the entry's) and `inputs` filling its
    /// `{INPUT}` placeholders. Its tools get the entry's risk overrides.
    pub fn server(
        &self,
        name: Option<&str>,
        secret: Option<&str>,
        inputs: &BTreeMap<String, String>,
    ) -> Result<McpServerConfig, CatalogError> {
        if self.auth == ConnectorAuth::Oauth && self.url.is_empty() {
            return Err(CatalogError::NeedsOauth {
                name: self.name.clone(),
            });
        }
        for given in inputs.keys() {
            if !self.inputs.contains(given) {
                return Err(CatalogError::Input(format!(
                    "{} takes no input {given:?}{}",
                    self.name,
                    if self.inputs.is_empty() {
                        String::new()
                    } else {
                        format!("; it takes {}", self.inputs.join(", "))
                    }
                )));
            }
        }
        let missing: Vec<&str> = self
            .inputs
            .iter()
            .filter(|i| inputs.get(*i).is_none_or(|v| v.trim().is_empty()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(CatalogError::Input(format!(
                "{} needs {}: give {}",
                self.name,
                missing.join(", "),
                missing
                    .iter()
                    .map(|m| format!("--set {m}=…"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        let secret = secret.map(str::to_owned).unwrap_or_else(|| self.secret.clone());
        let fill = |text: &str| -> String {
            let mut out = text.replace("{secret}", &secret);
            for (key, value) in inputs {
                out = out.replace(&format!("{{{key}}}"), value);
            }
            out
        };
        let server = McpServerConfig {
            name: name.unwrap_or(&self.name).to_owned(),
            command: self.command.clone(),
            args: self.args.iter().map(|a| fill(a)).collect(),
            env: self.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            url: self.url.clone(),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            oauth: (self.auth == ConnectorAuth::Oauth).then(|| coworker_core::config::McpOauthConfig {
                scopes: self.scopes.clone(),
                ..Default::default()
            }),
            tools: self
                .risk
                .iter()
                .map(|(glob, risk)| {
                    (
                        glob.clone(),
                        McpToolOverride {
                            risk: Some(*risk),
                            idempotent: None,
                        },
                    )
                })
                .collect(),
            ..McpServerConfig::default()
        };
        server
            .validate(&format!("connector {}", self.name))
            .map_err(|e| CatalogError::Invalid {
                name: self.name.clone(),
                message: e.to_string(),
            })?;
        Ok(server)
    }

    /// The same entry reached at `url` instead (a self-hosted or regional endpoint): a stdio
    /// OAuth entry becomes a remote one.
    pub fn at_url(&self, url: &str) -> Connector {
        let mut moved = self.clone();
        moved.url = url.trim().to_owned();
        moved.command.clear();
        moved.args.clear();
        moved.env.clear();
        moved
    }

    /// The secret name its credential is read from, when it takes one.
    pub fn secret_name<'a>(&'a self, chosen: Option<&'a str>) -> Option<&'a str> {
        (self.auth == ConnectorAuth::Token).then(|| chosen.unwrap_or(&self.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid_and_every_token_entry_builds_a_server() {
        let catalog = Catalog::builtin();
        assert!(catalog.version >= 1);
        for wanted in [
            "github",
            "linear",
            "hubspot",
            "notion",
            "gdrive",
            "gcalendar",
            "gmail",
            "salesforce",
            "jira",
            "stripe",
            "postgres",
            "filesystem",
        ] {
            assert!(catalog.get(wanted).is_ok(), "{wanted} is missing");
        }
        for connector in &catalog.connectors {
            let inputs: BTreeMap<String, String> =
                connector.inputs.iter().map(|i| (i.clone(), "x".to_owned())).collect();
            match connector.server(None, None, &inputs) {
                Ok(server) => {
                    assert_eq!(server.name, connector.name);
                    let values: Vec<&String> = server
                        .args
                        .iter()
                        .chain(server.env.values())
                        .chain(server.headers.values())
                        .collect();
                    assert!(
                        values.iter().all(|v| !v.contains('{')),
                        "{}: unfilled placeholder in {values:?}",
                        connector.name
                    );
                    let text = format!("{values:?}");
                    if connector.auth == ConnectorAuth::Token {
                        assert!(!connector.secret.is_empty(), "{}", connector.name);
                        assert!(
                            text.contains(&format!("secret:{}", connector.secret)),
                            "{}",
                            connector.name
                        );
                    }
                }
                Err(CatalogError::NeedsOauth { .. }) => assert_eq!(connector.auth, ConnectorAuth::Oauth),
                Err(e) => panic!("{}: {e}", connector.name),
            }
        }
    }
}
