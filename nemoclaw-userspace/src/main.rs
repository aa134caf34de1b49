use clap::Parser as _;

fn main() {
    let cli = nemoclaw::cli::Cli::parse();
    let code = match nemoclaw::cli::main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("nemoclaw: error: {err:#}");
            1
        }
    };
    std::process::exit(code);
}
