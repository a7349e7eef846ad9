//! `kvmd-nginx render`: writes the nginx front for an installed system, the demo or tests.

use clap::Parser;

/// Renders nginx.conf from the template and the services' route tables.
#[derive(Debug, Parser)]
#[command(version)]
enum Cli {
    /// Prints (or writes) the rendered configuration.
    Render {
        /// `user` line for a root master, e.g. "user www-data;" (empty for an unprivileged run).
        #[arg(long, default_value = "user www-data;")]
        user: String,
        /// Directory for the pid file and temp paths.
        #[arg(long, default_value = "/run/kvmd/nginx")]
        prefix: String,
        /// Directory holding the service sockets.
        #[arg(long, default_value = "/run/kvmd")]
        run_dir: String,
        /// Static web root.
        #[arg(long, default_value = "/usr/share/kvmd/web")]
        web_root: String,
        /// HTTPS listen.
        #[arg(long, default_value = "443")]
        https_listen: String,
        /// HTTP listen.
        #[arg(long, default_value = "80")]
        http_listen: String,
        /// HTTPS port as clients see it.
        #[arg(long, default_value_t = 443)]
        https_port: u16,
        /// TLS certificate.
        #[arg(long, default_value = "/etc/kvmd/nginx/ssl/server.crt")]
        cert: String,
        /// TLS key.
        #[arg(long, default_value = "/etc/kvmd/nginx/ssl/server.key")]
        key: String,
        /// nginx's mime.types.
        #[arg(long, default_value = "/etc/nginx/mime.types")]
        mime_types: String,
        /// Output file (stdout when absent).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let Cli::Render {
        user,
        prefix,
        run_dir,
        web_root,
        https_listen,
        http_listen,
        https_port,
        cert,
        key,
        mime_types,
        out,
    } = Cli::parse();
    let p = kvmd_nginx::Params {
        user,
        prefix,
        run_dir,
        web_root,
        https_listen,
        http_listen,
        https_port,
        cert,
        key,
        mime_types,
    };
    let conf = kvmd_nginx::render(&p, kvmd_nginx::SERVICES);
    match out {
        Some(path) => std::fs::write(path, conf)?,
        None => print!("{conf}"),
    }
    Ok(())
}
