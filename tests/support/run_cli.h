#pragma once
// Runs the `ponder` binary of this build (PONDER_BINARY_DIR) with a shell argument string and
// returns its exit code, stdout and stderr (through per-process temp files).
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>

#include "support/temp_path.h"

namespace ponder::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline CliResult run_cli(const std::string& args) {
  const std::string out = temp_path("cli_out"), err = temp_path("cli_err");
  const std::string cmd = std::string(PONDER_BINARY_DIR) + "/ponder " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace ponder::testing
