fn main() {
    lightning_build::link_libtorch();
    lightning_build::compile_cpp("lightning_kernels", &["csrc/kernels.cpp"]);
}
