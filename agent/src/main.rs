//! `hashmesh-agent`: the edge process of a mining pool (see the crate docs).

use clap::Parser;

/// The hashmesh agent: applies its node's committed routes and proxies miners by them.
#[derive(Parser)]
#[command(name = "hashmesh-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: hashmesh_agent::cli::AgentCmd,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HASHMESH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match hashmesh_agent::cli::run(Cli::parse().cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hashmesh-agent: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
