fn main() {
    neumann_script::interrupt::exit_process(neumann_script::run(std::env::args_os()));
}
