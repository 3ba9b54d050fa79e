#pragma once
// Table tests of an options struct's validate(): each case breaks one field of a valid base and
// expects an InvalidArgument whose message names the flag, the allowed range and the value given.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "core/error.h"

namespace ponder::testing {

template <typename Options>
struct OptionCase {
  void (*set)(Options&);
  const char* flag;
  const char* range;
  const char* value;
};

template <typename Options>
void expect_option_errors(const Options& base, std::initializer_list<OptionCase<Options>> cases) {
  for (const OptionCase<Options>& c : cases) {
    Options o = base;
    c.set(o);
    try {
      o.validate();
      ADD_FAILURE() << c.flag << " " << c.value << " was accepted";
    } catch (const InvalidArgument& e) {
      const std::string m = e.what();
      for (const char* part : {c.flag, c.range, c.value}) EXPECT_NE(m.find(part), std::string::npos) << m;
    }
  }
  EXPECT_NO_THROW(base.validate());
}

}  // namespace ponder::testing
