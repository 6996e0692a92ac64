fn main() {
    std::process::exit(neumann_script::run(std::env::args_os()));
}
