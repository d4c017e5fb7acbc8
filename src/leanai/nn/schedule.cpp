#include "leanai/nn/schedule.h"

#include <cmath>

#include "leanai/core/error.h"

namespace leanai {

void validate_schedule(const ScheduleConfig& c) {
  check(c.kind == "constant" || c.kind == "step" || c.kind == "cosine",
        "unknown schedule '" + c.kind + "': use constant, step or cosine");
  check(c.step_size >= 1, "schedule step size must be >= 1");
  check(c.gamma > 0.0f && c.gamma <= 1.0f, "schedule gamma must be in (0, 1]");
  check(c.warmup >= 0 && c.min_lr >= 0.0f, "warm-up steps and min lr must be >= 0");
}

float lr_at(const ScheduleConfig& c, float base_lr, int64_t step) {
  if (c.kind == "step") return base_lr * std::pow(c.gamma, static_cast<float>(step / c.step_size));
  if (c.kind == "cosine") {
    if (step < c.warmup) return base_lr * static_cast<float>(step + 1) / static_cast<float>(c.warmup);
    const int64_t span = std::max<int64_t>(1, c.total - c.warmup);
    const double t = std::min(1.0, static_cast<double>(step - c.warmup) / static_cast<double>(span));
    return c.min_lr + (base_lr - c.min_lr) * static_cast<float>(0.5 * (1.0 + std::cos(M_PI * t)));
  }
  return base_lr;
}

}  // namespace leanai
