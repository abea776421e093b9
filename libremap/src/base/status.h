// status.h — how code reports failure, in every layer.
//
// A function returns remap::Status (a class code from libremap.h plus a
// message) or, where unwinding is the natural shape (constructors), throws
// remap::Error. At the C boundary api/api_call.h turns both into a
// remap_status and stores the message in the thread's last-error slot, which
// lives here so that remap_last_error (api/) and the callers that must keep
// it (api/events.cpp) share one.
#pragma once

#include <cstdarg>
#include <exception>
#include <string>
#include <utility>

#include "libremap.h"

namespace remap {

struct Status {
  remap_status code = REMAP_OK;
  std::string message;

  static Status ok() { return {}; }
  bool is_ok() const { return code == REMAP_OK; }
  explicit operator bool() const { return is_ok(); }
};

// printf-style constructor for a failed Status.
Status fail(remap_status code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

class Error : public std::exception {
 public:
  explicit Error(Status s) : status_(std::move(s)) {}
  const char* what() const noexcept override { return status_.message.c_str(); }
  const Status& status() const { return status_; }

 private:
  Status status_;
};

[[noreturn]] void throw_status(Status s);

// Thread-local last error, read by remap_last_error(): the text stays valid
// until the thread's next failing call.
void set_last_error(remap_status code, const std::string& message);
void clear_last_error();
const char* last_error_text();

// Keeps the calling thread's last error across code that may make library
// calls of its own (a runtime's event callback): restored on destruction.
class LastErrorKeeper {
 public:
  LastErrorKeeper();
  ~LastErrorKeeper();
  LastErrorKeeper(const LastErrorKeeper&) = delete;
  LastErrorKeeper& operator=(const LastErrorKeeper&) = delete;

 private:
  std::string saved_;
};

// Checks a caller's struct_size against what this library understands.
// `min_size` is the size of the first released version of the struct: a
// caller compiled against it (or any later, smaller-or-equal version) works;
// fields beyond the caller's size are treated as defaults.
Status check_struct_size(const char* struct_name, size_t given, size_t min_size, size_t max_size);

}  // namespace remap
