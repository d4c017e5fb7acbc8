#include <map>
#include <mutex>

#include "leanai/core/error.h"
#include "leanai/graph/op.h"
#include "leanai/kernels/register.h"

namespace leanai {
namespace {

std::map<std::string, OpInfo>& registry() {
  static std::map<std::string, OpInfo> ops;
  return ops;
}

// Built-in ops are registered on first use, explicitly: static-initializer
// registration is silently dropped when linking a static library.
void ensure_builtins() {
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_ops(); });
}

}  // namespace

void register_op(OpInfo info) { registry()[info.name] = std::move(info); }

bool has_op(const std::string& name) {
  ensure_builtins();
  return registry().count(name) > 0;
}

const OpInfo& find_op(const std::string& name) {
  ensure_builtins();
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (auto& [k, v] : registry()) known += (known.empty() ? "" : ", ") + k;
    throw Error("unknown op '" + name + "'; known ops: " + known);
  }
  return it->second;
}

std::vector<std::string> op_names() {
  ensure_builtins();
  std::vector<std::string> names;
  for (auto& [k, v] : registry()) names.push_back(k);
  return names;
}

static const json* attr(const Node& n, const std::string& key) {
  if (!n.attrs.is_object()) return nullptr;
  auto it = n.attrs.find(key);
  return it == n.attrs.end() ? nullptr : &*it;
}

static std::string where(const Node& n, const std::string& key) {
  return "node " + std::to_string(n.id) + " (" + n.op + "): attribute '" + key + "'";
}

int64_t attr_int(const Node& n, const std::string& key, int64_t fallback) {
  const json* a = attr(n, key);
  if (!a) return fallback;
  check(a->is_number_integer() || a->is_boolean(), where(n, key) + " must be an integer");
  return a->is_boolean() ? a->get<bool>() : a->get<int64_t>();
}

double attr_float(const Node& n, const std::string& key, double fallback) {
  const json* a = attr(n, key);
  if (!a) return fallback;
  check(a->is_number(), where(n, key) + " must be a number");
  return a->get<double>();
}

std::string attr_string(const Node& n, const std::string& key, const std::string& fallback) {
  const json* a = attr(n, key);
  if (!a) return fallback;
  check(a->is_string(), where(n, key) + " must be a string");
  return a->get<std::string>();
}

std::vector<int64_t> attr_ints(const Node& n, const std::string& key, std::vector<int64_t> fallback) {
  const json* a = attr(n, key);
  if (!a) return fallback;
  if (a->is_number_integer()) return std::vector<int64_t>(fallback.empty() ? 1 : fallback.size(), a->get<int64_t>());
  check(a->is_array(), where(n, key) + " must be an integer or a list of integers");
  std::vector<int64_t> out;
  for (auto& v : *a) {
    check(v.is_number_integer(), where(n, key) + " must hold integers");
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace leanai
