fn main() -> std::process::ExitCode {
    gerbang::cli::main()
}
