// status.h — how errors cross the C boundary.
//
// Internally, code reports failure by returning remap::Status (a class code
// plus a message) or, where unwinding is the natural shape (constructors),
// by throwing remap::Error. Every extern "C" entry point runs its body through
// api_call(), which turns both into a remap_status and stores the message in
// the thread's last-error slot. No exception crosses the boundary.
#pragma once

#include <cstdarg>
#include <exception>
#include <new>
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

// Thread-local last error, read by remap_last_error().
void set_last_error(remap_status code, const std::string& message);
void clear_last_error();

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

// The entry point the calling thread is in (api_call sets it; events name
// it, api/events.h). NULL outside the library.
inline thread_local const char* t_entry_point = nullptr;
struct EntryPoint {
  const char* prev;
  explicit EntryPoint(const char* where) noexcept : prev(t_entry_point) { t_entry_point = where; }
  ~EntryPoint() { t_entry_point = prev; }
};

// Runs fn (returning Status or void) and converts every outcome to a
// remap_status, recording the message for failures.
template <typename Fn>
remap_status api_call(const char* where, Fn&& fn) noexcept {
  EntryPoint entry(where);
  try {
    clear_last_error();
    Status s = fn();
    if (!s.is_ok()) set_last_error(s.code, std::string(where) + ": " + s.message);
    return s.code;
  } catch (const Error& e) {
    set_last_error(e.status().code, std::string(where) + ": " + e.status().message);
    return e.status().code;
  } catch (const std::bad_alloc&) {
    set_last_error(REMAP_ENOMEM, std::string(where) +
                                     ": out of memory (an allocation failed: free memory, or "
                                     "raise RLIMIT_AS or RLIMIT_DATA)");
    return REMAP_ENOMEM;
  } catch (const std::exception& e) {
    set_last_error(REMAP_EINTERNAL, std::string(where) + ": internal error: " + e.what());
    return REMAP_EINTERNAL;
  } catch (...) {
    set_last_error(REMAP_EINTERNAL, std::string(where) + ": internal error (unknown exception)");
    return REMAP_EINTERNAL;
  }
}

// Checks a caller's struct_size against what this library understands.
// `min_size` is the size of the first released version of the struct: a
// caller compiled against it (or any later, smaller-or-equal version) works;
// fields beyond the caller's size are treated as defaults.
Status check_struct_size(const char* struct_name, size_t given, size_t min_size, size_t max_size);

}  // namespace remap
