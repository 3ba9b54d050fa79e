#pragma once
// The paged KV cache: a pool of fixed-size blocks (block_size positions x all layers x K and V),
// reference counted so that sequences can share a prefix. A sequence owns a block table;
// fork() shares every block (no copy); appending into a shared, partly filled block copies that
// block first (copy-on-write); release() returns blocks when their count drops to zero.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ponder {

struct KvSeq {
  std::vector<int32_t> blocks;  // block table: position p lives in blocks[p / block_size]
  int n_pos = 0;                // positions written
};

class KvPool {
 public:
  // n_blocks x block_size positions for a model of n_layer layers and kv_dim = Hkv*D.
  KvPool(int n_layer, int kv_dim, int block_size, int n_blocks);

  int block_size() const { return block_size_; }
  int n_blocks() const { return int(ref_count_.size()); }
  int n_free() const { return int(free_.size()); }
  int n_used() const { return n_blocks() - n_free(); }
  int ref_count(int32_t block) const { return ref_count_[size_t(block)]; }

  // Make room for n_new more positions in seq (allocating and copying-on-write as needed).
  // Throws ResourceError when the pool runs out; seq is then unchanged.
  void reserve(KvSeq& seq, int n_new);
  // Blocks reserve(seq, n_new) would allocate now (new blocks plus a copy-on-write copy).
  int blocks_needed(const KvSeq& seq, int n_new) const;
  // A new sequence sharing all of seq's blocks.
  KvSeq fork(const KvSeq& seq);
  // Drop seq's blocks; seq becomes empty.
  void release(KvSeq& seq);
  // One more / one fewer reference to a single block (a prefix cache holding full blocks that
  // sequences share); a block whose count drops to zero is free again.
  void retain(int32_t block) { ++ref_count_[size_t(block)]; }
  void release(int32_t block);

  // Keys and values of one block and layer: (block_size, kv_dim).
  float* k(int32_t block, int layer) { return data_.data() + offset(block, layer, 0); }
  float* v(int32_t block, int layer) { return data_.data() + offset(block, layer, 1); }
  const float* k(int32_t block, int layer) const { return data_.data() + offset(block, layer, 0); }
  const float* v(int32_t block, int layer) const { return data_.data() + offset(block, layer, 1); }

 private:
  size_t offset(int32_t block, int layer, int kv) const {
    return size_t(block) * block_stride_ + (size_t(layer) * 2 + size_t(kv)) * size_t(block_size_) * size_t(kv_dim_);
  }
  int32_t allocate();

  int n_layer_, kv_dim_, block_size_;
  // Floats from one block to the next: the block's (L, 2, block_size, kv_dim) plus one cache line.
  // Without the line a block is a multiple of 64 KiB for common shapes (24 layers x 16 KiB), so
  // the same row of every block falls in the same set of L1 and L2, and attention, which reads
  // that row of each block in turn, evicts its own rows after 12-16 blocks.
  size_t block_stride_;
  std::vector<float> data_;          // (n_blocks, block_stride): (L, 2, block_size, kv_dim) and a line
  std::vector<int32_t> ref_count_;   // (n_blocks)
  std::vector<int32_t> free_;        // free block ids, used as a stack
};

}  // namespace ponder
