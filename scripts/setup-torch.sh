#!/usr/bin/env bash
# Installs what the build needs, once per machine, and points this checkout at it.
#
# libtorch comes from PyPI's torch wheel (pinned to the release tch binds), installed into a versioned Python
# environment under the user's cache directory that every clone on this machine reuses: with its CUDA libraries
# it is 4-5 GB, far too big to install per clone. The wheel's `torch/` folder holds `include/` and `lib/`, which
# is what tch accepts as LIBTORCH; this script links it to `.libtorch` in the checkout, which
# `.cargo/config.toml` hands to cargo. A LIBTORCH the user set is used as it is and nothing is installed.
#
# Environment:
#   LIBTORCH             your own libtorch 2.11.0 (skips the install)
#   LIGHTNING_TORCH_ENV  where the managed environment lives
#                        (default: ${XDG_CACHE_HOME:-~/.cache}/lightning-rs/torch-2.11.0)
#   PYTHON               the Python used to create it (default: python3)
#   LIGHTNING_GLOO_INCLUDE  a folder holding Gloo's headers (gloo/context.h); skips their download
#
# Distributed training compiles a small C++ file against libtorch's c10d headers, which include Gloo's; the
# wheel ships libtorch's Gloo inside libtorch_cpu.so but not Gloo's headers. Debian's libgloo-dev package has
# them: it is downloaded and unpacked (headers only, nothing installed system-wide, no root needed) next to the
# torch environment. Without them everything else builds and runs; asking for several devices is an error
# that says to run this script.
set -euo pipefail

TORCH_VERSION=2.11.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requirements="$repo/scripts/python-requirements.txt"

die() {
    printf 'setup-torch: error: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit 1
}
say() { printf 'setup-torch: %s\n' "$*" >&2; }

# The version of the libtorch in folder $1, from the files a wheel or a libtorch zip carries.
torch_version_of() {
    local dir=$1 v=""
    if [ -f "$dir/version.py" ]; then
        v=$(sed -n "s/^__version__ = '\([^']*\)'.*/\1/p" "$dir/version.py")
    elif [ -f "$dir/build-version" ]; then
        v=$(cat "$dir/build-version")
    fi
    printf '%s' "${v%%+*}"
}

# Gloo's headers, unpacked from Debian's libgloo-dev into $1 (once per machine); a warning when they cannot be had.
install_gloo_headers() {
    local dir=$1
    [ -n "${LIGHTNING_GLOO_INCLUDE:-}" ] && return 0
    [ -f "$dir/usr/include/gloo/context.h" ] && return 0
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        say "warning: no apt-get/dpkg-deb here to fetch Gloo's headers (Debian's libgloo-dev): distributed training"
        say "  (devices > 1) is left out of the build; set LIGHTNING_GLOO_INCLUDE to a folder holding gloo/ to add it"
        return 0
    fi
    local tmp
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download libgloo-dev >"$tmp/apt.log" 2>&1 \
            || { apt-get update >>"$tmp/apt.log" 2>&1 && apt-get download libgloo-dev >>"$tmp/apt.log" 2>&1; }) \
        && mkdir -p "$dir.partial" && dpkg-deb -x "$tmp"/libgloo-dev_*.deb "$dir.partial" \
        && [ -f "$dir.partial/usr/include/gloo/context.h" ]; then
        rm -rf "$dir" && mv "$dir.partial" "$dir"
        say "Gloo headers ready in $dir/usr/include (for distributed training)"
    else
        rm -rf "$dir.partial"
        tail -n 5 "$tmp/apt.log" >&2 || true
        say "warning: could not download Debian's libgloo-dev for Gloo's headers: distributed training (devices > 1)"
        say "  is left out of the build; run this script again once apt can reach Debian's archive"
    fi
    rm -rf "$tmp"
}
gloo_dir="${XDG_CACHE_HOME:-$HOME/.cache}/lightning-rs/gloo-headers"

if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || die "LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so" \
        "point LIBTORCH at a libtorch $TORCH_VERSION folder (one with include/ and lib/)," \
        "or unset it to let this script install torch $TORCH_VERSION from PyPI"
    found=$(torch_version_of "$LIBTORCH")
    if [ -n "$found" ] && [ "$found" != "$TORCH_VERSION" ] && [ -z "${LIBTORCH_BYPASS_VERSION_CHECK:-}" ]; then
        die "LIBTORCH=$LIBTORCH holds torch $found, but this project is built on tch 0.24, which needs torch $TORCH_VERSION" \
            "unset LIBTORCH to use the torch $TORCH_VERSION this script installs under your cache directory"
    fi
    say "using LIBTORCH=$LIBTORCH${found:+ (torch $found)}; the Python packages of the examples and tests are not installed"
    install_gloo_headers "$gloo_dir"
    exit 0
fi

env_dir=${LIGHTNING_TORCH_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lightning-rs/torch-$TORCH_VERSION}
python=${PYTHON:-python3}
stamp="$env_dir/.lightning-rs-requirements"
wanted=$(cat "$requirements")

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    command -v "$python" >/dev/null 2>&1 || die "no \`$python\` on PATH: Python 3.10 to 3.13 is needed to install torch $TORCH_VERSION from PyPI" \
        "install it (Debian/Ubuntu: apt-get install python3 python3-venv), or set PYTHON=/path/to/python3," \
        "or set LIBTORCH to an unpacked libtorch $TORCH_VERSION"
    if [ ! -x "$env_dir/bin/python" ]; then
        say "creating the Python environment $env_dir"
        mkdir -p "$(dirname "$env_dir")"
        "$python" -m venv "$env_dir" 2>/dev/null || {
            rm -rf "$env_dir"
            die "\`$python -m venv\` failed: the venv module is missing" \
                "Debian/Ubuntu: apt-get install python3-venv; or set PYTHON to another Python 3"
        }
    fi
    say "installing $(tr '\n' ' ' < "$requirements")into $env_dir (about 4-5 GB the first time)"
    log="$env_dir/pip-install.log"
    if ! "$env_dir/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
            -r "$requirements" >"$log" 2>&1; then
        tail -n 15 "$log" >&2
        die "pip could not install the packages above (full log: $log)" \
            "check your connection to PyPI and the free disk space, then run this script again;" \
            "torch $TORCH_VERSION has wheels for CPython 3.10 to 3.13 on x86_64 and aarch64 Linux"
    fi
    found=$("$env_dir/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
    [ "${found%%+*}" = "$TORCH_VERSION" ] || die "the environment $env_dir holds torch '${found:-none}', not $TORCH_VERSION" \
        "delete $env_dir and run this script again"
    printf '%s' "$wanted" > "$stamp"
fi

torch_dir=$(ls -d "$env_dir"/lib/python3*/site-packages/torch 2>/dev/null | head -n 1)
[ -n "$torch_dir" ] && [ -f "$torch_dir/lib/libtorch_cpu.so" ] \
    || die "$env_dir holds no torch/lib/libtorch_cpu.so" "delete $env_dir and run this script again"
ln -sfn "$torch_dir" "$repo/.libtorch"
install_gloo_headers "$gloo_dir"
say "torch $TORCH_VERSION ready: .libtorch -> $torch_dir"

# The digits example trains on the UCI handwritten digits that scikit-learn's wheel carries (1,797 8x8 images).
digits="$(dirname "$torch_dir")/sklearn/datasets/data/digits.csv.gz"
if [ -f "$digits" ]; then
    mkdir -p "$repo/data"
    cp "$digits" "$repo/data/digits.csv.gz"
fi
