#include "leanai/data/batch_loader.h"

#include <algorithm>

#include "leanai/core/error.h"
#include "leanai/core/rng.h"
#include "leanai/data/shuffle.h"

namespace leanai {

namespace {

int64_t count_batches(int64_t rows, int64_t batch_size, bool drop_last) {
  return drop_last ? rows / batch_size : (rows + batch_size - 1) / batch_size;
}

const Dataset* checked(const Dataset* data, int64_t batch_size) {
  check(data != nullptr, "BatchLoader: no dataset given");
  check(batch_size >= 1, "BatchLoader: batch size must be at least 1, got " + std::to_string(batch_size));
  return data;
}

// A seed of its own for each epoch, so epochs differ but replay exactly.
uint64_t epoch_seed(uint64_t seed, int epoch) {
  return seed ^ (0x9e3779b97f4a7c15ull * (static_cast<uint64_t>(static_cast<int64_t>(epoch)) + 1));
}

}  // namespace

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> data, int64_t batch_size, bool shuffle, uint64_t seed,
                         bool drop_last)
    : data_(std::move(data)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last) {
  num_batches_ = count_batches(checked(data_.get(), batch_size)->size(), batch_size, drop_last);
  // No bigger than the dataset: a batch size above N only ever fills N rows.
  const int64_t rows = std::min(batch_size_, data_->size());
  Shape x_shape = data_->sample_shape();
  x_shape.insert(x_shape.begin(), rows);
  const bool classify = data_->task() == Task::classification;
  for (Slot& s : slots_) {
    s.x = Tensor::empty(x_shape, DType::f32);
    s.y = classify ? Tensor::empty({rows}, DType::i64) : Tensor::empty({rows, data_->num_outputs()}, DType::f32);
  }
  worker_ = std::thread([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();  // a fill in progress finishes its one batch first
}

void BatchLoader::start_epoch(int epoch) { start_epoch(epoch, iota_indices(data_->size()), drop_last_); }

void BatchLoader::start_epoch(int epoch, std::vector<int64_t> rows, bool drop_last) {
  const int64_t n = data_->size();
  for (int64_t r : rows)
    check(r >= 0 && r < n, "BatchLoader: row " + std::to_string(r) + " is outside the dataset of " + std::to_string(n) +
                               " samples");
  std::unique_lock<std::mutex> lock(mu_);
  // The worker may be filling a slot from the old order: let it finish.
  cv_.wait(lock, [this] { return slots_[0].state != SlotState::filling && slots_[1].state != SlotState::filling; });
  order_ = std::move(rows);
  num_batches_ = count_batches(static_cast<int64_t>(order_.size()), batch_size_, drop_last);
  if (shuffle_) {
    Rng rng(epoch_seed(seed_, epoch));
    shuffle_in_place(order_, rng);
  }
  for (Slot& s : slots_) {
    s.state = SlotState::free;
    s.batch = -1;
  }
  epoch_started_ = true;
  next_to_fill_ = 0;
  next_to_consume_ = 0;
  error_ = nullptr;
  lock.unlock();
  cv_.notify_all();
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mu_);
  check(epoch_started_, "BatchLoader: call start_epoch(epoch) before next()");
  // The caller is done with the batch it had: its slot can be refilled.
  for (Slot& s : slots_)
    if (s.state == SlotState::lent) s.state = SlotState::free;
  cv_.notify_all();
  if (next_to_consume_ >= num_batches_) return false;

  const int64_t wanted = next_to_consume_;
  Slot* slot = nullptr;
  cv_.wait(lock, [&] {
    for (Slot& s : slots_)
      if (s.state == SlotState::ready && s.batch == wanted) slot = &s;
    return slot != nullptr || error_ != nullptr;
  });
  if (slot == nullptr) std::rethrow_exception(error_);
  slot->state = SlotState::lent;
  ++next_to_consume_;
  const bool full = slot->rows == slot->x.dim(0);
  out.x = full ? slot->x : slot->x.slice0(0, slot->rows);
  out.y = full ? slot->y : slot->y.slice0(0, slot->rows);
  out.size = slot->rows;
  out.rows = order_.data() + slot->batch * batch_size_;
  return true;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Slot* slot = nullptr;
    cv_.wait(lock, [&] {
      if (stop_) return true;
      if (!epoch_started_ || error_ || next_to_fill_ >= num_batches_) return false;
      for (Slot& s : slots_)
        if (s.state == SlotState::free) slot = &s;
      return slot != nullptr;
    });
    if (stop_) return;
    const int64_t batch = next_to_fill_++;
    slot->state = SlotState::filling;
    slot->batch = batch;
    slot->rows = std::min(batch_size_, static_cast<int64_t>(order_.size()) - batch * batch_size_);
    lock.unlock();
    std::exception_ptr failure;
    try {
      fill(*slot);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    slot->state = failure ? SlotState::free : SlotState::ready;
    if (failure) error_ = failure;
    cv_.notify_all();
  }
}

void BatchLoader::fill(Slot& slot) {
  const int64_t begin = slot.batch * batch_size_;
  const int64_t rows = slot.rows;
  if (rows == slot.x.dim(0)) {
    data_->gather(order_.data() + begin, rows, slot.x, slot.y);
  } else {
    Tensor xs = slot.x.slice0(0, rows), ys = slot.y.slice0(0, rows);
    data_->gather(order_.data() + begin, rows, xs, ys);
  }
}

}  // namespace leanai
