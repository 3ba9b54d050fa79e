#include "formats/unicode.h"

#include <array>

namespace ponder {

size_t utf8_sequence_length(uint8_t lead) {
  static constexpr uint8_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLength[lead >> 4];
}

namespace {

bool is_continuation(std::string_view s, size_t i) { return i < s.size() && (uint8_t(s[i]) & 0xC0) == 0x80; }

// Decodes one sequence at `pos` the way llama.cpp's unicode_cpt_from_utf8 does; returns false for
// a malformed one. Continuation bytes are checked, code point ranges are not.
bool decode_one(std::string_view s, size_t& pos, uint32_t& cp) {
  const uint8_t b0 = uint8_t(s[pos]);
  auto cont = [&](size_t k) { return uint32_t(uint8_t(s[pos + k]) & 0x3F); };
  if (b0 < 0x80) {
    cp = b0;
    pos += 1;
    return true;
  }
  if ((b0 & 0x40) == 0) return false;  // a continuation byte cannot start a sequence
  if ((b0 & 0x20) == 0) {
    if (!is_continuation(s, pos + 1)) return false;
    cp = (uint32_t(b0 & 0x1F) << 6) | cont(1);
    pos += 2;
    return true;
  }
  if ((b0 & 0x10) == 0) {
    if (!is_continuation(s, pos + 1) || !is_continuation(s, pos + 2)) return false;
    cp = (uint32_t(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    pos += 3;
    return true;
  }
  if ((b0 & 0x08) == 0) {
    if (!is_continuation(s, pos + 1) || !is_continuation(s, pos + 2) || !is_continuation(s, pos + 3)) return false;
    cp = (uint32_t(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    pos += 4;
    return true;
  }
  return false;
}

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> to_byte;  // every code point of the alphabet is below 0x144
};

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
ByteTables make_byte_tables() {
  ByteTables t;
  t.to_byte.fill(-1);
  auto printable = [](int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  uint32_t next_extra = 256;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? uint32_t(b) : next_extra++;
    append_utf8(t.to_unicode[b], cp);
    t.to_byte[cp] = int16_t(b);
  }
  return t;
}

const ByteTables& byte_tables() {
  static const ByteTables tables = make_byte_tables();
  return tables;
}

}  // namespace

std::vector<uint32_t> utf8_to_codepoints(std::string_view text) {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = 0;
    if (!decode_one(text, pos, cp)) {
      cp = kReplacementChar;
      pos += 1;
    }
    cps.push_back(cp <= 0x10FFFF ? cp : kReplacementChar);
  }
  return cps;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

const std::string& byte_to_unicode(uint8_t b) { return byte_tables().to_unicode[b]; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? byte_tables().to_byte[cp] : -1; }

}  // namespace ponder
