// fault_signal.h — fault delivery by signal: SIGBUS (UFFD_FEATURE_SIGBUS) and
// SIGSEGV (the sigsegv backend's PROT_NONE heap).
//
// SIGBUS: with UFFD_FEATURE_SIGBUS the kernel raises SIGBUS (BUS_ADRERR,
// si_addr = the faulting address) in the thread that touched a missing or
// (MINOR-registered) not-yet-mapped page of a registered range, instead of
// queueing a message. The faulting mutator produces its own page inside our
// handler: no context switch, no handler thread (ART measured ~10x lower
// latency).
//
// SIGSEGV: a heap mapped PROT_NONE raises SIGSEGV with SEGV_ACCERR on any
// access; the handler produces the page and mprotect opens it. Only
// SEGV_ACCERR inside a covered heap is ours: SEGV_MAPERR, and any address no
// target covers, go to the previous handler (a crash stays a crash, and
// Python's faulthandler still prints its traceback).
//
// The registry is the library's only global state: per signal, a fixed table
// of active targets read lock-free from the handler and the sigaction that was
// installed before ours. A target leaves a table only after every handler
// that might be using it has returned (per-slot in-flight counts).
//
// A signal at an address no target covers is passed to the previous handler;
// if that was the default, the default action runs. A covered address whose
// page cannot be produced (the kernel refuses the install, an address past
// the heap's capacity) behaves as in thread mode (fault_target.h): the
// target records the failure, the heap is broken (remap_finish returns the
// message, the heap becomes BROKEN), and a zero page is mapped so the thread
// goes on; only when not even that can be mapped is the signal chained,
// since returning would just fault again.
#pragma once

#include "base/status.h"
#include "compact/fault_target.h"

namespace remap {

// Installs the process-wide handler for `sig` (SIGBUS or SIGSEGV) once
// (idempotent, thread-safe) and publishes `target`. REMAP_ELIMIT if the table
// is full, REMAP_EINVAL for another signal.
Status signal_register(int sig, FaultTarget* target);
// Unpublishes `target` from `sig`'s table and waits until no handler is
// using it. The handler stays installed (a late signal must still chain).
void signal_unregister(int sig, FaultTarget* target);

}  // namespace remap
