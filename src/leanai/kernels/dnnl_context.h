// The process-wide oneDNN CPU engine and stream, and helpers to wrap our
// tensors as dnnl::memory without copying.
#pragma once
#include <dnnl.hpp>

#include "leanai/core/tensor.h"

namespace leanai {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();

// Dims of a shape, as oneDNN wants them.
dnnl::memory::dims to_dims(const Shape& s);
// A plain (row-major) f32 memory descriptor for a shape.
dnnl::memory::desc plain_desc(const Shape& s, dnnl::memory::data_type dt = dnnl::memory::data_type::f32);
// A dnnl::memory over the tensor's own storage (no copy).
dnnl::memory wrap(const dnnl::memory::desc& desc, const Tensor& t);

// Row-major SGEMM on oneDNN: C = op(A) op(B) + beta * C, op = 'N' or 'T'.
// Does nothing when C is empty; throws Error when oneDNN fails.
void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

// Attributes asking a primitive to use scratch memory we provide, instead of
// oneDNN allocating (and page-faulting in) fresh memory on every execution.
dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr = {});
// Scratch memory for one execution of a primitive created with user_scratchpad:
// a per-thread buffer that only grows, so steady-state steps allocate nothing.
dnnl::memory scratchpad_for(const dnnl::memory::desc& scratchpad_desc);

// Reorders between a plain tensor and a oneDNN-chosen layout, when they differ.
// Keeps the reorder primitive and the blocked buffer so reuse costs nothing.
class LayoutBridge {
 public:
  // `plain` is the user layout; `chosen` is what the primitive asked for.
  void prepare(const dnnl::memory::desc& plain, const dnnl::memory::desc& chosen, bool to_chosen);
  bool needed() const { return needed_; }
  // Returns the memory the primitive should use; reorders plain->chosen when
  // this bridge feeds a primitive.
  dnnl::memory in(const Tensor& plain_tensor);
  // Memory for a primitive to write; call finish() to copy back to the plain tensor.
  dnnl::memory out(const Tensor& plain_tensor);
  void finish(const Tensor& plain_tensor);
  // The chosen-layout buffer as the last in() left it (only when needed()).
  dnnl::memory in_cached() const { return buffer_; }

 private:
  bool needed_ = false;
  dnnl::memory::desc plain_, chosen_;
  dnnl::memory buffer_;
  dnnl::reorder reorder_;
};

}  // namespace leanai
