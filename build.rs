fn main() {
    lightning_build::link_libtorch();
    ui_tests_compiler();
}

/// The compile-error tests' `.stderr` files were recorded with one rustc (its wording changes between versions):
/// on another, `tests/ui.rs` is compiled with `ui_stderr_foreign_rustc` and shows as ignored rather than passed.
fn ui_tests_compiler() {
    const RECORDED_WITH: &str = "rustc 1.95.";
    println!("cargo::rustc-check-cfg=cfg(ui_stderr_foreign_rustc)");
    println!("cargo::rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = std::process::Command::new(rustc).arg("--version").output();
    let matches = version.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).starts_with(RECORDED_WITH));
    if !matches {
        println!("cargo::rustc-cfg=ui_stderr_foreign_rustc");
    }
}
