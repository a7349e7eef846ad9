//! `kvmd-totp`: manages the TOTP secret of kvmd-auth (two-factor codes appended to every
//! password), with kvmd's verbs: `init`, `show`, `del`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvmd_core::config::ConfigArgs;

/// Manages the kvmd-auth TOTP secret.
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
    /// Writes a new random secret, then shows it.
    Init {
        /// Replaces an existing secret.
        #[arg(short, long)]
        force: bool,
        /// Account name in the URI (default: the host name).
        #[arg(short, long)]
        name: Option<String>,
    },
    /// Prints the secret, its otpauth URI and a QR code of the URI.
    Show {
        /// Account name in the URI (default: the host name).
        #[arg(short, long)]
        name: Option<String>,
    },
    /// Turns TOTP off (empties the secret file).
    Del,
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

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg: kvmd_auth::Config = kvmd_core::config::load(&cli.config, "KVMD_AUTH")?;
    let path = cfg.totp_secret.clone();
    if path.as_os_str().is_empty() {
        anyhow::bail!("TOTP file path is empty (i.e. it was disabled)");
    }
    let write = |text: &str| {
        kvmd_auth::htpasswd::write_atomic(&path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    match cli.cmd {
        Cmd::Init { force, name } => {
            if !force && !read_secret(&path)?.is_empty() {
                anyhow::bail!("TOTP is already configured; use --force to replace the secret");
            }
            write(&kvmd_auth::totp::generate_secret())?;
            show(&read_secret(&path)?, name)
        }
        Cmd::Show { name } => show(&read_secret(&path)?, name),
        Cmd::Del => {
            write("")?;
            println!("TOTP is disabled now");
            Ok(())
        }
    }
}

fn show(secret: &str, name: Option<String>) -> anyhow::Result<()> {
    if secret.is_empty() {
        anyhow::bail!("TOTP is not configured");
    }
    kvmd_auth::totp::parse_secret(secret)?;
    let name = name
        .unwrap_or_else(|| nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default());
    let uri = format!("otpauth://totp/PiKVM:{name}?secret={secret}&issuer=PiKVM");
    println!("Secret: {secret}");
    println!("URI: {uri}");
    let code = qrcode::QrCode::new(uri.as_bytes())?;
    println!("{}", code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
    Ok(())
}
