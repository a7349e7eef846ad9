//! `kvmd-nginx render`: writes the nginx front for an installed system, the demo or tests.

use clap::Parser;

/// Renders nginx.conf from the template and the services' route tables.
#[derive(Debug, Parser)]
#[command(version)]
enum Cli {
    /// Prints (or writes) the rendered configuration.
    Render {
        #[command(flatten)]
        params: Box<kvmd_nginx::Params>,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Prints (or writes) the OpenAPI document of every route the front exposes.
    Openapi {
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let (text, out) = match Cli::parse() {
        Cli::Render { params, out } => (kvmd_nginx::render(&params, &kvmd_nginx::services()), out),
        Cli::Openapi { out } => (kvmd_nginx::openapi(), out),
    };
    match out {
        Some(path) => std::fs::write(path, text)?,
        None => print!("{text}"),
    }
    Ok(())
}
