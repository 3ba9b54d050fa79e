#pragma once
// Paths to the shared reference data (../shared relative to the repo root). Tests that need it
// skip with a clear message when it is absent (a user's clone without the data).
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

}  // namespace ponder::testing

#define PONDER_REQUIRE_SHARED(rel)                                                              \
  do {                                                                                          \
    if (!::ponder::testing::have_shared(rel))                                                   \
      GTEST_SKIP() << "shared reference data not found: " << ::ponder::testing::shared_path(rel) \
                   << " (tests that compare against llama.cpp need ../shared)";                \
  } while (0)
