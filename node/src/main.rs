//! `hashmesh`: the node daemon and operator/auditor CLI. See `hashmesh --help`.

mod cli;

fn main() {
    std::process::exit(match cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    });
}
