fn main() {
    std::process::exit(cloudha::main(std::env::args_os().collect()));
}
