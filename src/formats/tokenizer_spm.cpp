// SentencePiece-style segmentation (tokenizer.ggml.model = "llama"), as llama.cpp's
// llm_tokenizer_spm: start from single UTF-8 characters, repeatedly merge the adjacent pair whose
// concatenation is the token with the highest score, then write each piece as its token or, when
// the piece is not a token, as the pieces it was merged from, down to byte tokens.
#include <map>
#include <queue>

#include "formats/tokenizer.h"
#include "formats/unicode.h"

namespace ponder {

namespace {

struct Symbol {
  int prev = -1, next = -1;  // neighbours in the linked list of live symbols
  size_t offset = 0, n = 0;  // bytes of the text; n = 0 once merged into its left neighbour
};

struct Bigram {
  int left = 0, right = 0;
  float score = 0;
  size_t size = 0;  // bytes of the merged text, to detect a bigram made stale by another merge
};

// Highest score first; among equal scores the leftmost pair (llama.cpp's comparator).
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<Symbol> symbols;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(utf8_sequence_length(uint8_t(text[off])), text.size() - off);
    const int index = int(symbols.size());
    symbols.push_back({.prev = index - 1, .next = off + n == text.size() ? -1 : index + 1, .offset = off, .n = n});
    off += n;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  // Which two symbols formed each merged text, for splitting pieces that are not tokens.
  std::map<std::string, std::pair<int, int>, std::less<>> merged_from;
  auto try_add_bigram = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string_view merged = text.substr(symbols[left].offset, symbols[left].n + symbols[right].n);
    const int32_t id = find_token(merged);
    if (id < 0) return;
    const float score = vocab_.scores.empty() ? 0.0f : vocab_.scores[id];
    queue.push({.left = left, .right = right, .score = score, .size = merged.size()});
    merged_from.insert_or_assign(std::string(merged), std::pair{left, right});
  };
  for (int i = 1; i < int(symbols.size()); ++i) try_add_bigram(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add_bigram(left.prev, b.left);
    try_add_bigram(b.left, left.next);
  }

  // Writes a piece as its token, else as the two pieces it was merged from, else as bytes.
  auto resegment = [&](auto&& self, const Symbol& s) -> void {
    const std::string_view piece = text.substr(s.offset, s.n);
    if (const int32_t id = find_token(piece); id >= 0) {
      out.push_back(id);
      return;
    }
    if (auto it = merged_from.find(piece); it != merged_from.end()) {
      self(self, symbols[it->second.first]);
      self(self, symbols[it->second.second]);
      return;
    }
    for (char c : piece) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      const uint8_t b = uint8_t(c);
      int32_t id = find_token(std::string{'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'});
      if (id < 0) id = find_token(std::string_view(&c, 1));  // llama.cpp's second choice
      if (id < 0) id = vocab_.unk;  // llama.cpp would throw here; no byte token and no unk: dropped
      if (id >= 0) out.push_back(id);
    }
  };
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) resegment(resegment, symbols[i]);
}

}  // namespace ponder
