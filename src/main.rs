//! The `oxisd` binary: hands the command line to [`oxisd::cli`] and exits with its code.

fn main() {
    std::process::exit(oxisd::cli::run(std::env::args().skip(1).collect()));
}
