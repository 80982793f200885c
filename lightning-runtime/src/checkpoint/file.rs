//! The checkpoint file: safetensors with a JSON header entry and checksums, written through a synced temporary
//! file that is read back and checked before the rename, read back with each way it can be wrong named.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Device, Kind, Tensor};

use super::{Checkpoint, Meta, TensorRecord, FORMAT_VERSION};
use crate::{Error, Result};

/// The header entry holding the JSON metadata; its presence marks the file as ours.
const META_KEY: &str = "lightning-rs";
/// The header entry holding the CRC32C of the metadata's JSON text, as 8 hex digits (format 2 on).
const CRC_KEY: &str = "lightning-rs.crc32c";
/// The oldest format this build reads: format 1 had no checksums (read unverified); format 0 had no version key.
const FIRST_READABLE_VERSION: u32 = 1;

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
/// holding no tensor, so that training can go on changing the weights while it is written. The checksums, the
/// JSON and the file's bytes are made by [`Encoded::write`], on the writer's thread.
pub(crate) struct Encoded {
    path: PathBuf,
    meta: Meta,
    tensors: Vec<(String, Bytes)>,
}

pub(super) fn encode(checkpoint: &Checkpoint, path: &Path) -> Result<Encoded> {
    let tensors = checkpoint
        .tensors
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), to_bytes(path, name, tensor)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Encoded { path: path.to_path_buf(), meta: checkpoint.meta.clone(), tensors })
}

impl Encoded {
    /// Where it is to be written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes: the tensors with their checksums listed in the metadata, and the metadata's own
    /// checksum beside it.
    fn serialize(mut self) -> Result<(PathBuf, Vec<u8>)> {
        let path = self.path;
        self.meta.format_version = FORMAT_VERSION;
        self.meta.tensors = Some(
            self.tensors
                .iter()
                .map(|(name, bytes)| {
                    let record = TensorRecord {
                        dtype: format!("{:?}", bytes.dtype),
                        shape: bytes.shape.clone(),
                        crc32c: crc32c::crc32c(&bytes.data),
                    };
                    (name.clone(), record)
                })
                .collect(),
        );
        let json = serde_json::to_string(&self.meta)
            .map_err(|e| problem(&path, format!("metadata cannot be written: {e}")))?;
        let header = HashMap::from([
            (CRC_KEY.to_string(), format!("{:08x}", crc32c::crc32c(json.as_bytes()))),
            (META_KEY.to_string(), json),
            ("format".to_string(), META_KEY.to_string()),
        ]);
        let bytes =
            safetensors::serialize(self.tensors.iter().map(|(name, bytes)| (name.as_str(), bytes)), Some(header))
                .map_err(|e| problem(&path, format!("cannot be serialized: {e}")))?;
        Ok((path, bytes))
    }

    /// Serializes and writes it atomically (see [`Checkpoint::write`]). The temporary file is read back and
    /// checked as a reader would check it before it is renamed into place: a checkpoint that would not load never
    /// replaces a good one.
    pub(crate) fn write(self) -> Result<()> {
        let (path, bytes) = self.serialize()?;
        write_atomically(&path, &bytes, |written| decode(&path, written).map(drop))
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, reads it back through `verify`, renames it over
/// `path`, and syncs the folder so that the rename itself survives a crash. Readers see the old file or the new
/// one, whole; a file `verify` refuses is deleted and the old one stays.
fn write_atomically(path: &Path, bytes: &[u8], verify: impl FnOnce(&[u8]) -> Result<()>) -> Result<()> {
    let io = |e: std::io::Error| problem(path, format!("cannot be written: {e}"));
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io)?;
    partial::remove_stale(dir);
    let mut temp =
        tempfile::Builder::new().prefix(&partial::prefix()).suffix(partial::SUFFIX).tempfile_in(dir).map_err(io)?;
    temp.write_all(bytes).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    let written = fs::read(temp.path()).map_err(io)?;
    verify(&written).map_err(|e| match e {
        Error::Checkpoint { problem, .. } => self::problem(
            path,
            format!("was not written: the file would not read back ({problem}); the old file is kept"),
        ),
        other => other,
    })?;
    temp.persist(path).map_err(|e| io(e.error))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Temporary files of checkpoint writes: named after the process that writes them, so that a later run can tell
/// the ones a killed process left behind from the ones another live process is writing.
mod partial {
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    pub(super) const SUFFIX: &str = ".ckpt-partial";
    const MARK: &str = ".lightning-";

    fn host() -> String {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
    }

    /// `.lightning-<pid>@<host>~`, followed by tempfile's random characters and [`SUFFIX`].
    pub(super) fn prefix() -> String {
        format!("{MARK}{}@{}~", std::process::id(), host())
    }

    /// The writer of a temporary file named by [`prefix`]: its pid and host.
    fn owner(name: &str) -> Option<(u32, &str)> {
        let rest = name.strip_prefix(MARK)?.strip_suffix(SUFFIX)?;
        let (pid, rest) = rest.split_once('@')?;
        let (host, _random) = rest.rsplit_once('~')?;
        Some((pid.parse().ok()?, host))
    }

    /// Whether the process `pid` of this host is gone (`/proc` says; elsewhere nothing is known to be gone).
    fn gone(pid: u32) -> bool {
        Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
    }

    /// Deletes the temporary files in `dir` that a process of this host, no longer running, left behind when it
    /// was killed mid-write. Once per folder per process; files of live processes, of other hosts (a shared
    /// file system) and of other programs are left alone.
    pub(super) fn remove_stale(dir: &Path) {
        static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        {
            let mut cleaned = CLEANED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !cleaned.get_or_insert_with(HashSet::new).insert(key) {
                return;
            }
        }
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let (me, here) = (std::process::id(), host());
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((pid, host)) = name.to_str().and_then(owner) else { continue };
            if host == here && pid != me && gone(pid) {
                // Best effort: another run may be removing the same file.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn names_say_who_wrote_them() {
            let name = format!("{}AbC123{}", super::prefix(), super::SUFFIX);
            assert_eq!(super::owner(&name), Some((std::process::id(), super::host().as_str())));
            assert_eq!(super::owner(".lightning-12@my.host~x~y.ckpt-partial"), Some((12, "my.host~x")));
            assert_eq!(super::owner(".abcdef.ckpt-partial"), None);
            assert_eq!(super::owner(".lightning-x@h~r.ckpt-partial"), None);
        }
    }
}

/// A checkpoint's metadata and tensors, checked: the metadata's checksum, its format version, every key, and each
/// tensor's dtype, shape and checksum against what the metadata lists.
fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Meta, SafeTensors<'a>)> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| problem(path, format!("is not a checkpoint, or is truncated or corrupt ({e})")))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| problem(path, format!("has a corrupt header ({e})")))?;
    let entries = header.metadata().as_ref();
    let json = entries.and_then(|entries| entries.get(META_KEY)).ok_or_else(|| {
        problem(path, "is a safetensors file, but not a checkpoint of Lightning for Rust (no `lightning-rs` metadata)")
    })?;
    let checksum = entries.and_then(|entries| entries.get(CRC_KEY));
    if checksum.is_some() {
        // Format 2 on: the header's metadata is these three entries and nothing else, so that no byte of it can
        // change without an error.
        let entries = entries.expect("holds the checksum");
        if entries.get("format").map(String::as_str) != Some(META_KEY) {
            return Err(problem(path, "has a corrupt header: its `format` entry is not `lightning-rs`"));
        }
        if let Some(other) = entries.keys().find(|key| ![META_KEY, CRC_KEY, "format"].contains(&key.as_str())) {
            return Err(problem(path, format!("has a corrupt header: unknown entry `{other}`")));
        }
    }
    if let Some(checksum) = checksum {
        let computed = format!("{:08x}", crc32c::crc32c(json.as_bytes()));
        if *checksum != computed {
            return Err(problem(
                path,
                format!("is corrupt: its metadata's checksum is {computed}, but the file says {checksum}"),
            ));
        }
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| problem(path, format!("has corrupt metadata: {e}")))?;
    let found = match value.get("format_version") {
        Some(version) => version
            .as_u64()
            .ok_or_else(|| problem(path, format!("has corrupt metadata: `format_version` is {version}")))?,
        None => {
            return Err(problem(
                path,
                "has corrupt metadata: missing field `format_version` (or was written in checkpoint format 0, which this build no longer reads)",
            ))
        }
    };
    if found > u64::from(FORMAT_VERSION) {
        return Err(problem(
            path,
            format!("was written in checkpoint format {found}, newer than this build reads (up to {FORMAT_VERSION}): update lightning"),
        ));
    }
    if found < u64::from(FIRST_READABLE_VERSION) {
        return Err(problem(
            path,
            format!(
                "was written in checkpoint format {found}, older than this build reads (from {FIRST_READABLE_VERSION})"
            ),
        ));
    }
    let meta: Meta = serde_json::from_value(value).map_err(|e| problem(path, format!("has corrupt metadata: {e}")))?;
    if found >= 2 {
        if checksum.is_none() {
            return Err(problem(path, format!("has corrupt metadata: no `{CRC_KEY}` entry")));
        }
        let records =
            meta.tensors.as_ref().ok_or_else(|| problem(path, "has corrupt metadata: missing field `tensors`"))?;
        verify_tensors(path, &file, records)?;
    }
    Ok((meta, file))
}

/// Each tensor of the file is the one the metadata lists, byte for byte, and none is missing.
fn verify_tensors(path: &Path, file: &SafeTensors<'_>, records: &BTreeMap<String, TensorRecord>) -> Result<()> {
    let mut names = file.names();
    names.sort_unstable();
    for name in &names {
        let record = records
            .get(*name)
            .ok_or_else(|| problem(path, format!("is corrupt: tensor `{name}` is not listed in its metadata")))?;
        let view = file.tensor(name).map_err(|e| problem(path, format!("tensor `{name}` is corrupt ({e})")))?;
        let dtype = format!("{:?}", view.dtype());
        if dtype != record.dtype || view.shape() != record.shape.as_slice() {
            return Err(problem(
                path,
                format!(
                    "is corrupt: tensor `{name}` is {dtype} {:?} in the file, but {} {:?} in its metadata",
                    view.shape(),
                    record.dtype,
                    record.shape
                ),
            ));
        }
        let crc = crc32c::crc32c(view.data());
        if crc != record.crc32c {
            return Err(problem(
                path,
                format!(
                    "is corrupt: tensor `{name}` fails its checksum (crc32c {crc:08x}, expected {:08x})",
                    record.crc32c
                ),
            ));
        }
    }
    if let Some(missing) = records.keys().find(|name| names.binary_search(&name.as_str()).is_err()) {
        return Err(problem(
            path,
            format!("is corrupt: tensor `{missing}` is listed in its metadata but not in the file"),
        ));
    }
    Ok(())
}

pub(super) fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(problem(path, "no such file")),
        Err(e) => return Err(problem(path, format!("cannot be read: {e}"))),
    };
    let (mut meta, file) = decode(path, &bytes)?;
    meta.tensors = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_would_not_read_back_never_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.ckpt");
        let mut checkpoint = Checkpoint::default();
        checkpoint.tensors.push(("model.w".into(), Tensor::from_slice(&[1.0f32, 2.0])));
        checkpoint.write(&path).unwrap();
        let good = fs::read(&path).unwrap();

        // A write whose bytes are damaged between serializing and the rename (what a bug in the encoder, a
        // non-round-tripping value would do) fails and leaves the old file and no temporary one.
        checkpoint.tensors[0].1 = Tensor::from_slice(&[3.0f32, 4.0]);
        let (_, mut bytes) = checkpoint.encode(&path).unwrap().serialize().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let error = write_atomically(&path, &bytes, |written| decode(&path, written).map(drop)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("would not read back") && message.contains("`model.w` fails its checksum"),
            "{message}"
        );
        assert_eq!(fs::read(&path).unwrap(), good);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("a.ckpt")]);
    }
}
