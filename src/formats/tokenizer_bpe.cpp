// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe_session: the
// pre-tokenizer cuts the text into words, each word's bytes are mapped to GPT-2's printable
// alphabet, and within a word the adjacent pair with the lowest merge rank is merged until no pair
// has a rank.
#include <queue>

#include "formats/tokenizer.h"
#include "formats/unicode.h"

namespace ponder {

namespace {

struct Symbol {
  int prev = -1, next = -1;
  size_t offset = 0, n = 0;  // bytes of the word; n = 0 once merged into its left neighbour
};

struct Bigram {
  int left = 0, right = 0;
  int32_t rank = 0;
  size_t size = 0;  // bytes of the merged text, to detect a bigram made stale by another merge
};

// Lowest rank first; among equal ranks the leftmost pair (llama.cpp's comparator).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

std::string byte_encode(std::string_view word) {
  std::string out;
  out.reserve(word.size() * 2);
  for (char c : word) out += byte_to_unicode(uint8_t(c));
  return out;
}

}  // namespace

void Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  const Impl& impl = *impl_;
  std::string key;  // "left right", reused for every rank lookup
  for (const std::string& raw_word : impl.pretokenizer->split(text)) {
    const std::string word = byte_encode(raw_word);
    std::vector<Symbol> symbols;
    if (impl.ignore_merges && find_token(word) >= 0) {
      symbols.push_back({.offset = 0, .n = word.size()});
    } else {
      for (size_t off = 0; off < word.size();) {
        const size_t n = std::min(utf8_sequence_length(uint8_t(word[off])), word.size() - off);
        const int index = int(symbols.size());
        symbols.push_back({.prev = index - 1, .next = off + n == word.size() ? -1 : index + 1, .offset = off, .n = n});
        off += n;
      }
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    auto sym_text = [&](int i) { return std::string_view(word).substr(symbols[i].offset, symbols[i].n); };
    auto try_add_bigram = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      key.assign(sym_text(left)).append(" ").append(sym_text(right));
      const auto it = impl.bpe_ranks.find(key);
      if (it == impl.bpe_ranks.end()) return;
      queue.push({.left = left, .right = right, .rank = it->second, .size = symbols[left].n + symbols[right].n});
    };
    for (int i = 1; i < int(symbols.size()); ++i) try_add_bigram(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = symbols[b.left];
      Symbol& right = symbols[b.right];
      // llama.cpp compares the texts; symbols only grow by absorbing their right neighbour, so two
      // live symbols still hold the text they had when the bigram was queued and sizes suffice.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add_bigram(left.prev, b.left);
      try_add_bigram(b.left, left.next);
    }

    for (int i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
      const std::string_view piece = sym_text(i);
      if (const int32_t id = find_token(piece); id >= 0) {
        out.push_back(id);
        continue;
      }
      // Not a token (only when merges and vocabulary disagree): llama.cpp looks each raw byte of
      // the mapped text up as a token and drops the bytes that are not.
      for (char c : piece) {
        if (const int32_t id = find_token(std::string_view(&c, 1)); id >= 0) out.push_back(id);
      }
    }
  }
}

}  // namespace ponder
