// The shapes of the tensors going in and out of each operator a forward pass runs, for `ModelSummary`'s "In
// sizes" and "Out sizes" (Lightning reads them with forward hooks on every nn.Module; tch's layers have none).
// A thread-local RecordFunction callback, the mechanism torch.profiler's `record_shapes` uses, sees every
// operator the calling thread dispatches; only the outermost ones are kept (`aten::linear`, not the `aten::t`
// and `aten::addmm` inside it), each with the storage of its tensor inputs, so that the Rust side
// (`src/layer_shapes.rs`) can tell which module's parameters it used. As in kernels.cpp, C++ exceptions come
// back as a malloc'd message (NULL: success).

// Compiled with NDEBUG, as libtorch is (lightning-build defines it for every C++ file): without it,
// RecordFunction::inputs() would assert on a flag that only debug builds of libtorch set.

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

char* shapes_error(const char* what) { return strdup(what ? what : "unknown libtorch error"); }

// What the recording holds for one thread: the text of the outermost operators seen so far (one line each:
// `name \t inputs \t outputs`), and how deep inside operators the thread is.
struct Recording {
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<std::string> names;
  int depth = 0;
};

thread_local Recording* recording = nullptr;

// Marks an outermost operator, so that its end callback knows which entry gets the outputs.
struct Outermost : at::ObserverContext {
  explicit Outermost(size_t index) : index(index) {}
  size_t index;
};

const void* storage_of(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage()) {
    return nullptr;
  }
  return tensor.storage().data();
}

void write_shape(std::ostringstream& out, const at::Tensor& tensor) {
  out << '[';
  auto sizes = tensor.sizes();
  for (size_t i = 0; i < sizes.size(); i++) {
    out << (i ? "," : "") << sizes[i];
  }
  out << ']';
}

// Every defined tensor in `value` (a tensor, a list or a tuple of them, nested), in order: with its storage
// (inputs) or without (outputs).
void write_tensors(std::ostringstream& out, const c10::IValue& value, bool with_storage) {
  auto one = [&](const at::Tensor& tensor) {
    if (!tensor.defined()) {
      return;
    }
    if (with_storage) {
      out << reinterpret_cast<std::uintptr_t>(storage_of(tensor));
    }
    write_shape(out, tensor);
  };
  if (value.isTensor()) {
    one(value.toTensor());
  } else if (value.isTensorList()) {
    for (const at::Tensor& tensor : value.toTensorVector()) {
      one(tensor);
    }
  } else if (value.isList()) {
    for (const c10::IValue& element : value.toListRef()) {
      write_tensors(out, element, with_storage);
    }
  } else if (value.isTuple()) {
    for (const c10::IValue& element : value.toTupleRef().elements()) {
      write_tensors(out, element, with_storage);
    }
  }
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  Recording* r = recording;
  if (r == nullptr) {
    return nullptr;
  }
  if (r->depth++ > 0) {
    return nullptr;
  }
  std::ostringstream inputs;
  for (const c10::IValue& value : fn.inputs()) {
    write_tensors(inputs, value, true);
  }
  r->names.emplace_back(fn.name());
  r->inputs.push_back(inputs.str());
  r->outputs.emplace_back();
  return std::make_unique<Outermost>(r->names.size() - 1);
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* context) {
  Recording* r = recording;
  if (r == nullptr) {
    return;
  }
  r->depth--;
  if (context == nullptr) {
    return;
  }
  std::ostringstream outputs;
  for (const c10::IValue& value : fn.outputs()) {
    write_tensors(outputs, value, false);
  }
  r->outputs[static_cast<Outermost*>(context)->index] = outputs.str();
}

}  // namespace

extern "C" {

// Starts recording on the calling thread; `handle` gets what lightning_shapes_stop needs.
char* lightning_shapes_start(uint64_t* handle) {
  try {
    if (recording != nullptr) {
      return shapes_error("a shape recording is already running on this thread");
    }
    recording = new Recording();
    auto callback = at::RecordFunctionCallback(on_start, on_end)
                        .needsInputs(true)
                        .needsOutputs(true)
                        .scopes({at::RecordScope::FUNCTION});
    *handle = at::addThreadLocalCallback(callback);
    return nullptr;
  } catch (const std::exception& e) {
    delete recording;
    recording = nullptr;
    return shapes_error(e.what());
  }
}

// Stops the recording `handle` and hands back its operators, one line each: `name \t inputs \t outputs`, where
// inputs are `<storage address>[d0,d1,...]` and outputs `[d0,d1,...]`, one after the other. `*text` is
// malloc'd (free it with lightning_free_shapes).
char* lightning_shapes_stop(uint64_t handle, char** text) {
  *text = nullptr;
  try {
    // Taken first, so that the recording is freed even if removing the callback throws.
    std::unique_ptr<Recording> r(recording);
    recording = nullptr;
    at::removeCallback(handle);
    if (!r) {
      return shapes_error("no shape recording is running on this thread");
    }
    std::string all;
    for (size_t i = 0; i < r->names.size(); i++) {
      all += r->names[i] + '\t' + r->inputs[i] + '\t' + r->outputs[i] + '\n';
    }
    *text = strdup(all.c_str());
    return nullptr;
  } catch (const std::exception& e) {
    return shapes_error(e.what());
  }
}

// The address of the storage `tensor` views (what the recording reports for inputs), or 0 if it has none.
uint64_t lightning_storage_address(const at::Tensor* tensor) {
  return reinterpret_cast<std::uintptr_t>(storage_of(*tensor));
}

void lightning_free_shapes(char* text) { free(text); }

}  // extern "C"
