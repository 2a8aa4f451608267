//! The `oxisd` binary: hands the command line to [`oxisd::cli`] and exits with its code.

fn main() {
    std::process::exit(oxisd::cli::run(std::env::args_os().skip(1).collect()));
}
