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
    match kvmd_vtarget::run(&cli.options) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmd-vtarget: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
