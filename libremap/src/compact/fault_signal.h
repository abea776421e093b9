// fault_sigbus.h — SIGBUS fault delivery (UFFD_FEATURE_SIGBUS).
//
// With UFFD_FEATURE_SIGBUS the kernel raises SIGBUS (BUS_ADRERR, si_addr =
// the faulting address) in the thread that touched a missing page of a
// registered range, instead of queueing a message. The faulting mutator then
// produces its own page inside our handler: no context switch, no handler
// thread (ART measured ~10x lower latency).
//
// The registry is the library's only global state: a fixed table of active
// targets, read lock-free from the handler. A target leaves the table only
// after every handler that might be using it has returned (per-slot
// in-flight counts). Signals for addresses no target covers go to the
// handler that was installed before ours; if that was the default, the
// default action runs.
#pragma once

#include "api/status.h"
#include "compact/fault_target.h"

namespace remap {

// Installs the process-wide handler once (idempotent, thread-safe) and
// publishes `target`. Fails with REMAP_ELIMIT if the table is full.
Status sigbus_register(FaultTarget* target);
// Unpublishes `target` and waits until no handler is using it.
void sigbus_unregister(FaultTarget* target);

}  // namespace remap
