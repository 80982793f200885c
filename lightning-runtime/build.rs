fn main() {
    lightning_build::link_libtorch();
    lightning_build::compile_cpp("lightning_kernels", &["csrc/kernels.cpp", "csrc/precision.cpp", "csrc/shapes.cpp"]);
    distributed();
}

/// Distributed training (`csrc/distributed.cpp`, over libtorch's c10d) needs Gloo's headers, which the torch
/// wheel lacks and `scripts/setup-torch.sh` fetches. Without them the crate builds without it (`cfg
/// lightning_distributed` unset) and a run asking for several processes says what to install.
fn distributed() {
    println!("cargo::rustc-check-cfg=cfg(lightning_distributed)");
    println!("cargo::rustc-check-cfg=cfg(lightning_nccl)");
    if let Some(gloo) = lightning_build::gloo_include_dir() {
        let mut includes = vec![gloo];
        let mut defines = vec!["USE_C10D_GLOO", "USE_DISTRIBUTED"];
        // With CUDA's and NCCL's headers, CUDA tensors go through NCCL's process group (libtorch_cuda has it).
        let nccl = lightning_build::nccl_include_dirs();
        if let Some(dirs) = &nccl {
            includes.extend(dirs.iter().cloned());
            defines.push("USE_C10D_NCCL");
        }
        lightning_build::compile_cpp_with("lightning_distributed", &["csrc/distributed.cpp"], &includes, &defines);
        println!("cargo::rustc-cfg=lightning_distributed");
        if nccl.is_some() {
            println!("cargo::rustc-cfg=lightning_nccl");
            println!("cargo::rustc-link-lib=dylib=torch_cuda");
            println!("cargo::rustc-link-lib=dylib=c10_cuda");
        }
    }
}
