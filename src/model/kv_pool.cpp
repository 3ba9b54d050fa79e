#include "model/kv_pool.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"

namespace ponder {

KvPool::KvPool(int n_layer, int kv_dim, int block_size, int n_blocks)
    : n_layer_(n_layer), kv_dim_(kv_dim), block_size_(block_size) {
  if (n_layer <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0)
    throw InvalidArgument("KvPool: layers, kv_dim, block_size and n_blocks must be positive");
  block_stride_ = size_t(n_layer) * 2 * size_t(block_size) * size_t(kv_dim) + 64 / sizeof(float);
  const size_t n_floats = size_t(n_blocks) * block_stride_;
  try {
    data_.resize(n_floats);
  } catch (const std::bad_alloc&) {
    throw ResourceError("KV cache: " + std::to_string(n_blocks) + " blocks of " + std::to_string(block_size) +
                        " positions need " + std::to_string(n_floats * sizeof(float) >> 20) +
                        " MiB, which could not be allocated (fewer paths, shorter outputs or a shorter prompt)");
  }
  ref_count_.assign(size_t(n_blocks), 0);
  for (int b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int32_t KvPool::allocate() {
  const int32_t b = free_.back();
  free_.pop_back();
  ref_count_[size_t(b)] = 1;
  return b;
}

int KvPool::blocks_needed(const KvSeq& seq, int n_new) const {
  if (n_new <= 0) return 0;
  const int need = (seq.n_pos + n_new + block_size_ - 1) / block_size_;
  // A partly filled last block that other sequences share must be copied before we write into it.
  const bool copy_last = seq.n_pos % block_size_ != 0 && ref_count_[size_t(seq.blocks.back())] > 1;
  return std::max(0, need - int(seq.blocks.size())) + (copy_last ? 1 : 0);
}

void KvPool::reserve(KvSeq& seq, int n_new) {
  if (n_new <= 0) return;
  const int need = (seq.n_pos + n_new + block_size_ - 1) / block_size_;
  const bool copy_last = seq.n_pos % block_size_ != 0 && ref_count_[size_t(seq.blocks.back())] > 1;
  const int n_alloc = blocks_needed(seq, n_new);
  if (n_alloc > n_free())
    throw ResourceError("KV cache is full: " + std::to_string(n_alloc) + " more blocks of " +
                        std::to_string(block_size_) + " positions needed, " + std::to_string(n_free()) + " of " +
                        std::to_string(n_blocks()) + " free (raise the context size or use fewer paths)");
  if (copy_last) {
    const int32_t old = seq.blocks.back();
    const int32_t fresh = allocate();
    const size_t block_floats = size_t(n_layer_) * 2 * size_t(block_size_) * size_t(kv_dim_);
    std::memcpy(data_.data() + offset(fresh, 0, 0), data_.data() + offset(old, 0, 0), block_floats * sizeof(float));
    --ref_count_[size_t(old)];
    seq.blocks.back() = fresh;
  }
  while (int(seq.blocks.size()) < need) seq.blocks.push_back(allocate());
}

KvSeq KvPool::fork(const KvSeq& seq) {
  for (int32_t b : seq.blocks) ++ref_count_[size_t(b)];
  return seq;
}

void KvPool::release(KvSeq& seq) {
  for (int32_t b : seq.blocks)
    if (--ref_count_[size_t(b)] == 0) free_.push_back(b);
  seq.blocks.clear();
  seq.n_pos = 0;
}

void KvPool::release(int32_t block) {
  if (--ref_count_[size_t(block)] == 0) free_.push_back(block);
}

}  // namespace ponder
