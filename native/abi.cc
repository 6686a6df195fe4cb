// The error channel of the C ABI (abi.h / check.h): the last failure's message, per thread.
#include <string>

#include "abi.h"
#include "check.h"

namespace dpo {

namespace {
thread_local std::string tl_error;
}

int SetError(int status, const std::string& msg) {
  tl_error = msg;
  return status;
}

}  // namespace dpo

extern "C" const char* dpo_last_error(void) { return dpo::tl_error.c_str(); }
