#pragma once
// A temporary file path private to this test process. ctest runs tests in parallel as separate
// processes, so a fixed name in the temp directory would be written by two tests at once.
#include <filesystem>
#include <string>
#include <unistd.h>

namespace ponder::testing {

inline std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("ponder_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

}  // namespace ponder::testing
