//! `kvmd-nginx render`: writes the nginx front for an installed system, the demo or tests.

use clap::Parser;

/// Renders nginx.conf from the template and the services' route tables.
#[derive(Debug, Parser)]
#[command(version)]
enum Cli {
    /// Prints (or writes) the rendered configuration.
    Render {
        #[command(flatten)]
        params: kvmd_nginx::Params,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let Cli::Render { params, out } = Cli::parse();
    let conf = kvmd_nginx::render(&params, kvmd_nginx::SERVICES);
    match out {
        Some(path) => std::fs::write(path, conf)?,
        None => print!("{conf}"),
    }
    Ok(())
}
