#include "leanai/hw/cpu_features.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "leanai/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LEANAI_X86 1
#endif

namespace leanai {

const std::vector<CpuFeatureField>& cpu_feature_fields() {
  static const std::vector<CpuFeatureField> fields = {
      {"sse4_1", &CpuFeatures::sse4_1, "SSE4.1: the baseline for oneDNN's x86 kernels"},
      {"sse4_2", &CpuFeatures::sse4_2, "SSE4.2: string and CRC instructions"},
      {"avx", &CpuFeatures::avx, "AVX: 256-bit float vectors"},
      {"avx2", &CpuFeatures::avx2, "AVX2: 256-bit integer vectors"},
      {"fma", &CpuFeatures::fma, "FMA3: fused multiply-add, two FLOPs per lane per instruction"},
      {"f16c", &CpuFeatures::f16c, "F16C: hardware fp16 <-> fp32 conversion"},
      {"avx512f", &CpuFeatures::avx512f, "AVX-512 Foundation: 512-bit vectors"},
      {"avx512bw", &CpuFeatures::avx512bw, "AVX-512 BW: byte and word operations (int8 kernels)"},
      {"avx512vl", &CpuFeatures::avx512vl, "AVX-512 VL: AVX-512 instructions on 128/256-bit vectors"},
      {"avx512_vnni", &CpuFeatures::avx512_vnni, "AVX-512 VNNI: int8 dot products in one instruction"},
      {"avx_vnni", &CpuFeatures::avx_vnni, "AVX-VNNI: int8 dot products on 256-bit vectors"},
      {"avx512_bf16", &CpuFeatures::avx512_bf16, "AVX-512 BF16: native bf16 dot products"},
      {"amx_tile", &CpuFeatures::amx_tile, "AMX tiles: 2-D tile registers"},
      {"amx_int8", &CpuFeatures::amx_int8, "AMX-INT8: int8 tile matrix multiply"},
      {"amx_bf16", &CpuFeatures::amx_bf16, "AMX-BF16: bf16 tile matrix multiply"},
  };
  return fields;
}

namespace {

#ifdef LEANAI_X86
struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

// XCR0: which register state the OS saves on context switches. Only valid
// when CPUID says OSXSAVE (the OS enabled XSAVE and XGETBV).
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

std::string trim(std::string s) {
  const size_t b = s.find_first_not_of(' ');
  const size_t e = s.find_last_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}
#endif

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  f.vendor = "unknown";
#ifdef LEANAI_X86
  const Regs leaf0 = cpuid(0);
  const uint32_t max_leaf = leaf0.eax;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &leaf0.ebx, 4);
  std::memcpy(vendor + 4, &leaf0.edx, 4);
  std::memcpy(vendor + 8, &leaf0.ecx, 4);
  f.vendor = vendor;

  const uint32_t max_ext = cpuid(0x80000000u).eax;
  if (max_ext >= 0x80000004u) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i + 0, &r.eax, 4);
      std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
      std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
      std::memcpy(brand + 16 * i + 12, &r.edx, 4);
    }
    f.model_name = trim(brand);
  }
  if (max_leaf < 1) return f;

  const Regs l1 = cpuid(1);
  const uint32_t base_family = (l1.eax >> 8) & 0xf, base_model = (l1.eax >> 4) & 0xf;
  f.family = static_cast<int>(base_family == 0xf ? base_family + ((l1.eax >> 20) & 0xff) : base_family);
  f.model = static_cast<int>(base_family == 0x6 || base_family == 0xf ? base_model + (((l1.eax >> 16) & 0xf) << 4)
                                                                       : base_model);
  f.stepping = static_cast<int>(l1.eax & 0xf);

  f.sse4_1 = bit(l1.ecx, 19);
  f.sse4_2 = bit(l1.ecx, 20);
  const bool osxsave = bit(l1.ecx, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  f.os_avx_state = (xcr0 & 0x6) == 0x6;                                 // XMM | YMM
  f.os_avx512_state = f.os_avx_state && (xcr0 & 0xe0) == 0xe0;          // opmask | ZMM_Hi256 | Hi16_ZMM
  f.os_amx_state = (xcr0 & (uint64_t{3} << 17)) == (uint64_t{3} << 17);  // XTILECFG | XTILEDATA

  f.avx = bit(l1.ecx, 28) && f.os_avx_state;
  f.fma = bit(l1.ecx, 12) && f.os_avx_state;
  f.f16c = bit(l1.ecx, 29) && f.os_avx_state;

  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    f.avx2 = bit(l7.ebx, 5) && f.os_avx_state;
    f.avx512f = bit(l7.ebx, 16) && f.os_avx512_state;
    f.avx512bw = bit(l7.ebx, 30) && f.os_avx512_state;
    f.avx512vl = bit(l7.ebx, 31) && f.os_avx512_state;
    f.avx512_vnni = bit(l7.ecx, 11) && f.os_avx512_state;
    f.amx_bf16 = bit(l7.edx, 22) && f.os_amx_state;
    f.amx_tile = bit(l7.edx, 24) && f.os_amx_state;
    f.amx_int8 = bit(l7.edx, 25) && f.os_amx_state;
    if (l7.eax >= 1) {  // subleaf 1 exists
      const Regs l71 = cpuid(7, 1);
      f.avx_vnni = bit(l71.eax, 4) && f.os_avx_state;
      f.avx512_bf16 = bit(l71.eax, 5) && f.os_avx512_state;
    }
  }
#endif
  return f;
}

std::set<std::string> parse_cpuinfo_flags(std::string_view text) {
  std::set<std::string> flags;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    if (key != "flags") continue;
    std::istringstream words{std::string(line.substr(colon + 1))};
    for (std::string w; words >> w;) flags.insert(w);
    break;  // the first processor's flags; every processor lists the same set
  }
  return flags;
}

std::set<std::string> read_cpuinfo_flags(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot read '" + path + "': CPU flags need /proc/cpuinfo (is /proc mounted?)");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::set<std::string> flags = parse_cpuinfo_flags(text);
  check(!flags.empty(), "'" + path + "' has no 'flags' line (not an x86 /proc/cpuinfo?)");
  return flags;
}

CpuFeatures features_from_cpuinfo_flags(const std::set<std::string>& flags) {
  CpuFeatures f;
  for (const CpuFeatureField& field : cpu_feature_fields()) f.*field.flag = flags.count(field.name) > 0;
  return f;
}

std::vector<std::string> compare_with_cpuinfo(const CpuFeatures& f, const std::set<std::string>& cpuinfo_flags) {
  const CpuFeatures c = features_from_cpuinfo_flags(cpuinfo_flags);
  std::vector<std::string> diff;
  for (const CpuFeatureField& field : cpu_feature_fields())
    if (f.*field.flag != c.*field.flag)
      diff.push_back(std::string(field.name) + " (cpuid: " + (f.*field.flag ? "yes" : "no") +
                     ", cpuinfo: " + (c.*field.flag ? "yes" : "no") + ")");
  return diff;
}

}  // namespace leanai
