//! `kvmd-info`: the information service. See the library for what it does.

use std::process::ExitCode;

use clap::Parser;
use kvmd_core::config::ConfigArgs;
use kvmd_core::telemetry::LogArgs;

/// kvmd-compatible information service (/info, /log, metrics).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmd-info: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let config: kvmd_info::Config = kvmd_core::config::load(&cli.config, "KVMD_INFO")?;
    if cli.config.dump_config {
        print!("{}", kvmd_core::config::dump(&config));
        return Ok(());
    }
    kvmd_core::telemetry::init(&cli.log)?;
    let listener = kvmd_core::net::unix_listener(&config.socket)?;
    tracing::info!(socket = %config.socket.path.display(), "kvmd-info listening");
    let threads = config.workers.max(1);
    let result = kvmd_core::service::run(threads, |shutdown| kvmd_info::run(config, listener, shutdown));
    kvmd_core::telemetry::flush();
    result
}
