//! Safe wrappers over `csrc/kernels.cpp`: the libtorch calls tch 0.24 does not bind that the optimizers need on
//! their hot path. Each takes tch tensors, hands their `at::Tensor` handles to C++ and turns a C++ exception into
//! `Error::Torch`.

use std::ffi::{c_char, c_void, CStr};

use tch::Tensor;

use crate::{Error, Result};

extern "C" {
    fn lightning_set_grads_to_none(params: *const *const c_void, n: usize) -> *mut c_char;
    fn lightning_set_grad(param: *const c_void, grad: *const c_void) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn lightning_fused_adam(
        params: *const *const c_void,
        exp_avgs: *const *const c_void,
        exp_avg_sqs: *const *const c_void,
        n: usize,
        step: *const c_void,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: bool,
        found_inf: *const c_void,
    ) -> *mut c_char;
    fn lightning_rows_view(data: *const c_void, start: i64, len: i64, out: *mut *mut c_void) -> *mut c_char;
    fn lightning_variable_data(value: *const c_void, out: *mut *mut c_void) -> *mut c_char;
    fn lightning_free_error(message: *mut c_char);
    fn lightning_one_thread_here() -> bool;
}

/// Runs libtorch's operators on the calling thread with one intra-op thread (its OpenMP setting only): for
/// worker threads, which run beside the training thread and would otherwise each start a team of OpenMP
/// threads and oversubscribe the cores. Whether OpenMP was found.
pub(crate) fn one_thread_here() -> bool {
    // SAFETY: no arguments; looks a symbol up and calls it with 1.
    unsafe { lightning_one_thread_here() }
}

/// Rows `start..start + len` of `data` along dim 0, sharing its storage (what `narrow` gives, without the
/// dispatcher's autograd layers; see kernels.cpp). `None` for a tensor that is not dense and strided, or that
/// requires gradients: narrow those.
pub(crate) fn rows_view(data: &Tensor, start: i64, len: i64) -> Result<Option<Tensor>> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: a live tensor's handle; `out` is written with a new heap tensor (or left NULL).
    check(unsafe { lightning_rows_view(data.as_ptr() as *const c_void, start, len, &mut out) })?;
    // SAFETY: a tensor allocated with `new at::Tensor`, as tch's own are; the Tensor takes ownership.
    Ok((!out.is_null()).then(|| unsafe { Tensor::from_ptr(out.cast()) }))
}

/// `value` without its autograd history (PyTorch's `.data`), made without a dispatcher call.
pub(crate) fn variable_data(value: &Tensor) -> Result<Tensor> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: as in `rows_view`.
    check(unsafe { lightning_variable_data(value.as_ptr() as *const c_void, &mut out) })?;
    // SAFETY: as in `rows_view`; non-null on success.
    Ok(unsafe { Tensor::from_ptr(out.cast()) })
}

pub(crate) fn handles(tensors: &[Tensor]) -> Vec<*const c_void> {
    tensors.iter().map(|t| t.as_ptr() as *const c_void).collect()
}

/// Turns the C++ side's answer (NULL, or a message it allocated) into a `Result`.
pub(crate) fn check(message: *mut c_char) -> Result<()> {
    check_as(message, |text| Error::Torch(tch::TchError::Torch(text)))
}

/// [`check`], with the message turned into an error by `wrap` (the distributed calls' `Error::Distributed`).
pub(crate) fn check_as(message: *mut c_char, wrap: fn(String) -> Error) -> Result<()> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null answer is a NUL-terminated string from `strdup`, freed here exactly once.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
    unsafe { lightning_free_error(message) };
    Err(wrap(text))
}

/// Drops the gradients of `params` (PyTorch's `zero_grad(set_to_none=True)`): no kernel, and the next backward
/// writes fresh gradients instead of adding to zeros.
pub(crate) fn set_grads_to_none(params: &[Tensor]) -> Result<()> {
    let handles = handles(params);
    // SAFETY: `handles` points at `params.len()` live tensors for the duration of the call.
    check(unsafe { lightning_set_grads_to_none(handles.as_ptr(), handles.len()) })
}

/// Sets the gradient of `param` to `grad` (which the caller has put on `param`'s device, dtype and shape).
pub(crate) fn set_grad(param: &Tensor, grad: &Tensor) -> Result<()> {
    // SAFETY: two live tensors for the duration of the call.
    check(unsafe { lightning_set_grad(param.as_ptr() as *const c_void, grad.as_ptr() as *const c_void) })
}

/// Adam's hyper-parameters for one fused step.
pub(crate) struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub decoupled: bool,
}

/// One Adam/AdamW step over the parameters that have gradients, by libtorch's fused kernel. `state` is parallel
/// to `params`: each parameter's two moments; `step` is a float32 scalar on their device holding the step being
/// taken (the kernel reads it for the bias corrections). With `found_inf` (a float32 scalar on the device), the
/// kernel changes nothing when it is 1. The caller checks that the fused kernel takes the tensors (the
/// optimizer's `fusion`).
pub(crate) fn fused_adam(
    params: &[Tensor],
    state: &[Vec<Tensor>],
    step: &Tensor,
    h: &AdamStep,
    found_inf: Option<&Tensor>,
) -> Result<()> {
    assert!(params.len() == state.len() && state.iter().all(|slots| slots.len() == 2));
    let p = handles(params);
    let m: Vec<*const c_void> = state.iter().map(|s| s[0].as_ptr() as *const c_void).collect();
    let v: Vec<*const c_void> = state.iter().map(|s| s[1].as_ptr() as *const c_void).collect();
    // SAFETY: three arrays of `p.len()` live tensors and one or two live scalar tensors (or NULL), for the
    // duration of the call.
    check(unsafe {
        lightning_fused_adam(
            p.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            p.len(),
            step.as_ptr() as *const c_void,
            h.lr,
            h.beta1,
            h.beta2,
            h.weight_decay,
            h.eps,
            h.decoupled,
            found_inf.map_or(std::ptr::null(), |t| t.as_ptr() as *const c_void),
        )
    })
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    #[test]
    fn a_rows_view_is_what_narrow_gives_and_shares_the_storage() {
        let data = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([6, 4]);
        // A transposed tensor (strides not row-major) with a storage offset, too.
        let strided = Tensor::arange(40, (Kind::Float, Device::Cpu)).view([4, 10]).narrow(1, 2, 6).tr();
        for tensor in [&data, &strided] {
            let view = super::rows_view(tensor, 2, 3).unwrap().expect("a dense strided tensor");
            let narrowed = tensor.narrow(0, 2, 3);
            assert_eq!(view.size(), narrowed.size());
            assert_eq!(view.stride(), narrowed.stride());
            assert!(view.equal(&narrowed));
            assert_eq!(view.data_ptr(), narrowed.data_ptr(), "no copy");
            assert!(!view.requires_grad());
        }
        // Out of range, or a tensor that requires gradients: not made here (the caller narrows, and errs).
        assert!(super::rows_view(&data, 5, 2).unwrap().is_none());
        assert!(super::rows_view(&data.set_requires_grad(true), 0, 2).unwrap().is_none());
    }

    #[test]
    fn variable_data_drops_the_graph_and_keeps_the_value() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let loss = (&w * 2.0).sum(Kind::Float);
        let data = super::variable_data(&loss).unwrap();
        assert!(!data.requires_grad());
        assert_eq!(data.double_value(&[]), 6.0);
        // The original still trains.
        loss.backward();
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), [2.0, 2.0, 2.0]);
    }
}
