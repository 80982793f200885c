//! Compile tests of `#[lightning_module]`: `ui/pass` must build and run, each `ui/fail` case must fail with
//! exactly the errors in its `.stderr`. Bless with `TRYBUILD=overwrite cargo test --test ui`. The `.stderr` files
//! were recorded with rustc 1.95 (its wording changes between versions): on another compiler the test is ignored
//! (`build.rs` decides), and says so in the test list.

#[test]
#[cfg_attr(ui_stderr_foreign_rustc, ignore = "the .stderr files were recorded with rustc 1.95")]
fn ui() {
    // The pass cases' binaries are linked by trybuild, not by this package's build script: point the loader at
    // the libtorch this package was built with.
    std::env::set_var("LD_LIBRARY_PATH", env!("LIGHTNING_LIBTORCH_LIB"));
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
