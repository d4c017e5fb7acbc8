#include "leanai/runtime/plan_instance.h"

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/kernels/dnnl_context.h"
#include "leanai/runtime/memory_planner.h"

namespace leanai::runtime {

void PrimitiveStep::bind(Instance& inst) {
  for (auto [arg, v] : value_args) args[arg] = inst.values[v].mem;
  if (scratchpad_desc.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = inst.scratchpad(scratchpad_desc);
  c_args_.clear();
  for (const auto& [arg, mem] : args) c_args_.push_back({arg, mem.get(true)});
}

void PrimitiveStep::run() {
  const dnnl_status_t status = dnnl_primitive_execute(primitive.get(), cpu_stream().get(),
                                                      static_cast<int>(c_args_.size()), c_args_.data());
  if (status != dnnl_success)
    throw Error("plan: oneDNN failed to run step '" + info.name + "' (status " + std::to_string(status) + ")");
}

void OneToOneStep::bind(Instance& inst) {
  const int x = reads.at(0), y = writes.at(0);
  if (inst.values[inst.root(x)].external)
    input_ = &inst.input;
  else
    src_ = inst.values[x].mem.get_data_handle();
  check(!inst.values[inst.root(y)].external, "plan: a step writes into the caller's input");
  dst_ = inst.values[y].mem.get_data_handle();
  src_shape_ = inst.values[x].shape;
}

void KernelStep::bind(Instance& inst) {
  inputs_.assign(input_values.size(), Tensor());
  input_ptrs_.clear();
  for (size_t i = 0; i < input_values.size(); ++i) {
    inputs_[i] = input_values[i] >= 0 ? inst.values[input_values[i]].tensor : *params[i];
    check(inputs_[i].defined(), "plan: a kernel step reads a value with no plain storage");
  }
  for (const Tensor& t : inputs_) input_ptrs_.push_back(&t);
  output_ = inst.values[writes.at(0)].tensor;
}

void KernelStep::run() { kernel->forward(input_ptrs_, output_, ctx_); }

dnnl::memory PackedWeights::get(const Tensor& w, const md& plain, const md& packed) {
  for (const Entry& e : entries_)
    if (e.data == w.raw() && e.desc == packed) return e.memory;
  dnnl::memory out(packed, cpu_engine());
  dnnl::memory src = wrap(plain, w);
  dnnl::reorder(src, out).execute(cpu_stream(), src, out);
  cpu_stream().wait();
  entries_.push_back({w.raw(), packed, out});
  bytes_ += static_cast<int64_t>(packed.get_size());
  return out;
}

Tensor PackedWeights::derived(const Tensor& source, const std::string& how, const std::function<Tensor()>& make) {
  for (auto& [data, kind, t] : derived_)
    if (data == source.raw() && kind == how) return t;
  derived_.emplace_back(source.raw(), how, make());
  return std::get<2>(derived_.back());
}

void PackedWeights::keep_only(const std::vector<const Instance*>& users) {
  std::vector<Entry> kept;
  bytes_ = 0;
  for (Entry& e : entries_) {
    void* handle = e.memory.get_data_handle();
    bool used = false;
    for (const Instance* inst : users)
      used |= std::find(inst->packed_weights.begin(), inst->packed_weights.end(), handle) != inst->packed_weights.end();
    if (!used) continue;
    bytes_ += static_cast<int64_t>(e.desc.get_size());
    kept.push_back(std::move(e));
  }
  entries_ = std::move(kept);
}

dnnl::memory Instance::scratchpad(const md& desc) const {
  return dnnl::memory(desc, cpu_engine(), scratch.raw());
}

void Instance::finalize() {
  // Lifetimes, on storage roots.
  for (int s = 0; s < static_cast<int>(steps.size()); ++s) {
    for (int v : steps[s]->writes) values[root(v)].first = std::min(values[root(v)].first, s);
    for (int v : steps[s]->reads) values[root(v)].last = std::max(values[root(v)].last, s);
  }
  values[root(output_value)].last = static_cast<int>(steps.size());
  std::vector<BufferRequest> requests;
  std::vector<int> planned;
  for (int v = 0; v < static_cast<int>(values.size()); ++v) {
    Value& val = values[v];
    if (val.root >= 0 || val.external || val.first == INT_MAX) continue;
    // Aliases may view the storage with a larger descriptor (never in practice; be safe).
    int64_t bytes = static_cast<int64_t>(val.desc.get_size());
    for (const Value& other : values)
      if (other.root >= 0 && &values[root(other.root)] == &val) bytes = std::max<int64_t>(bytes, other.desc.get_size());
    requests.push_back({bytes, val.first, std::max(val.first, val.last)});
    planned.push_back(v);
  }
  MemoryPlan plan = plan_memory(requests);
  for (size_t i = 0; i < planned.size(); ++i) values[planned[i]].offset = plan.offsets[i];
  arena = Tensor::empty({std::max<int64_t>(plan.arena_bytes, 64)}, DType::u8);
  memory.arena_bytes = plan.arena_bytes;
  memory.unshared_bytes = plan.unshared_bytes;

  size_t scratch_bytes = 64;
  for (auto& s : steps)
    if (auto* p = dynamic_cast<PrimitiveStep*>(s.get())) scratch_bytes = std::max(scratch_bytes, p->scratchpad_desc.get_size());
  scratch = Tensor::empty({static_cast<int64_t>(scratch_bytes)}, DType::u8);
  memory.scratch_bytes = static_cast<int64_t>(scratch_bytes);

  auto is_plain = [](const Value& v) { return v.desc == plain_desc(v.shape); };
  for (int v = 0; v < static_cast<int>(values.size()); ++v) {
    Value& val = values[v];
    const Value& r = values[root(v)];
    if (r.external) {
      val.mem = dnnl::memory(val.desc, cpu_engine(), DNNL_MEMORY_NONE);
      continue;
    }
    if (r.first == INT_MAX) continue;  // never written (unused)
    char* base = static_cast<char*>(arena.raw()) + r.offset;
    val.mem = dnnl::memory(val.desc, cpu_engine(), base);
    if (is_plain(val)) val.tensor = arena.view(r.offset, val.shape);
  }
  for (auto& s : steps) s->bind(*this);
  // Only oneDNN's steps read the input through its memory objects (re-pointing
  // one is a call into oneDNN, so leanai's steps read Instance::input). Each
  // is listed once, however many steps read it.
  for (auto& s : steps)
    if (auto* p = dynamic_cast<PrimitiveStep*>(s.get()))
      for (auto [arg, v] : p->value_args)
        if (values[root(v)].external &&
            std::none_of(input_memories.begin(), input_memories.end(),
                         [&](const dnnl::memory& m) { return m.get() == values[v].mem.get(); }))
          input_memories.push_back(values[v].mem);
  output = values[output_value].tensor;
  check(output.defined(), "plan: the output has no plain storage");
}

}  // namespace leanai::runtime
