fn main() {
    lightning_build::link_libtorch();
}
