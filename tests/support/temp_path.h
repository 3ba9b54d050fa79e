#pragma once
// A temporary file path private to this test process. ctest runs tests in parallel as separate
// processes, so a fixed name in the temp directory would be written by two tests at once. The
// folder is removed when the process exits.
#include <filesystem>
#include <string>
#include <system_error>
#include <unistd.h>

namespace ponder::testing {

struct ProcessTempDir {
  std::filesystem::path path;
  ProcessTempDir()
      : path(std::filesystem::temp_directory_path() / ("ponder_test_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(path);
  }
  ~ProcessTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::string temp_path(const std::string& name) {
  static const ProcessTempDir dir;
  return (dir.path / name).string();
}

}  // namespace ponder::testing
