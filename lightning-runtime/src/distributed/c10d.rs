//! Safe wrappers over `csrc/distributed.cpp`: a Gloo process group of libtorch's c10d, its store, and c10d's
//! Reducer. Each call hands tch tensors' `at::Tensor` handles to C++ and turns a C++ exception into
//! `Error::Distributed`.

use std::ffi::{c_char, c_void, CString};
use std::time::Duration;

use tch::Tensor;

use super::ReduceOp;
use crate::kernels::handles;
use crate::{Error, Result};

extern "C" {
    fn lightning_dist_connect(
        host: *const c_char,
        port: i32,
        rank: i32,
        world: i32,
        timeout_ms: i64,
        device_host: *const c_char,
        nccl: bool,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn lightning_dist_free(group: *mut c_void) -> *mut c_char;
    fn lightning_dist_all_reduce(group: *mut c_void, tensor: *const c_void, op: i32) -> *mut c_char;
    fn lightning_dist_all_reduce_start(
        group: *mut c_void,
        tensor: *const c_void,
        op: i32,
        work: *mut *mut c_void,
    ) -> *mut c_char;
    fn lightning_dist_wait(work: *mut c_void) -> *mut c_char;
    fn lightning_dist_broadcast(group: *mut c_void, tensors: *const *const c_void, n: usize, root: i32) -> *mut c_char;
    fn lightning_dist_all_gather(
        group: *mut c_void,
        input: *const c_void,
        outs: *const *const c_void,
        n: usize,
    ) -> *mut c_char;
    fn lightning_dist_barrier(group: *mut c_void) -> *mut c_char;
    fn lightning_dist_store_set(group: *mut c_void, key: *const c_char, value: *const u8, len: usize) -> *mut c_char;
    fn lightning_dist_store_try_get(
        group: *mut c_void,
        key: *const c_char,
        found: *mut bool,
        value: *mut *mut u8,
        len: *mut usize,
    ) -> *mut c_char;
    fn lightning_dist_reducer_new(
        group: *mut c_void,
        params: *const *const c_void,
        n: usize,
        bucket_cap_bytes: i64,
        find_unused: bool,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn lightning_dist_reducer_prepare(reducer: *mut c_void, loss: *const c_void) -> *mut c_char;
    fn lightning_dist_reducer_free(reducer: *mut c_void) -> *mut c_char;
    fn lightning_dist_free_buffer(buffer: *mut u8);
}

/// Whether this build has distributed training (Gloo's headers were found when it was compiled).
pub(crate) const AVAILABLE: bool = true;
/// Whether it has NCCL for CUDA tensors (CUDA's and NCCL's headers were found too).
pub(crate) const NCCL: bool = cfg!(lightning_nccl);

/// The C++ side's answer (NULL, or a message it allocated) as a `Result`.
fn check(message: *mut c_char) -> Result<()> {
    crate::kernels::check_as(message, Error::Distributed)
}

fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::Config(format!("{text:?} holds a NUL byte")))
}

/// One process's membership of a Gloo process group, and the TCPStore it met the others through.
pub(crate) struct Group {
    raw: *mut c_void,
    rank: usize,
    world: usize,
}

// SAFETY: c10d process groups and stores are thread-safe; the handle is only freed in `Drop`.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl Group {
    /// Meets the other `world - 1` processes at `addr:port` (rank 0 serves the store there). `local_host`
    /// binds Gloo's connections to that address; `None` lets Gloo use the interface of the host's name.
    /// `nccl`: CUDA tensors go through NCCL (only where `NCCL`).
    pub fn connect(
        addr: &str,
        port: u16,
        rank: usize,
        world: usize,
        timeout: Duration,
        local_host: Option<&str>,
        nccl: bool,
    ) -> Result<Group> {
        let host = c_string(addr)?;
        let device = c_string(local_host.unwrap_or(""))?;
        let mut raw = std::ptr::null_mut();
        let timeout_ms = timeout.as_millis().min(i64::MAX as u128) as i64;
        // SAFETY: valid C strings for the duration of the call; `raw` is written on success only.
        check(unsafe {
            lightning_dist_connect(
                host.as_ptr(),
                i32::from(port),
                rank as i32,
                world as i32,
                timeout_ms,
                device.as_ptr(),
                nccl,
                &mut raw,
            )
        })?;
        Ok(Group { raw, rank, world })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.world
    }

    pub fn all_reduce(&self, tensor: &Tensor, op: ReduceOp) -> Result<()> {
        // SAFETY: a live group and tensor for the duration of the call.
        check(unsafe { lightning_dist_all_reduce(self.raw, tensor.as_ptr() as *const c_void, op_code(op)) })
    }

    /// Starts reducing `tensor` in place (not `Mean`) and returns at once; the result is there once the
    /// returned handle is waited for.
    pub fn all_reduce_start(&self, tensor: &Tensor, op: ReduceOp) -> Result<Pending> {
        let mut work = std::ptr::null_mut();
        // SAFETY: a live group and tensor; the work keeps its own reference to the tensor.
        check(unsafe {
            lightning_dist_all_reduce_start(self.raw, tensor.as_ptr() as *const c_void, op_code(op), &mut work)
        })?;
        Ok(Pending { work })
    }

    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        let handles = handles(tensors);
        // SAFETY: `handles` points at live tensors for the duration of the call.
        check(unsafe { lightning_dist_broadcast(self.raw, handles.as_ptr(), handles.len(), root as i32) })
    }

    pub fn all_gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>> {
        let outs: Vec<Tensor> =
            (0..self.world).map(|_| tensor.f_empty_like()).collect::<std::result::Result<_, _>>()?;
        let handles = handles(&outs);
        // SAFETY: live tensors for the duration of the call; `outs` has one tensor per process.
        check(unsafe {
            lightning_dist_all_gather(self.raw, tensor.as_ptr() as *const c_void, handles.as_ptr(), handles.len())
        })?;
        Ok(outs)
    }

    pub fn barrier(&self) -> Result<()> {
        // SAFETY: a live group.
        check(unsafe { lightning_dist_barrier(self.raw) })
    }

    pub fn store_set(&self, key: &str, value: &[u8]) -> Result<()> {
        let key = c_string(key)?;
        // SAFETY: a live group, a C string and `value.len()` readable bytes.
        check(unsafe { lightning_dist_store_set(self.raw, key.as_ptr(), value.as_ptr(), value.len()) })
    }

    /// The value of `key` in the store, if some process set it.
    pub fn store_try_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = c_string(key)?;
        let (mut found, mut value, mut len) = (false, std::ptr::null_mut(), 0usize);
        // SAFETY: out-pointers to locals; a found value is a malloc'd buffer of `len` bytes, freed below.
        check(unsafe { lightning_dist_store_try_get(self.raw, key.as_ptr(), &mut found, &mut value, &mut len) })?;
        if !found || value.is_null() {
            return Ok(None);
        }
        let bytes = unsafe { std::slice::from_raw_parts(value, len) }.to_vec();
        unsafe { lightning_dist_free_buffer(value) };
        Ok(Some(bytes))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: freed exactly once; an error while closing connections has nobody left to tell.
        let _ = check(unsafe { lightning_dist_free(self.raw) });
    }
}

fn op_code(op: ReduceOp) -> i32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Min => 3,
    }
}

/// A collective under way; dropping it waits for it.
pub(crate) struct Pending {
    work: *mut c_void,
}

// SAFETY: c10d's work handles may be waited for from any thread.
unsafe impl Send for Pending {}

impl Pending {
    pub fn wait(mut self) -> Result<()> {
        let work = std::mem::replace(&mut self.work, std::ptr::null_mut());
        // SAFETY: a handle from `all_reduce_start`, waited for and freed exactly once.
        check(unsafe { lightning_dist_wait(work) })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.work.is_null() {
            // SAFETY: as in `wait`.
            let _ = check(unsafe { lightning_dist_wait(self.work) });
        }
    }
}

/// c10d's Reducer: averages gradients over the group in buckets as backward produces them.
pub(crate) struct Reducer {
    raw: *mut c_void,
}

// SAFETY: the Reducer guards its state with its own mutex; the autograd engine calls it from its threads.
unsafe impl Send for Reducer {}

impl Reducer {
    pub fn new(group: &Group, params: &[Tensor], bucket_cap_bytes: usize, find_unused: bool) -> Result<Reducer> {
        let handles = handles(params);
        let mut raw = std::ptr::null_mut();
        // SAFETY: live tensors and group for the duration of the call; `raw` is written on success only.
        check(unsafe {
            lightning_dist_reducer_new(
                group.raw,
                handles.as_ptr(),
                handles.len(),
                bucket_cap_bytes as i64,
                find_unused,
                &mut raw,
            )
        })?;
        Ok(Reducer { raw })
    }

    /// Arms the reducer for the next backward pass; `loss` is searched for unused parameters when the reducer
    /// looks for them.
    pub fn prepare(&mut self, loss: Option<&Tensor>) -> Result<()> {
        let loss = loss.map_or(std::ptr::null(), |t| t.as_ptr() as *const c_void);
        // SAFETY: a live reducer and, if given, a live tensor.
        check(unsafe { lightning_dist_reducer_prepare(self.raw, loss) })
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // SAFETY: freed exactly once.
        let _ = check(unsafe { lightning_dist_reducer_free(self.raw) });
    }
}
