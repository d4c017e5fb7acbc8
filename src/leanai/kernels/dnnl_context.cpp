#include "leanai/kernels/dnnl_context.h"

#include <algorithm>
#include <memory>
#include <string>

#include "leanai/core/error.h"

namespace leanai {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  static dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

dnnl::memory::desc plain_desc(const Shape& s, dnnl::memory::data_type dt) {
  using tag = dnnl::memory::format_tag;
  static const tag tags[] = {tag::a, tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde};
  return dnnl::memory::desc(to_dims(s.empty() ? Shape{1} : s), dt, tags[s.size() < 6 ? s.size() : 5]);
}

dnnl::memory wrap(const dnnl::memory::desc& desc, const Tensor& t) {
  return dnnl::memory(desc, cpu_engine(), t.raw());
}

dnnl::primitive_attr user_scratchpad(dnnl::primitive_attr attr) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::memory scratchpad_for(const dnnl::memory::desc& desc) {
  thread_local std::unique_ptr<Buffer> buffer;
  const size_t bytes = desc.get_size();
  if (!buffer || buffer->bytes() < bytes) buffer = std::make_unique<Buffer>(std::max<size_t>(bytes, 1));
  return dnnl::memory(desc, cpu_engine(), buffer->data());
}

void LayoutBridge::prepare(const dnnl::memory::desc& plain, const dnnl::memory::desc& chosen, bool to_chosen) {
  plain_ = plain;
  chosen_ = chosen;
  needed_ = plain != chosen;
  if (!needed_) return;
  buffer_ = dnnl::memory(chosen_, cpu_engine());
  dnnl::memory p(plain_, cpu_engine(), DNNL_MEMORY_NONE);
  reorder_ = to_chosen ? dnnl::reorder(p, buffer_) : dnnl::reorder(buffer_, p);
}

dnnl::memory LayoutBridge::in(const Tensor& t) {
  if (!needed_) return wrap(plain_, t);
  dnnl::memory p = wrap(plain_, t);
  reorder_.execute(cpu_stream(), p, buffer_);
  return buffer_;
}

dnnl::memory LayoutBridge::out(const Tensor& t) { return needed_ ? buffer_ : wrap(plain_, t); }

void LayoutBridge::finish(const Tensor& t) {
  if (!needed_) return;
  dnnl::memory p = wrap(plain_, t);
  reorder_.execute(cpu_stream(), buffer_, p);
}

}  // namespace leanai
