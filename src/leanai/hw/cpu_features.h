// ISA features of this CPU, as CPUID reports them and as the OS lets a process
// use them (XGETBV: the register state the kernel saves and restores), plus the
// flags line of /proc/cpuinfo as an independent cross-check.
//
//   CpuFeatures f = detect_cpu_features();
//   if (f.avx512_vnni) ...                        // int8 kernels may use VNNI
//   auto diff = compare_with_cpuinfo(f, read_cpuinfo_flags());   // empty when they agree
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace leanai {

struct CpuFeatures {
  std::string vendor;      // "GenuineIntel", "AuthenticAMD", ...; "unknown" off x86
  std::string model_name;  // the CPUID brand string, e.g. "AMD EPYC 9654 96-Core Processor"
  int family = 0, model = 0, stepping = 0;

  // Usable: the CPU has the feature and the OS saves its register state.
  bool sse4_1 = false, sse4_2 = false;
  bool avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512_vnni = false, avx_vnni = false, avx512_bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;

  // What XGETBV says the OS enables (the features above already include it).
  bool os_avx_state = false;     // XMM and YMM state
  bool os_avx512_state = false;  // opmask, ZMM0-15 upper halves, ZMM16-31
  bool os_amx_state = false;     // TILECFG and TILEDATA
};

// One feature: its name (as in /proc/cpuinfo) and where it lives in CpuFeatures.
struct CpuFeatureField {
  const char* name;
  bool CpuFeatures::*flag;
  const char* meaning;  // one line for reports
};
// Every feature flag of CpuFeatures, in report order.
const std::vector<CpuFeatureField>& cpu_feature_fields();

// CPUID + XGETBV on this CPU (all false off x86).
CpuFeatures detect_cpu_features();

// The flags of the first "flags" line of a /proc/cpuinfo text.
std::set<std::string> parse_cpuinfo_flags(std::string_view cpuinfo_text);
// Reads and parses a cpuinfo file; throws Error when it is missing or has no flags line.
std::set<std::string> read_cpuinfo_flags(const std::string& path = "/proc/cpuinfo");
// The feature flags a cpuinfo flags set claims (vendor and model left empty).
CpuFeatures features_from_cpuinfo_flags(const std::set<std::string>& flags);

// Names of the features where `f` and the cpuinfo flags disagree, each as
// "avx2 (cpuid: yes, cpuinfo: no)"; empty when they agree.
std::vector<std::string> compare_with_cpuinfo(const CpuFeatures& f, const std::set<std::string>& cpuinfo_flags);

}  // namespace leanai
