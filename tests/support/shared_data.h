#pragma once
// Paths to the shared reference data (../shared relative to the repo root). Tests that need it
// skip with a clear message when it is absent (a user's clone without the data).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <string>

namespace ponder::testing {

inline std::string shared_path(const std::string& rel) {
  return std::string(PONDER_SOURCE_DIR) + "/../shared/" + rel;
}

inline bool have_shared(const std::string& rel) { return std::filesystem::exists(shared_path(rel)); }

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// CI always has ../shared and sets PONDER_REQUIRE_SHARED=1: there a missing file fails the test
// instead of skipping it, so a test that silently stopped checking anything cannot pass.
inline bool shared_is_required() {
  const char* e = std::getenv("PONDER_REQUIRE_SHARED");
  return e != nullptr && std::string(e) == "1";
}

}  // namespace ponder::testing

// Skips (or, with PONDER_REQUIRE_SHARED=1, fails) the test when an absolute path is absent.
#define PONDER_REQUIRE_PATH(path)                                                                     \
  do {                                                                                              \
    if (!std::filesystem::exists(path)) {                                                           \
      if (::ponder::testing::shared_is_required())                                                  \
        FAIL() << "shared reference data not found: " << (path) << " (PONDER_REQUIRE_SHARED=1)";    \
      GTEST_SKIP() << "shared reference data not found: " << (path)                                 \
                   << " (tests that compare against llama.cpp need ../shared)";                     \
    }                                                                                               \
  } while (0)

// The same for a path relative to ../shared.
#define PONDER_REQUIRE_SHARED(rel) PONDER_REQUIRE_PATH(::ponder::testing::shared_path(rel))
