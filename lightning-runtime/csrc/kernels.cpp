// The few libtorch calls that tch 0.24 does not bind and the training step needs on its hot path: setting
// gradients to None (PyTorch's `zero_grad(set_to_none=True)`), libtorch's fused Adam/AdamW kernels (one call
// for every parameter instead of eight kernels each), and the two tensor handles the loop makes every step (a
// batch's rows of a dataset, a logged value) made without the dispatcher's autograd layers. `src/kernels.rs` is the only caller and holds the safe
// wrappers; every function here catches C++ exceptions and returns them as a malloc'd message (NULL: success),
// because an exception must never unwind into Rust.

#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/TensorImpl.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>

#include <dlfcn.h>

#include <cstdlib>
#include <typeinfo>
#include <cstring>
#include <exception>
#include <vector>

namespace {

char* error_message(const char* what) {
  char* copy = strdup(what ? what : "unknown libtorch error");
  return copy;
}

}  // namespace

extern "C" {

// Drops the gradient of each of the `n` tensors.
char* lightning_set_grads_to_none(const at::Tensor* const* params, size_t n) {
  try {
    for (size_t i = 0; i < n; i++) {
      params[i]->mutable_grad().reset();
    }
    return nullptr;
  } catch (const std::exception& e) {
    return error_message(e.what());
  }
}

// Sets the gradient of `param` to `grad` (a checkpoint's accumulated gradient, already on the parameter's
// device and of its dtype and shape: the caller checks).
char* lightning_set_grad(const at::Tensor* param, const at::Tensor* grad) {
  try {
    param->mutable_grad() = *grad;
    return nullptr;
  } catch (const std::exception& e) {
    return error_message(e.what());
  }
}

// One Adam (or, with `decoupled`, AdamW) step over the parameters that have a gradient, through libtorch's fused
// kernel. `step` is a float32 scalar tensor on the parameters' device; it is set to `t` (the step being taken,
// from 1) and read by the kernel for the bias corrections. The caller guarantees that every parameter, gradient
// and moment is a dense floating tensor on one device, as the fused kernel requires.
char* lightning_fused_adam(const at::Tensor* const* params, const at::Tensor* const* exp_avgs,
                           const at::Tensor* const* exp_avg_sqs, size_t n, const at::Tensor* step, double lr,
                           double beta1, double beta2, double weight_decay, double eps, bool decoupled,
                           const at::Tensor* found_inf) {
  try {
    std::vector<at::Tensor> p, g, m, v, steps;
    p.reserve(n);
    g.reserve(n);
    m.reserve(n);
    v.reserve(n);
    steps.reserve(n);
    for (size_t i = 0; i < n; i++) {
      const at::Tensor& grad = params[i]->grad();
      if (!grad.defined()) {
        continue;  // as PyTorch's optimizers do: a parameter without a gradient is left alone
      }
      p.push_back(*params[i]);
      g.push_back(grad);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      steps.push_back(*step);
    }
    if (p.empty()) {
      return nullptr;
    }
    at::NoGradGuard no_grad;  // an in-place update of leaf parameters, outside the graph
    // No AMSGrad: its list stays empty, as PyTorch passes it. With `found_inf` (a gradient scaler's verdict on
    // the already unscaled gradients, on the device), the kernel itself leaves everything as it is when it is
    // set: no host round trip decides the skip (PyTorch's `GradScaler` with a fused optimizer).
    const std::vector<at::Tensor> no_max;
    const c10::optional<at::Tensor> no_scale;
    const c10::optional<at::Tensor> inf = found_inf ? c10::optional<at::Tensor>(*found_inf) : c10::nullopt;
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false, no_scale, inf);
    } else {
      at::_fused_adam_(p, g, m, v, no_max, steps, lr, beta1, beta2, weight_decay, eps, false, false, no_scale, inf);
    }
    return nullptr;
  } catch (const std::exception& e) {
    return error_message(e.what());
  }
}

// Makes the calling thread run libtorch's operators on one thread: what PyTorch's DataLoader workers do
// (`torch.set_num_threads(1)` in each worker process). Only this thread's OpenMP setting changes, unlike
// `at::set_num_threads`, which also changes the process-wide default that threads started later inherit.
// OpenMP is looked up at run time, in the runtime libtorch already loaded, so that no second OpenMP
// runtime is linked; without one there is nothing to do. Returns whether it was found.
bool lightning_one_thread_here() {
  using SetThreads = void (*)(int);
  auto set_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set_threads == nullptr) {
    return false;
  }
  set_threads(1);
  return true;
}

// Rows [start, start + len) of `data` along dim 0 as a tensor sharing its storage: what `narrow` returns, made
// directly rather than through three dispatcher layers (autograd, view tracking, the kernel), which cost an
// unshuffled loader ~5,000 instructions per tensor per batch. The result is a plain tensor, not an autograd
// view of `data`: the loader hands it only to code that does not write into batches, and datasets do not
// require gradients. Only for dense strided tensors with storage; `*out` stays NULL for any other, and the
// caller narrows as usual.
char* lightning_rows_view(const at::Tensor* data, int64_t start, int64_t len, at::Tensor** out) {
  *out = nullptr;
  try {
    const at::Tensor& t = *data;
    // Only a plain TensorImpl (not a subclass such as a functional wrapper, whose kernels expect their own
    // type) and not an inference tensor (the constructor would give it a version counter and autograd keys).
    if (!t.defined() || typeid(*t.unsafeGetTensorImpl()) != typeid(c10::TensorImpl) || t.is_inference() ||
        t.layout() != at::kStrided || !t.has_storage() || t.is_quantized() || t.is_nested() || t.dim() == 0 ||
        t.requires_grad() || start < 0 || len < 0 || start + len > t.size(0)) {
      return nullptr;
    }
    std::vector<int64_t> sizes = t.sizes().vec();
    sizes[0] = len;
    auto impl = c10::make_intrusive<c10::TensorImpl>(c10::Storage(t.storage()), t.key_set(), t.dtype());
    impl->set_sizes_and_strides(sizes, t.strides(), t.storage_offset() + start * t.stride(0));
    *out = new at::Tensor(std::move(impl));
    return nullptr;
  } catch (const std::exception& e) {
    return error_message(e.what());
  }
}

// `value` without its autograd history: PyTorch's `.data` (a new handle on the same storage, no grad_fn), made
// without a dispatcher call, for logged values, which are only read.
char* lightning_variable_data(const at::Tensor* value, at::Tensor** out) {
  *out = nullptr;
  try {
    *out = new at::Tensor(value->variable_data());
    return nullptr;
  } catch (const std::exception& e) {
    return error_message(e.what());
  }
}

void lightning_free_error(char* message) { free(message); }

}  // extern "C"
