//! The checkpoint file: safetensors with a JSON header entry, written through a synced temporary file and a
//! rename, read back with each way it can be wrong named.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use super::{Checkpoint, Meta, FORMAT_VERSION};
use crate::{Error, Result};

/// The header entry holding the JSON metadata; its presence marks the file as ours.
const META_KEY: &str = "lightning-rs";

fn problem(path: &Path, problem: impl Into<String>) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), problem: problem.into() }
}

/// A tensor's bytes on the CPU, as safetensors stores them.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn to_bytes(path: &Path, name: &str, tensor: &Tensor) -> Result<Bytes> {
    let kind = tensor.f_kind()?;
    let dtype = dtype_of(kind)
        .ok_or_else(|| problem(path, format!("tensor `{name}` has dtype {kind:?}, which checkpoints do not store")))?;
    let cpu = tch::no_grad(|| tensor.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous())?;
    let numel = cpu.numel();
    let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
    cpu.f_copy_data_u8(&mut data, numel)?;
    let shape = cpu.size().iter().map(|&d| d as usize).collect();
    Ok(Bytes { dtype, shape, data })
}

/// A checkpoint turned into CPU bytes, ready to be written to `path`: the snapshot a background writer takes,
/// holding no tensor, so that training can go on changing the weights while it is written.
pub(crate) struct Encoded {
    path: PathBuf,
    json: String,
    tensors: Vec<(String, Bytes)>,
}

pub(super) fn encode(checkpoint: &Checkpoint, path: &Path) -> Result<Encoded> {
    let mut meta = checkpoint.meta.clone();
    meta.format_version = FORMAT_VERSION;
    let json = serde_json::to_string(&meta).map_err(|e| problem(path, format!("metadata cannot be written: {e}")))?;
    let tensors = checkpoint
        .tensors
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), to_bytes(path, name, tensor)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Encoded { path: path.to_path_buf(), json, tensors })
}

impl Encoded {
    /// Where it is to be written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Serializes and writes it atomically (see [`Checkpoint::write`]).
    pub(crate) fn write(self) -> Result<()> {
        let path = self.path.as_path();
        let header =
            HashMap::from([(META_KEY.to_string(), self.json), ("format".to_string(), "lightning-rs".to_string())]);
        let bytes =
            safetensors::serialize(self.tensors.iter().map(|(name, bytes)| (name.as_str(), bytes)), Some(header))
                .map_err(|e| problem(path, format!("cannot be serialized: {e}")))?;
        write_atomically(path, &bytes).map_err(|e| problem(path, format!("cannot be written: {e}")))
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path`, and syncs the folder so
/// that the rename itself survives a crash. Readers see the old file or the new one, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new().prefix(".").suffix(".ckpt-partial").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

pub(super) fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(problem(path, "no such file")),
        Err(e) => return Err(problem(path, format!("cannot be read: {e}"))),
    };
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| problem(path, format!("is not a checkpoint, or is truncated or corrupt ({e})")))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| problem(path, format!("has a corrupt header ({e})")))?;
    let json = header.metadata().as_ref().and_then(|entries| entries.get(META_KEY)).ok_or_else(|| {
        problem(path, "is a safetensors file, but not a checkpoint of Lightning for Rust (no `lightning-rs` metadata)")
    })?;
    let version: serde_json::Value =
        serde_json::from_str(json).map_err(|e| problem(path, format!("has corrupt metadata: {e}")))?;
    let found = version.get("format_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if found > u64::from(FORMAT_VERSION) {
        return Err(problem(
            path,
            format!("was written in checkpoint format {found}, newer than this build reads (up to {FORMAT_VERSION}): update lightning"),
        ));
    }
    let meta: Meta =
        serde_json::from_value(version).map_err(|e| problem(path, format!("has corrupt metadata: {e}")))?;
    let mut tensors = Vec::new();
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    for name in names {
        let view = file.tensor(name).map_err(|e| problem(path, format!("tensor `{name}` is corrupt ({e})")))?;
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            problem(path, format!("tensor `{name}` has dtype {:?}, which is not supported", view.dtype()))
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        tensors.push((name.to_string(), tensor));
    }
    Ok(Checkpoint { meta, tensors })
}
