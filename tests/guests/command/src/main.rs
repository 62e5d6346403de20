fn main() {
    println!("a command, not an action");
}
