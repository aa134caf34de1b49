//! Parses and compiles generated policies of 100 to 100k rules and prints the times.
//! `cargo run --release -p nemoclaw-userspace --example policy_bench [RULES...]`

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 10_000, 100_000]
    } else {
        sizes
    };
    for rules in sizes {
        match nemoclaw::policy::bench::compile_generated(rules) {
            Ok((parse, compile, entries)) => println!(
                "{rules:>7} rules: parse+validate {:>8.1} ms, compile {:>8.1} ms, {entries} map entries",
                parse.as_secs_f64() * 1e3,
                compile.as_secs_f64() * 1e3,
            ),
            Err(error) => {
                eprintln!("{rules} rules: {error}");
                std::process::exit(1);
            }
        }
    }
}
