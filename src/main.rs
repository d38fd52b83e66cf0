fn main() -> std::process::ExitCode {
    gerbang::give_back_freed_pages_at_once();
    gerbang::cli::main()
}
