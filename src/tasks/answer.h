#pragma once
// Final answers of reasoning completions: extraction (for answer voting and task rewards) and a
// canonical form for comparing them.
//
// extract_answer looks, in this order, for:
//  1. the last complete "<answer>...</answer>" block (R1-Zero format). A trailing unclosed "<answer>"
//     is ignored. The block decides: its "\boxed{...}" content if it holds one, else its trimmed
//     text; an empty block gives nullopt (no fallback to numbers elsewhere).
//  2. the last "\boxed{...}" with balanced braces (\boxed{\frac{1}{2}} -> "\frac{1}{2}"), or the
//     LaTeX short form "\boxed 5": "\boxed", spaces, then the characters up to the next whitespace
//     or '$'. Unclosed or empty boxes are skipped in favour of an earlier one.
//  3. the last number: optional '-', digits with optional thousands groups (1,234 -> "1234"),
//     optional ".digits" (".5" allowed). A number touching ASCII letters, digits, '_' or '.' on
//     either side is part of a word or version and is skipped ("x2", "2x", "v1.2.3", "3rd");
//     so is scientific notation ("1e5"). A minus sign right after a letter or digit is an operator:
//     "3-5" gives "5". Trailing zeros are kept ("3.50"); normalize_answer canonicalizes.
//  4. otherwise nullopt.
// The result is trimmed of surrounding whitespace.
#include <optional>
#include <string>
#include <string_view>

namespace ponder {

std::optional<std::string> extract_answer(std::string_view text);
// Step 2 alone: the content of the last usable "\boxed" in text, nullopt when there is none.
std::optional<std::string> boxed_answer(std::string_view text);

// Canonical form for comparing answers in a vote: trim, drop surrounding '$' and one trailing
// period, remove all whitespace; then, if the whole text is a decimal number (optional sign,
// optional 3-digit comma groups, optional fraction), print it canonically: "42.0" -> "42",
// "-0" -> "0", "+5" -> "5", "1,234" -> "1234", "3.50" -> "3.5", "007" -> "7", ".5" -> "0.5".
// Exact (string arithmetic, no rounding). Anything else, including scientific notation ("1e5")
// and fractions ("1/2"), stays text.
std::string normalize_answer(std::string_view answer);

}  // namespace ponder
