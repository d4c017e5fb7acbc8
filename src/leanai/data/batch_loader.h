// BatchLoader: batches of a Dataset in a seeded order per epoch, gathered by a
// background thread one batch ahead (two preallocated buffer pairs: the
// thread fills one while the caller uses the other).
//
//   BatchLoader loader(train, 128, /*shuffle=*/true, /*seed=*/1);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     Batch b;
//     while (loader.next(b)) step(b.x, b.y);
//   }
//
// One thread consumes (calls start_epoch/next); the loader owns the other.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "leanai/core/tensor.h"
#include "leanai/data/dataset.h"

namespace leanai {

struct Batch {
  // Views into the loader's buffers: their contents are valid until the next
  // call to next() or start_epoch() (copy with clone() to keep them).
  Tensor x, y;
  int64_t size = 0;  // rows; less than the batch size only for the last batch
  const int64_t* rows = nullptr;  // the dataset indices of those rows (valid as long as x and y)
};

class BatchLoader {
 public:
  // Throws Error for a null dataset or a batch size < 1.
  BatchLoader(std::shared_ptr<const Dataset> data, int64_t batch_size, bool shuffle, uint64_t seed,
              bool drop_last = false);
  // Stops the thread, also in the middle of an epoch.
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts (or restarts) an epoch. With shuffle, the order is a permutation
  // derived from (seed, epoch) only: the same epoch always has the same order.
  void start_epoch(int epoch);
  // Starts an epoch over only `rows` (dataset indices: a selected subset, or
  // what dynamic pruning keeps this epoch), shuffled the same seeded way.
  // drop_last drops a final partial batch (the constructor's setting applies
  // to start_epoch(epoch) only). Throws Error for a row outside the dataset.
  void start_epoch(int epoch, std::vector<int64_t> rows, bool drop_last);
  // The next batch of the epoch; false when the epoch is over. Rethrows an
  // error raised while gathering. Throws Error before the first start_epoch.
  bool next(Batch& out);

  // Batches in the current epoch (before the first start_epoch: in a full one).
  int64_t batches_per_epoch() const { return num_batches_; }
  int64_t batch_size() const { return batch_size_; }
  const Dataset& dataset() const { return *data_; }

 private:
  enum class SlotState { free, filling, ready, lent };
  struct Slot {
    Tensor x, y;  // batch_size rows, allocated once
    SlotState state = SlotState::free;
    int64_t batch = -1;  // which batch of the epoch it holds
    int64_t rows = 0;
  };

  void worker_loop();
  // Gathers the slot's batch; runs without the lock, on a slot marked filling.
  void fill(Slot& slot);

  const std::shared_ptr<const Dataset> data_;
  const int64_t batch_size_;
  const bool shuffle_;
  const uint64_t seed_;
  const bool drop_last_;

  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_. order_ changes only while no slot is filling, so the
  // worker reads it without the lock while it fills.
  Slot slots_[2];
  std::vector<int64_t> order_;
  int64_t num_batches_ = 0;
  bool epoch_started_ = false;
  int64_t next_to_fill_ = 0;
  int64_t next_to_consume_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;

  std::thread worker_;  // last: starts after everything above is built
};

}  // namespace leanai
