//! `kvmd-otg start|stop`: creates or removes kvmd-hid's USB gadget through configfs (run as
//! root, before kvmd-hid; `deploy/systemd/kvmd-otg.service`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvmd_hid::gadget::{Paths, start, stop};

/// Creates or removes the USB HID gadget (keyboard, absolute and relative mouse).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// configfs mount point.
    #[arg(long, default_value = "/sys/kernel/config")]
    configfs: std::path::PathBuf,
    /// The UDC class directory.
    #[arg(long, default_value = "/sys/class/udc")]
    udc_dir: std::path::PathBuf,
    /// The UDC to bind (default: the first one).
    #[arg(long, default_value = "")]
    udc: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Creates and binds the gadget (nothing to do when it is already bound).
    Start,
    /// Unbinds and removes the gadget.
    Stop,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let p = Paths { configfs: cli.configfs, udc_dir: cli.udc_dir, udc: cli.udc };
    let result = match cli.cmd {
        Cmd::Start => start(&p).map(|made| if made { "gadget created and bound" } else { "gadget already bound" }),
        Cmd::Stop => stop(&p).map(|had| if had { "gadget removed" } else { "no gadget" }),
    };
    match result {
        Ok(msg) => {
            println!("kvmd-otg: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvmd-otg: {e}");
            ExitCode::FAILURE
        }
    }
}
