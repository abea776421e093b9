// errors_py.h — how a failed libremap call becomes a Python exception.
//
// Binding code calls the C ABI with the GIL released, so it cannot build a
// Python exception on the spot. It throws StatusError (plain C++) instead;
// the translator installed by register_errors turns it into
// libremap._core.RemapError(status, status_name, message) once the GIL is
// back. remap_last_error() is thread-local, so check() must run on the
// thread that made the call (it does: releasing the GIL does not switch
// threads).
#pragma once

#include <stdexcept>
#include <string>

#include "libremap.h"

namespace libremap_py {

class StatusError : public std::runtime_error {
 public:
  StatusError(remap_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  remap_status status() const { return status_; }

 private:
  remap_status status_;
};

// Throws StatusError if s is not REMAP_OK; the message is
// "<what>: <status name>: <remap_last_error()>".
void check(remap_status s, const char* what);

// Throws StatusError(status) with a message of the binding's own (for
// conditions the binding detects, e.g. image() outside IDLE).
[[noreturn]] void raise_status(remap_status s, const std::string& message);

}  // namespace libremap_py
