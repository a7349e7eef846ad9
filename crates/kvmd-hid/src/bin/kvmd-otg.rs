//! `kvmd-otg start|stop`: creates or removes the suite's USB gadget through configfs (run as
//! root, before kvmd-hid and kvmd-msd; `deploy/systemd/kvmd-otg.service`): the keyboard,
//! the two mice, and the mass-storage drive kvmd-msd attaches images to.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvmd_hid::gadget::{Msd, Paths, start, stop};

/// Creates or removes the USB gadget (keyboard, absolute and relative mouse, mass storage).
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
    /// The user kvmd-msd runs as, who gets the drive's attributes; empty: no mass-storage
    /// drive in the gadget.
    #[arg(long, default_value = "kvmd-msd")]
    msd_user: String,
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
    let msd = if cli.msd_user.is_empty() {
        None
    } else {
        match nix::unistd::User::from_name(&cli.msd_user) {
            Ok(Some(u)) => Some(Msd { owner: Some((u.uid.as_raw(), u.gid.as_raw())) }),
            _ => {
                eprintln!("kvmd-otg: no user {:?}: the drive's attributes stay root's", cli.msd_user);
                Some(Msd { owner: None })
            }
        }
    };
    let result = match cli.cmd {
        Cmd::Start => {
            start(&p, msd.as_ref()).map(|made| if made { "gadget created and bound" } else { "gadget already bound" })
        }
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
