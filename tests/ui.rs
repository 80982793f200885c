//! Compile tests of `#[lightning_module]`: `ui/pass` must build and run, each `ui/fail` case must fail with
//! exactly the errors in its `.stderr`. Bless with `TRYBUILD=overwrite cargo test --test ui`.

use std::process::Command;

/// The compiler the `.stderr` files were recorded with: rustc's wording changes between versions.
const RECORDED_WITH: &str = "rustc 1.95.";

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version =
        Command::new(rustc).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match version {
        Ok(version) if version.starts_with(RECORDED_WITH) => {}
        other => {
            eprintln!(
                "skipping the UI tests: their .stderr files were recorded with {RECORDED_WITH}x, this is {other:?}"
            );
            return;
        }
    }
    // The pass cases' binaries are linked by trybuild, not by this package's build script: point the loader at
    // the libtorch this package was built with.
    std::env::set_var("LD_LIBRARY_PATH", env!("LIGHTNING_LIBTORCH_LIB"));
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
