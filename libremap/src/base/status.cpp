// status.cpp — the thread-local last-error slot and Status helpers.
#include "base/status.h"

#include <cstdio>

namespace remap {
namespace {
// One message per thread; remap_last_error() returns a pointer into it that
// stays valid until the thread's next failing call.
thread_local std::string t_last_error;
}  // namespace

Status fail(remap_status code, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return Status{code, buf};
}

void throw_status(Status s) { throw Error(std::move(s)); }

void set_last_error(remap_status, const std::string& message) { t_last_error = message; }
void clear_last_error() { t_last_error.clear(); }
const char* last_error_text() { return t_last_error.c_str(); }

// An empty message is the common case and copies without allocating.
LastErrorKeeper::LastErrorKeeper() : saved_(t_last_error) {}
LastErrorKeeper::~LastErrorKeeper() { t_last_error.swap(saved_); }

Status check_struct_size(const char* struct_name, size_t given, size_t min_size, size_t max_size) {
  if (given < min_size || given > max_size)
    return fail(REMAP_EINVAL,
                "%s.struct_size is %zu; this library accepts %zu..%zu "
                "(set it to sizeof(%s), or call the matching *_init function)",
                struct_name, given, min_size, max_size, struct_name);
  return Status::ok();
}

}  // namespace remap
