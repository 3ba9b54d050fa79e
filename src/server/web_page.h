#pragma once
// The chat page `ponder serve` answers at GET /: one self-contained HTML file (no CDN, no build
// step) that talks to /v1/chat/completions: streamed answers with the reasoning collapsible above
// them, a strategy picker (greedy, sample n, beam, best-of, vote with its width), several paths
// side by side with their scores, and the vote table.
#include <string>

namespace ponder::server {

const std::string& web_page();

}  // namespace ponder::server
