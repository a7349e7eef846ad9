//! Typed, layered configuration.
//!
//! Precedence, lowest first: the service's built-in defaults (its `Default`), the main
//! file (`--config`, TOML), the files of `<main file>.d/*.toml` in name order, the
//! environment (`KVMD_<SERVICE>__<KEY>__<SUBKEY>=value`), then `--set key.subkey=value`
//! on the command line. Every layer is merged as a TOML tree, then the result is
//! deserialised once into the service's struct, which denies unknown keys, so a typo in
//! any layer is an error that names the key. `--dump-config` prints the effective result.
//!
//! Values from the environment and `--set` are read as TOML values when they parse as one
//! (`3600`, `true`, `["a", "b"]`) and as strings otherwise.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The command-line options every service and tool shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// The main config file (TOML). Files in `<file>.d/*.toml` are merged after it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides one key, e.g. `--set expire=3600` or `--set lockout.failures=5` (repeatable; highest precedence).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Prints the effective configuration as TOML and exits.
    #[arg(long)]
    pub dump_config: bool,
}

/// What the shared service `main` needs from a service's configuration.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default {
    /// Where the service listens.
    fn socket(&self) -> &crate::net::SocketConfig;
    /// HTTP worker threads.
    fn workers(&self) -> usize;
}

/// Implements [`ServiceConfig`] for a config struct with `socket` and `workers` fields.
#[macro_export]
macro_rules! service_config {
    ($t:ty) => {
        impl $crate::config::ServiceConfig for $t {
            fn socket(&self) -> &$crate::net::SocketConfig {
                &self.socket
            }

            fn workers(&self) -> usize {
                self.workers
            }
        }
    };
}

/// A configuration error, naming the layer and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A `--set` or environment override is malformed.
    #[error("bad override {0:?}: expected KEY=VALUE")]
    Override(String),
    /// The merged tree does not fit the service's schema.
    #[error("invalid configuration: {0}")]
    Schema(String),
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
pub fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn read_table(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    text.parse::<Table>().map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })
}

/// A TOML value from override text: TOML if it parses, else a string.
fn override_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

/// Sets `a.b.c = value` in `table`, creating tables on the way.
fn set_path(table: &mut Table, path: &[&str], value: Value) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Err(ConfigError::Override(String::new()));
    };
    let mut cur = table;
    for p in parents {
        let entry = cur.entry((*p).to_owned()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(t) = entry else { unreachable!("just made a table") };
        cur = t;
    }
    cur.insert((*last).to_owned(), value);
    Ok(())
}

/// Loads the configuration of a service whose environment prefix is `env_prefix`
/// (e.g. `KVMD_AUTH`), from `args` and the process environment.
pub fn load<T>(args: &ConfigArgs, env_prefix: &str) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_from(args, env_prefix, std::env::vars())
}

/// [`load`] with an explicit environment, for tests.
pub fn load_from<T>(
    args: &ConfigArgs,
    env_prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut tree = match Value::try_from(T::default()) {
        Ok(Value::Table(t)) => t,
        Ok(_) | Err(_) => Table::new(),
    };
    if let Some(main) = &args.config {
        merge(&mut tree, read_table(main)?);
        let dir = PathBuf::from(format!("{}.d", main.display()));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for f in files {
                merge(&mut tree, read_table(&f)?);
            }
        }
    }
    let prefix = format!("{env_prefix}__");
    let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
    env.sort();
    for (k, v) in env {
        let key = k[prefix.len()..].to_ascii_lowercase();
        let path: Vec<&str> = key.split("__").collect();
        set_path(&mut tree, &path, override_value(&v))?;
    }
    for item in &args.set {
        let (k, v) = item.split_once('=').ok_or_else(|| ConfigError::Override(item.clone()))?;
        let path: Vec<&str> = k.trim().split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Override(item.clone()));
        }
        set_path(&mut tree, &path, override_value(v.trim()))?;
    }
    Value::Table(tree).try_into().map_err(|e: toml::de::Error| ConfigError::Schema(e.to_string()))
}

/// The effective configuration as TOML, for `--dump-config`.
pub fn dump<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        expire: u64,
        name: String,
    }
    impl Default for Inner {
        fn default() -> Self {
            Self { expire: 0, name: "x".into() }
        }
    }
    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Cfg {
        inner: Inner,
        list: Vec<String>,
        flag: bool,
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let main = dir.path().join("svc.toml");
        std::fs::write(&main, "flag = true\n[inner]\nexpire = 10\nname = \"file\"\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("svc.toml.d")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("svc.toml.d/1.toml"), "[inner]\nname = \"dropin\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let args = ConfigArgs { config: Some(main), set: vec!["inner.expire=30".into()], dump_config: false };
        let env =
            [("KVMD_T__INNER__EXPIRE".to_owned(), "20".to_owned()), ("KVMD_T__LIST".to_owned(), "[\"a\"]".to_owned())];
        let cfg: Cfg = load_from(&args, "KVMD_T", env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg, Cfg { inner: Inner { expire: 30, name: "dropin".into() }, list: vec!["a".into()], flag: true });
        assert!(dump(&cfg).contains("expire = 30"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let args = ConfigArgs { set: vec!["inner.expir=1".into()], ..Default::default() };
        let err = load_from::<Cfg>(&args, "KVMD_T", []).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expir"), "{err}");
        let args = ConfigArgs { set: vec!["novalue".into()], ..Default::default() };
        assert!(load_from::<Cfg>(&args, "KVMD_T", []).is_err());
    }

    #[test]
    fn strings_need_no_quotes() {
        let args = ConfigArgs { set: vec!["inner.name=/etc/kvmd/htpasswd".into()], ..Default::default() };
        let cfg: Cfg = load_from(&args, "KVMD_T", []).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.inner.name, "/etc/kvmd/htpasswd");
    }
}
