// The layers of DESIGN.md point one way: every #include "dir/..." in src/<module>/ must name a
// module that <module> may depend on. A sideways or upward include (kernels knowing a file
// format, train knowing the evaluation harness) fails here with the file and the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace ponder {
namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::set<std::string>> kAllowed = {
    {"core", {"core"}},
    {"kernels", {"core", "kernels"}},
    {"formats", {"core", "formats"}},
    {"model", {"core", "kernels", "formats", "model"}},
    {"tasks", {"core", "tasks"}},
    {"decode", {"core", "kernels", "formats", "model", "tasks", "decode"}},
    {"train", {"core", "kernels", "formats", "model", "tasks", "decode", "train"}},
    {"eval", {"core", "kernels", "formats", "model", "tasks", "decode", "eval"}},
    {"server", {"core", "kernels", "formats", "model", "tasks", "decode", "server"}},
};

TEST(Layering, IncludesPointDownOnly) {
  const fs::path src = fs::path(PONDER_SOURCE_DIR) / "src";
  const std::regex include_re(R"re(^\s*#\s*include\s+"([a-z_]+)/)re");
  int n_files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (!entry.is_regular_file()) continue;
    const std::string module = fs::relative(entry.path(), src).begin()->string();
    const auto allowed = kAllowed.find(module);
    if (allowed == kAllowed.end()) continue;  // app may include anything
    ++n_files;
    std::ifstream in(entry.path());
    std::string line;
    for (int lineno = 1; std::getline(in, line); ++lineno) {
      std::smatch m;
      if (std::regex_search(line, m, include_re) && !allowed->second.count(m[1].str()))
        ADD_FAILURE() << fs::relative(entry.path(), src).string() << ":" << lineno << ": " << module
                      << " must not include " << m[1].str() << "/ (" << line << ")";
    }
  }
  EXPECT_GT(n_files, 50);
}

}  // namespace
}  // namespace ponder
