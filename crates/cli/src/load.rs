//! Finds and loads the configuration: `--config`, else `./coworker.toml` if present, else
//! defaults; then environment overrides; then command-line flags.

use std::path::Path;

use anyhow::Context;
use coworker_core::config::Config;

/// A loaded configuration and where it came from.
pub struct Loaded {
    pub config: Config,
    pub source: String,
}

/// Default configuration file looked for in the working directory.
const DEFAULT_CONFIG_FILE: &str = "coworker.toml";

pub fn config(explicit: Option<&Path>, data_dir: Option<&Path>, listen: Option<&str>) -> anyhow::Result<Loaded> {
    let (name, text) = match explicit {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read config file {} (run `coworker init` to create one)",
                    path.display()
                )
            })?;
            (path.display().to_string(), Some(text))
        }
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            let text = std::fs::read_to_string(DEFAULT_CONFIG_FILE)
                .with_context(|| format!("cannot read {DEFAULT_CONFIG_FILE}"))?;
            (DEFAULT_CONFIG_FILE.to_owned(), Some(text))
        }
        None => ("(no config file; defaults and environment)".to_owned(), None),
    };
    let mut config = Config::load(&name, text.as_deref(), std::env::vars())?;
    if let Some(dir) = data_dir {
        config.storage.data_dir = dir.display().to_string();
    }
    if let Some(listen) = listen {
        config.server.listen = listen.to_owned();
    }
    config.validate()?;
    Ok(Loaded { config, source: name })
}
