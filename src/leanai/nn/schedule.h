// Learning-rate schedules, as a function of the global step.
//   constant            lr
//   step                lr * gamma^(floor(step / step_size))
//   cosine              linear warm-up over `warmup` steps, then cosine decay to min_lr at `total`
#pragma once
#include <cstdint>
#include <string>

namespace leanai {

struct ScheduleConfig {
  std::string kind = "constant";  // constant | step | cosine
  int64_t step_size = 1000;       // step: steps between decays
  float gamma = 0.1f;             // step: decay factor
  int64_t warmup = 0;             // cosine: warm-up steps
  int64_t total = 0;              // cosine: total steps
  float min_lr = 0.0f;            // cosine: floor
};

// Throws Error for an unknown kind or out-of-range settings.
void validate_schedule(const ScheduleConfig& c);
float lr_at(const ScheduleConfig& c, float base_lr, int64_t step);

}  // namespace leanai
