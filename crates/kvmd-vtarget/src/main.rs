//! `kvmd-vtarget`: the demo's and the tests' emulated host (see the library).

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "kvmd-vtarget", about = "The virtual target: an emulated host for the kvmd-rs demo and tests")]
struct Cli {
    #[command(flatten)]
    options: kvmd_vtarget::Options,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Its log on stderr (the tests and the demo keep it in log/kvmd-vtarget.log).
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    match kvmd_vtarget::run(&cli.options) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmd-vtarget: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
