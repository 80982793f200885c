fn main() {
    lightning_build::link_libtorch();
    lightning_build::compile_cpp("lightning_kernels", &["csrc/kernels.cpp"]);
    distributed();
}

/// Distributed training (`csrc/distributed.cpp`, over libtorch's c10d) needs Gloo's headers, which the torch
/// wheel lacks and `scripts/setup-torch.sh` fetches. Without them the crate builds without it (`cfg
/// lightning_distributed` unset) and a run asking for several processes says what to install.
fn distributed() {
    println!("cargo::rustc-check-cfg=cfg(lightning_distributed)");
    if let Some(gloo) = lightning_build::gloo_include_dir() {
        lightning_build::compile_cpp_with(
            "lightning_distributed",
            &["csrc/distributed.cpp"],
            &[gloo],
            &["USE_C10D_GLOO", "USE_DISTRIBUTED"],
        );
        println!("cargo::rustc-cfg=lightning_distributed");
    }
}
