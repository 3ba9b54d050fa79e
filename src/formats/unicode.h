#pragma once
// UTF-8 and the GPT-2 byte <-> unicode table, as llama.cpp's unicode.cpp defines them (tokenizers
// must split and map text exactly like the reference, including how they treat malformed bytes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ponder {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Bytes in the UTF-8 sequence that starts with `lead`, judged from its top four bits only
// (a stray continuation byte counts as 1), as llama.cpp's unicode_len_utf8.
size_t utf8_sequence_length(uint8_t lead);

// Code points of `text`. A malformed sequence becomes U+FFFD and decoding resumes at the next
// byte (llama.cpp's rule). Like llama.cpp, overlong forms and surrogates decode to their value;
// unlike it, values above U+10FFFF also become U+FFFD (llama.cpp throws on them later).
std::vector<uint32_t> utf8_to_codepoints(std::string_view text);

// Appends the UTF-8 bytes of `cp` (surrogates included); `cp` must be at most U+10FFFF.
void append_utf8(std::string& out, uint32_t cp);

// GPT-2's byte-level alphabet: every byte maps to a printable code point (space -> U+0120 'Ġ').
// Returns the UTF-8 text of the code point for byte `b`.
const std::string& byte_to_unicode(uint8_t b);
// The byte whose code point is `cp`, or -1 when `cp` is not in the alphabet.
int unicode_to_byte(uint32_t cp);

}  // namespace ponder
