#pragma once
// Errors ponder raises for bad input. Library code throws; only the CLI and the server turn these
// into exit codes or HTTP replies. Messages name the file/key/field, the expected and the actual value.
#include <stdexcept>
#include <string>

namespace ponder {

// A file whose bytes do not follow its format (GGUF, JSON data, checkpoints).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A parameter or option outside what the operation accepts (bad flag, impossible setting).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A bounded resource ran out (KV pool blocks, context length).
struct ResourceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ponder
