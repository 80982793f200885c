// Distributed training over libtorch's own c10d: the TCPStore rendezvous, a Gloo process group, the collectives
// the Trainer needs, and c10d's Reducer (the engine of PyTorch's DistributedDataParallel: gradients averaged in
// buckets from autograd hooks, so communication overlaps the rest of the backward pass). `src/distributed/c10d.rs`
// is the only caller and holds the safe wrappers. As in kernels.cpp, every function catches C++ exceptions and
// returns them as a malloc'd message (NULL: success): an exception must never unwind into Rust.
//
// Compiled only when Gloo's headers are available (see build.rs); libtorch_cpu.so carries Gloo itself.

#include <torch/csrc/distributed/c10d/GlooDeviceFactory.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {

char* error_message(const char* what) { return strdup(what ? what : "unknown c10d error"); }

// Runs the statements given, with autograd off (collectives write into parameters in place), and returns
// NULL or the exception's message.
#define GUARD(...)                        \
  try {                                   \
    at::NoGradGuard no_grad;              \
    __VA_ARGS__;                          \
    return nullptr;                       \
  } catch (const std::exception& e) {     \
    return error_message(e.what());       \
  } catch (...) {                         \
    return error_message(nullptr);        \
  }

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 2:
      return c10d::ReduceOp::MAX;
    case 3:
      return c10d::ReduceOp::MIN;
    default:
      return c10d::ReduceOp::SUM;  // 0: sum; 1: mean, as a sum divided afterwards (Gloo has no AVG)
  }
}

std::vector<at::Tensor> tensors(const at::Tensor* const* handles, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) out.push_back(*handles[i]);
  return out;
}

}  // namespace

extern "C" {

// Meets the other processes at host:port (rank 0 serves the store there) and builds a Gloo process group.
// `device_host` non-empty binds Gloo's connections to that address (127.0.0.1 for one node), else Gloo picks
// the interface of this host's name (GLOO_SOCKET_IFNAME overrides). With `nccl` (a build with NCCL), CUDA
// tensors go through an NCCL process group instead of Gloo.
char* lightning_dist_connect(const char* host, int port, int rank, int world, int64_t timeout_ms,
                             const char* device_host, bool nccl, void** out) {
  GUARD({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = rank == 0;
    options.numWorkers = static_cast<size_t>(world);
    options.waitWorkers = true;
    options.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    gloo_options->devices.clear();
    if (device_host != nullptr && device_host[0] != '\0') {
      gloo_options->devices.push_back(c10d::GlooDeviceFactory::makeDeviceForHostname(device_host, false));
    } else {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice(false));
    }
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gloo_options);
    auto pg = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world);
    pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
    pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::GLOO, backend);
#ifdef USE_C10D_NCCL
    if (nccl) {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      // A store of its own: the NCCL group's rendezvous keys must not meet Gloo's.
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", store);
      auto cuda = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, nccl_options);
      pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, cuda);
    }
#else
    if (nccl) throw std::runtime_error("this build has no NCCL");
#endif
    *out = new Group{store, pg};
  })
}

// Drops this process's side of the group: its connections close, so peers blocked in a collective with it
// fail at once instead of waiting for the timeout.
char* lightning_dist_free(void* group) { GUARD(delete static_cast<Group*>(group)) }

// In place: 0 sum, 1 mean, 2 max, 3 min over every process.
char* lightning_dist_all_reduce(void* group, const at::Tensor* tensor, int op) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    if (op == 1 && !tensor->is_floating_point()) {
      // Checked first: the sum would be done, and the tensor changed, before the division failed.
      throw std::invalid_argument("a mean over the processes needs a floating-point tensor");
    }
    std::vector<at::Tensor> list{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = reduce_op(op);
    g->pg->allreduce(list, options)->wait();
    if (op == 1) tensor->div_(g->pg->getSize());
  })
}

// Starts the same in-place reduction and returns at once; `*work` is for lightning_dist_wait.
char* lightning_dist_all_reduce_start(void* group, const at::Tensor* tensor, int op, void** work) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> list{*tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = reduce_op(op);
    *work = new c10::intrusive_ptr<c10d::Work>(g->pg->allreduce(list, options));
  })
}

// Waits for a reduction lightning_dist_all_reduce_start started, and frees its handle.
char* lightning_dist_wait(void* work) {
  auto* handle = static_cast<c10::intrusive_ptr<c10d::Work>*>(work);
  char* error = nullptr;
  try {
    (*handle)->wait();
  } catch (const std::exception& e) {
    error = error_message(e.what());
  } catch (...) {
    error = error_message(nullptr);
  }
  delete handle;
  return error;
}

// In place: every process gets `root`'s values.
char* lightning_dist_broadcast(void* group, const at::Tensor* const* handles, size_t n, int root) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    c10d::BroadcastOptions options;
    options.rootRank = root;
    for (size_t i = 0; i < n; i++) {
      std::vector<at::Tensor> list{*handles[i]};
      g->pg->broadcast(list, options)->wait();
    }
  })
}

// Fills outs[r] (world tensors shaped like `input`) with process r's `input`.
char* lightning_dist_all_gather(void* group, const at::Tensor* input, const at::Tensor* const* outs, size_t n) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    std::vector<std::vector<at::Tensor>> outputs{tensors(outs, n)};
    std::vector<at::Tensor> inputs{*input};
    g->pg->allgather(outputs, inputs)->wait();
  })
}

char* lightning_dist_barrier(void* group) {
  GUARD({ static_cast<Group*>(group)->pg->barrier()->wait(); })
}

char* lightning_dist_store_set(void* group, const char* key, const uint8_t* value, size_t len) {
  GUARD({
    std::vector<uint8_t> bytes(value, value + len);
    static_cast<Group*>(group)->store->set(std::string(key), bytes);
  })
}

// `*found` tells whether `key` is set; when it is, its value is returned in a malloc'd buffer.
char* lightning_dist_store_try_get(void* group, const char* key, bool* found, uint8_t** value, size_t* len) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    *found = g->store->check({std::string(key)});
    *value = nullptr;
    *len = 0;
    if (*found) {
      auto bytes = g->store->get(std::string(key));
      *len = bytes.size();
      *value = static_cast<uint8_t*>(malloc(bytes.size() + 1));
      memcpy(*value, bytes.data(), bytes.size());
    }
  })
}

// c10d's Reducer over `params` (the trainable parameters, in registration order), in buckets of about
// `bucket_cap_bytes` (the first one smaller, so communication starts early), as DistributedDataParallel makes it.
char* lightning_dist_reducer_new(void* group, const at::Tensor* const* params, size_t n, int64_t bucket_cap_bytes,
                                 bool find_unused, void** out) {
  GUARD({
    auto* g = static_cast<Group*>(group);
    auto list = tensors(params, n);
    // Gradients become ready roughly in reverse registration order: bucket them that way, as DDP does; the
    // Reducer rebuilds the buckets in the order it saw after the first iteration.
    std::vector<int64_t> order(n);
    for (size_t i = 0; i < n; i++) order[i] = static_cast<int64_t>(n - 1 - i);
    const int64_t first_bucket_cap = 1024 * 1024;
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        list, {static_cast<size_t>(first_bucket_cap), static_cast<size_t>(bucket_cap_bytes)},
        std::vector<bool>(n, false), order);
    std::vector<int64_t> caps(limits.begin(), limits.end());
    auto* reducer = new c10d::Reducer(list, buckets, g->pg, std::vector<bool>(n, false), bucket_cap_bytes,
                                      find_unused, /*gradient_as_bucket_view=*/false, {}, first_bucket_cap,
                                      /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, caps);
    *out = reducer;
  })
}

// Arms the Reducer for the next backward pass (DDP's forward does this when gradients are to be synchronized):
// the autograd hooks then average each bucket as its gradients are ready, and the last one waits for all.
// `loss` (may be NULL) is where a search for unused parameters starts.
char* lightning_dist_reducer_prepare(void* reducer, const at::Tensor* loss) {
  GUARD({
    auto* r = static_cast<c10d::Reducer*>(reducer);
    r->rebuild_buckets();
    r->prepare_for_forward();
    std::vector<at::Tensor> outputs;
    if (loss != nullptr) outputs.push_back(*loss);
    r->prepare_for_backward(outputs);
  })
}

char* lightning_dist_reducer_free(void* reducer) { GUARD(delete static_cast<c10d::Reducer*>(reducer)) }

void lightning_dist_free_buffer(uint8_t* buffer) { free(buffer); }

}  // extern "C"
