// signals.h — the signal calls fault delivery makes (compact/fault_signal.cpp):
// installing its process-wide handler, handing a signal back to the default
// action, and a message to stderr from inside a handler.
#pragma once

#include <signal.h>

#include <cstddef>

#include "base/status.h"

namespace remap::os {

using FaultHandler = void (*)(int sig, siginfo_t* info, void* uctx);

// Installs `handler` for `sig` (SA_SIGINFO | SA_RESTART, nothing blocked
// beyond `sig` itself) and stores the action it replaces in *previous.
Status install_fault_handler(int sig, FaultHandler handler, struct sigaction* previous);

// From inside the handler of `sig`: restores the default action and raises
// `sig` again; it is delivered (and, for a fault, ends the process) as soon
// as the handler returns. Async-signal-safe.
void raise_default(int sig) noexcept;

// Writes `len` bytes of `text` to stderr, ignoring failures.
// Async-signal-safe.
void write_stderr(const char* text, size_t len) noexcept;

}  // namespace remap::os
