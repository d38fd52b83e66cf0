fn main() -> std::process::ExitCode {
    gerbang::allocator::give_back_freed_pages_at_once();
    gerbang::cli::main()
}
