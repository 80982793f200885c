// Mixed precision: libtorch's autocast state for a device type (tch 0.24 binds only the deprecated CUDA-only
// switch, fp16 only) and the gradient scaler's check-and-unscale over every gradient in one call (a void
// function over a tensor list, which tch does not bind). `src/precision/` is the only caller. As in
// kernels.cpp, C++ exceptions come back as a malloc'd message (NULL: success).

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

char* precision_error(const char* what) { return strdup(what ? what : "unknown libtorch error"); }

at::DeviceType device_type(int code) { return code == 1 ? at::kCUDA : at::kCPU; }

}  // namespace

extern "C" {

// Turns autocast on for the device type (0: CPU, 1: CUDA) with `dtype` (an at::ScalarType code), and returns
// the state it replaces for lightning_autocast_exit.
char* lightning_autocast_enter(int device, int dtype, bool* was_enabled, int* was_dtype) {
  try {
    auto type = device_type(device);
    *was_enabled = at::autocast::is_autocast_enabled(type);
    *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(type));
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(dtype));
    at::autocast::increment_nesting();
    return nullptr;
  } catch (const std::exception& e) {
    return precision_error(e.what());
  }
}

// Puts back the state lightning_autocast_enter replaced; leaving the outermost region drops the cache of
// weights cast to the low precision, as torch.autocast's exit does.
char* lightning_autocast_exit(int device, bool was_enabled, int was_dtype) {
  try {
    auto type = device_type(device);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(type, was_enabled);
    at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(was_dtype));
    return nullptr;
  } catch (const std::exception& e) {
    return precision_error(e.what());
  }
}

// Multiplies every gradient by `inv_scale` in place and sets `found_inf` to 1 if any holds an inf or a NaN
// (PyTorch's GradScaler.unscale_). The gradients are grouped by device and dtype, as the kernel requires.
char* lightning_unscale_grads(const at::Tensor* const* grads, size_t n, const at::Tensor* found_inf,
                              const at::Tensor* inv_scale) {
  try {
    std::vector<std::vector<at::Tensor>> groups;
    for (size_t i = 0; i < n; i++) {
      const at::Tensor& g = *grads[i];
      bool placed = false;
      for (auto& group : groups) {
        if (group[0].device() == g.device() && group[0].scalar_type() == g.scalar_type()) {
          group.push_back(g);
          placed = true;
          break;
        }
      }
      if (!placed) groups.push_back({g});
    }
    at::NoGradGuard no_grad;
    at::Tensor found = *found_inf;  // a handle to the same tensor: the kernel writes into it
    for (auto& group : groups) {
      at::_amp_foreach_non_finite_check_and_unscale_(group, found, *inv_scale);
    }
    return nullptr;
  } catch (const std::exception& e) {
    return precision_error(e.what());
  }
}

}  // extern "C"
