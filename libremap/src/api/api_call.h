// api_call.h — the one way an extern "C" entry point runs its body.
//
// api_call() runs it, turns a returned Status or a thrown remap::Error (or
// any other exception) into a remap_status, and stores the message, prefixed
// with the entry point's name, in the thread's last-error slot
// (base/status.h). No exception crosses the C boundary.
#pragma once

#include <exception>
#include <new>
#include <string>

#include "base/status.h"

namespace remap {

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

}  // namespace remap
