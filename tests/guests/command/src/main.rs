//! Test fixture: a wasi:cli command (a component of another world than
//! actions), which skills may carry for models to run.

use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    match args.get(1).map(String::as_str) {
        Some("count") => println!("{} words", input.split_whitespace().count()),
        Some("exit") => {
            eprintln!("exiting with {}", args[2]);
            std::process::exit(args[2].parse().unwrap_or(1));
        }
        Some("read") => match std::fs::read_to_string(&args[2]) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("cannot read {}: {e}", args[2]);
                std::process::exit(2);
            }
        },
        _ => println!("a command, not an action"),
    }
}
