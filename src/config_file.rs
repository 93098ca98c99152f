//! The optional TOML configuration file (`--config FILE` or `CALLHOOK_CONFIG`).
//!
//! Keys are the long flag names with underscores (`database_url`,
//! `twilio_auth_tokens`, `sink_http_url`, …); lists may be TOML arrays. Precedence is
//! flags, then environment, then the file, then defaults: before the command line is
//! parsed, each file setting is exported as its environment variable unless that
//! variable is already set, so clap applies one consistent order.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::config::Cli;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error(
        "config file {path}: unknown setting `{key}` (settings are the long flag names with `_`, e.g. `database_url`)"
    )]
    UnknownKey { path: PathBuf, key: String },
    #[error("config file {path}: `{key}` must be a string, number, boolean or array of those")]
    BadValue { path: PathBuf, key: String },
}

/// The settings a file provided (their environment variable names).
#[derive(Debug, Default, Clone)]
pub struct FileLayer {
    pub path: Option<PathBuf>,
    pub env_names: BTreeSet<String>,
}

/// The file named by `--config`/`--config=` in `args`, else `CALLHOOK_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        if arg == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CALLHOOK_CONFIG").map(PathBuf::from)
}

/// Exports the file's settings as environment variables not already set.
pub fn apply(args: &[OsString]) -> Result<FileLayer, ConfigFileError> {
    let Some(path) = config_path(args) else { return Ok(FileLayer::default()) };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read { path: path.clone(), source })?;
    let settings = parse(&path, &text)?;
    let mut layer = FileLayer { path: Some(path), env_names: BTreeSet::new() };
    for (env, value) in settings {
        if std::env::var_os(&env).is_none() {
            // Runs before the runtime starts any thread.
            std::env::set_var(&env, value);
            layer.env_names.insert(env);
        }
    }
    Ok(layer)
}

/// The file's settings as (environment variable, value) pairs.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigFileError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigFileError::Syntax {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;
    let command = Cli::command();
    let serve = command.find_subcommand("serve").expect("serve exists");
    let mut out = vec![];
    for (key, value) in table {
        let long = key.replace('_', "-");
        let env = serve
            .get_arguments()
            .chain(command.get_arguments())
            .find(|a| a.get_long() == Some(long.as_str()))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .ok_or_else(|| ConfigFileError::UnknownKey { path: path.to_owned(), key: key.clone() })?;
        let bad = || ConfigFileError::BadValue { path: path.to_owned(), key: key.clone() };
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(bad()),
        };
        let text = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?.join(","),
            other => scalar(other)?,
        };
        out.push((env, text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keys_to_environment_variables() {
        let text = r#"
            database_url = "postgres://db/callhook"
            twilio_auth_tokens = ["new", "old"]
            outbox_max_attempts = 4
            trust_forwarded_headers = true
            log_format = "json"
        "#;
        let mut got = parse(Path::new("c.toml"), text).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("CALLHOOK_LOG_FORMAT".into(), "json".into()),
                ("CALLHOOK_OUTBOX_MAX_ATTEMPTS".into(), "4".into()),
                ("CALLHOOK_TRUST_FORWARDED_HEADERS".into(), "true".into()),
                ("CALLHOOK_TWILIO_AUTH_TOKENS".into(), "new,old".into()),
                ("DATABASE_URL".into(), "postgres://db/callhook".into()),
            ]
        );
    }

    #[test]
    fn explains_mistakes() {
        let err = parse(Path::new("c.toml"), "databse_url = 'x'").unwrap_err();
        assert!(err.to_string().contains("unknown setting `databse_url`"), "{err}");
        let err = parse(Path::new("c.toml"), "listen = { a = 1 }").unwrap_err();
        assert!(err.to_string().contains("`listen` must be"), "{err}");
        let err = parse(Path::new("c.toml"), "listen = ").unwrap_err();
        assert!(err.to_string().contains("not valid TOML"), "{err}");
    }

    #[test]
    fn finds_the_path_in_flags() {
        let args: Vec<OsString> = ["callhook", "serve", "--config=/etc/callhook.toml"].iter().map(Into::into).collect();
        assert_eq!(config_path(&args), Some(PathBuf::from("/etc/callhook.toml")));
        let args: Vec<OsString> = ["callhook", "--config", "a.toml", "serve"].iter().map(Into::into).collect();
        assert_eq!(config_path(&args), Some(PathBuf::from("a.toml")));
    }
}
