//! `kvmd-apikey`: manages kvmd-auth's API keys (the database named by `keys` in
//! auth.toml). A new key's secret is printed once and only its SHA-256 is stored; a revoked
//! key is refused from kvmd-auth's next check.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvmd_auth::keys::{self, ApiKey, KeyStore, Scope};
use kvmd_core::config::ConfigArgs;
use kvmd_core::role::Role;

/// Manages kvmd-auth's API keys.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Prints the keys (never a secret): id, scope, role, expiry, networks, name.
    List,
    /// Makes a key and prints its id and secret (the secret is never shown again).
    Add(AddArgs),
    /// Revokes a key: refused from the next request on.
    Revoke {
        /// The key id.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// What the key is for.
    #[arg(long, default_value = "")]
    name: String,
    /// `public` (Kasm's standard key) or `admin` (also /api/admin/*).
    #[arg(long, default_value = "public")]
    scope: String,
    /// What it may do on kvmd's routes: `viewer`, `operator` or `admin`.
    #[arg(long, default_value = "viewer")]
    role: String,
    /// Refused after this many days.
    #[arg(long)]
    expires_days: Option<u32>,
    /// A client network it is accepted from (CIDR; repeatable; none = any).
    #[arg(long = "network")]
    networks: Vec<String>,
    /// The key id instead of a random one (for demos and tests).
    #[arg(long)]
    id: Option<String>,
    /// Reads the secret as one line from stdin instead of making a random one (for demos
    /// and tests: a real key should have the random 256 bits).
    #[arg(long)]
    secret_stdin: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg: kvmd_auth::Config = kvmd_core::config::load(&cli.config, "KVMD_AUTH")?;
    anyhow::ensure!(!cfg.keys.as_os_str().is_empty(), "API keys are off (`keys` is empty in the config)");
    let store = KeyStore::open(&cfg.keys).map_err(|e| anyhow::anyhow!("{}: {e}", cfg.keys.display()))?;
    match cli.cmd {
        Cmd::List => {
            for k in store.list()? {
                let expires = k.expires.map_or_else(|| "never".to_owned(), |t| t.to_string());
                let nets: Vec<String> = k.networks.iter().map(ToString::to_string).collect();
                let nets = if nets.is_empty() { "any".to_owned() } else { nets.join(",") };
                println!("{}\t{}\t{}\t{expires}\t{nets}\t{}", k.id, k.scope.as_str(), k.role, k.name);
            }
        }
        Cmd::Add(a) => {
            let scope = Scope::parse(&a.scope).ok_or_else(|| anyhow::anyhow!("scope: public or admin"))?;
            let role = Role::parse(&a.role).ok_or_else(|| anyhow::anyhow!("role: viewer, operator or admin"))?;
            let id = a.id.unwrap_or_else(keys::new_id);
            anyhow::ensure!(keys::valid_id(&id), "a key id is 1 to 64 letters, digits, '-' or '_'");
            let networks = a
                .networks
                .iter()
                .map(|n| n.parse::<ipnet::IpNet>().map_err(|e| anyhow::anyhow!("network {n:?}: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let secret = if a.secret_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                keys::new_secret()
            };
            anyhow::ensure!(
                (1..=512).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic()),
                "a secret is 1 to 512 printable ASCII characters without spaces"
            );
            let now = i64::try_from(kvmd_auth::sessions::unix_now()).unwrap_or(i64::MAX);
            let expires = a.expires_days.map(|d| now + i64::from(d) * 86_400);
            let key = ApiKey { id: id.clone(), name: a.name, scope, role, expires, networks, created: now };
            store.create(&key, &secret).map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    anyhow::anyhow!("a key {id:?} exists")
                }
                e => anyhow::anyhow!("{e}"),
            })?;
            println!("api_key: {id}");
            println!("api_key_secret: {secret}");
            println!("Authorization: Bearer {id}:{secret}");
        }
        Cmd::Revoke { id } => {
            anyhow::ensure!(store.revoke(&id)?, "no key {id:?}");
        }
    }
    Ok(())
}
