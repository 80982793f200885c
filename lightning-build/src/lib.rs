//! Build-script helper for crates that use Lightning for Rust.
//!
//! tch links libtorch dynamically but leaves finding it at run time to the user (`LD_LIBRARY_PATH`), and the
//! linker's default `--as-needed` silently drops `libtorch_cuda` from a binary that names none of its symbols,
//! after which `tch::Cuda::is_available()` is `false` even on a GPU machine. Cargo only lets a package pass
//! linker arguments to its *own* binaries, so every package that builds binaries (tests, examples, benches,
//! your application) needs this one line in its `build.rs`:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     lightning_build::link_libtorch();
//! }
//! ```
//!
//! with `lightning-build` in `[build-dependencies]`. It embeds libtorch's `lib/` folder as the binaries' run
//! path and links `libtorch_cuda` with `--no-as-needed` when the libtorch has CUDA.
//!
//! libtorch is found the way tch finds it: `LIBTORCH` if set, otherwise the environment that
//! `scripts/setup-torch.sh` manages under the user's cache directory.

use std::env;
use std::path::{Path, PathBuf};

/// The PyTorch release tch 0.24 binds, and so the one the managed environment holds.
pub const TORCH_VERSION: &str = "2.11.0";

/// Emits the `cargo:` lines that let this package's binaries load libtorch without `LD_LIBRARY_PATH` and see
/// CUDA where the libtorch has it.
///
/// Panics (which fails the build with the message) when no libtorch can be found.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIGHTNING_TORCH_ENV");
    println!("cargo:rerun-if-env-changed=XDG_CACHE_HOME");
    let lib = match libtorch_lib_dir() {
        Ok(lib) => lib,
        Err(message) => panic!("{message}"),
    };
    println!("cargo:rustc-link-arg=-L{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // Lets tests that spawn binaries cargo did not link (trybuild's) point the loader at the same place.
    println!("cargo:rustc-env=LIGHTNING_LIBTORCH_LIB={}", lib.display());
}

/// Compiles C++ sources that call libtorch directly into a static library `name` linked into the calling
/// package, with the flags tch's own C++ wrapper is built with (C++17, the libtorch's C++ ABI, its headers).
///
/// For the few libtorch functions tch does not bind; `lightning-runtime` uses it for its optimizer kernels.
/// Panics (which fails the build with the message) when no libtorch can be found.
pub fn compile_cpp(name: &str, sources: &[&str]) {
    compile_cpp_with(name, sources, &[], &[]);
}

/// [`compile_cpp`] with extra include folders and preprocessor definitions (`NAME` or `NAME=VALUE`).
///
/// Panics (which fails the build with the message) when no libtorch can be found.
pub fn compile_cpp_with(name: &str, sources: &[&str], includes: &[PathBuf], defines: &[&str]) {
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = match libtorch_lib_dir() {
        Ok(lib) => lib,
        Err(message) => panic!("{message}"),
    };
    let include = lib.parent().map(|root| root.join("include")).unwrap_or_default();
    // PyPI's torch wheels are built with the C++11 ABI since 2.7; tch reads the same variable.
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        // `torch/types.h` and the rest of the C++ frontend, which c10d's headers include.
        .include(include.join("torch").join("csrc").join("api").join("include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // Release libtorch is built with NDEBUG, and its headers' inline code and assertions must agree with it
        // in every file that includes them (the same class layouts and checks as the library itself).
        .define("NDEBUG", None);
    for dir in includes {
        build.include(dir);
    }
    for define in defines {
        let (key, value) = define.split_once('=').map_or((*define, None), |(k, v)| (k, Some(v)));
        build.define(key, value);
    }
    for source in sources {
        println!("cargo:rerun-if-changed={source}");
        build.file(source);
    }
    build.compile(name);
}

/// The `lib/` folder of the libtorch this build uses, resolved through symlinks.
///
/// # Errors
/// A message that says how to get a libtorch when none is found.
pub fn libtorch_lib_dir() -> Result<PathBuf, String> {
    let root = match env::var_os("LIBTORCH") {
        Some(dir) => PathBuf::from(dir),
        None => managed_torch_dir().ok_or_else(|| {
            format!(
                "no libtorch found: LIBTORCH is not set and the managed torch {TORCH_VERSION} environment \
                 does not exist yet; run `scripts/setup-torch.sh` (or `make setup`) in the lightning repository, \
                 or set LIBTORCH to a libtorch {TORCH_VERSION} folder"
            )
        })?,
    };
    let lib = root.join("lib");
    if !lib.join("libtorch_cpu.so").exists() && !lib.join("libtorch_cpu.dylib").exists() {
        return Err(format!(
            "LIBTORCH={} has no lib/libtorch_cpu: run `scripts/setup-torch.sh` (or `make setup`), or point \
             LIBTORCH at a libtorch {TORCH_VERSION} folder (one with include/ and lib/)",
            root.display()
        ));
    }
    Ok(lib.canonicalize().unwrap_or(lib))
}

/// The folder holding Gloo's headers (`gloo/context.h`), which libtorch's c10d headers include but PyPI's torch
/// wheel does not ship: `LIGHTNING_GLOO_INCLUDE` if set, otherwise what `scripts/setup-torch.sh` unpacked from
/// Debian's `libgloo-dev` under the user's cache directory. `None` when neither is there: distributed training
/// is then left out of the build.
pub fn gloo_include_dir() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=LIGHTNING_GLOO_INCLUDE");
    let dir = match env::var_os("LIGHTNING_GLOO_INCLUDE") {
        Some(dir) => PathBuf::from(dir),
        None => cache_dir()?.join("lightning-rs").join("gloo-headers").join("usr").join("include"),
    };
    let header = dir.join("gloo").join("context.h");
    println!("cargo:rerun-if-changed={}", header.display());
    header.exists().then_some(dir)
}

/// The include folders NCCL's process group of c10d compiles against, when the libtorch has CUDA and the
/// environment holds NCCL's header and the CUDA runtime's (PyPI's `nvidia-nccl-*`, `nvidia-cuda-runtime`,
/// `nvidia-cuda-crt` and `nvidia-cuda-cccl`, which `scripts/python-requirements.txt` installs beside torch's CUDA
/// wheel). `None` otherwise: CUDA runs then communicate through Gloo.
pub fn nccl_include_dirs() -> Option<Vec<PathBuf>> {
    let lib = libtorch_lib_dir().ok()?;
    if !lib.join("libtorch_cuda.so").exists() {
        return None;
    }
    // The wheel's `torch/lib` sits in `site-packages`, beside `nvidia/`.
    let nvidia = lib.parent()?.parent()?.join("nvidia");
    let nccl = nvidia.join("nccl").join("include");
    let cuda = std::fs::read_dir(&nvidia).ok()?.filter_map(Result::ok).map(|entry| entry.path().join("include")).find(
        |include| include.join("cuda_runtime_api.h").exists() && include.join("crt").join("host_config.h").exists(),
    )?;
    println!("cargo:rerun-if-changed={}", cuda.join("crt").join("host_config.h").display());
    nccl.join("nccl.h").exists().then(|| vec![cuda.clone(), cuda.join("cccl"), nccl])
}

/// `$XDG_CACHE_HOME`, else `~/.cache`.
fn cache_dir() -> Option<PathBuf> {
    env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
}

/// The folder of the managed Python environment: `$LIGHTNING_TORCH_ENV`, else
/// `$XDG_CACHE_HOME/lightning-rs/torch-<version>`, else `~/.cache/lightning-rs/torch-<version>`.
pub fn managed_env_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("LIGHTNING_TORCH_ENV") {
        return Some(PathBuf::from(dir));
    }
    Some(cache_dir()?.join("lightning-rs").join(format!("torch-{TORCH_VERSION}")))
}

/// The `torch/` package folder inside the managed environment, if it is installed.
fn managed_torch_dir() -> Option<PathBuf> {
    let lib = managed_env_dir()?.join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages").join("torch"))
        .find(|torch| torch.join("lib").is_dir())
}
