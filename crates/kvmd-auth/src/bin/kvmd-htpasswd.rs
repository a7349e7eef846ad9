//! `kvmd-htpasswd`: manages the users of kvmd-auth's htpasswd file, with kvmd's verbs and
//! messages. New passwords are bcrypt by default (`--ssha512` writes kvmd's own format).
//! The file is rewritten atomically and keeps its owner and mode.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvmd_auth::{hash, htpasswd::Htpasswd};
use kvmd_core::config::ConfigArgs;

/// Manages kvmd-auth users (htpasswd).
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
    /// Prints the users, sorted.
    List,
    /// Adds a user.
    Add(PasswdArgs),
    /// Changes the password of an existing user.
    Set(PasswdArgs),
    /// Deletes a user (their sessions stop working at once).
    Del {
        /// The user.
        user: String,
        /// No notes on stderr.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Debug, clap::Args)]
struct PasswdArgs {
    /// The user.
    user: String,
    /// Reads the password as one line from stdin instead of asking twice.
    #[arg(short = 'i', long)]
    read_stdin: bool,
    /// No notes on stderr.
    #[arg(short, long)]
    quiet: bool,
    /// Stores kvmd's {SSHA512} instead of bcrypt (for files shared with kvmd).
    #[arg(long)]
    ssha512: bool,
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

fn read_password(read_stdin: bool) -> anyhow::Result<String> {
    let passwd = if read_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Repeat: ")?;
        if first != again {
            anyhow::bail!("Sorry, passwords do not match");
        }
        first
    };
    kvmd_core::valid::passwd(Some(&passwd)).map_err(|e| anyhow::anyhow!("{}", e.message))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg: kvmd_auth::Config = kvmd_core::config::load(&cli.config, "KVMD_AUTH")?;
    let path = cfg.htpasswd.clone();
    let mut file = match std::fs::read_to_string(&path) {
        Ok(text) => Htpasswd::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Htpasswd::default(),
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    };
    let save = |file: &Htpasswd| -> anyhow::Result<()> {
        kvmd_auth::htpasswd::write_atomic(&path, file.render().as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    match cli.cmd {
        Cmd::List => {
            for u in file.users() {
                println!("{u}");
            }
        }
        Cmd::Add(a) => {
            let user = kvmd_core::valid::user(Some(&a.user)).map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if file.get(&user).is_some() {
                anyhow::bail!("The user '{user}' is already exists");
            }
            let passwd = read_password(a.read_stdin)?;
            file.set(&user, make_hash(&passwd, a.ssha512, cfg.bcrypt_cost)?);
            save(&file)?;
        }
        Cmd::Set(a) => {
            if file.get(&a.user).is_none() {
                anyhow::bail!("The user '{}' is not exist", a.user);
            }
            let passwd = read_password(a.read_stdin)?;
            file.set(&a.user, make_hash(&passwd, a.ssha512, cfg.bcrypt_cost)?);
            save(&file)?;
            if !a.quiet {
                eprintln!("Note: existing sessions of '{}' stay valid until they expire or the user logs out.", a.user);
            }
        }
        Cmd::Del { user, quiet } => {
            if !file.remove(&user) {
                anyhow::bail!("The user '{user}' is not exist");
            }
            save(&file)?;
            if !quiet {
                eprintln!("Note: the sessions of '{user}' are refused from now on.");
            }
        }
    }
    Ok(())
}

fn make_hash(passwd: &str, ssha512: bool, cost: u32) -> anyhow::Result<String> {
    if ssha512 { Ok(hash::make_ssha512(passwd)) } else { Ok(hash::make_bcrypt(passwd, cost)?) }
}
