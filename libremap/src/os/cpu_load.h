// cpu_load.h — is a CPU free right now? GC helper threads (Compactor::run)
// ask before each claim: a helper beside running mutators does not add a
// CPU, it takes one of theirs.
#pragma once

namespace remap::os {

// Threads runnable on the whole machine at this instant: the numerator of
// /proc/loadavg's fourth field ("2/345"), which counts the calling thread.
// -1 if the file cannot be read (a container hiding /proc): callers then
// assume a free CPU, as before this check existed.
int runnable_threads() noexcept;

// CPUs this process may run on (its affinity mask, which taskset and
// cpusets narrow); at least 1.
int usable_cpus() noexcept;

// CPUs online on the machine; at least 1.
int online_cpus() noexcept;

// How many runnable threads the machine's CPUs take before a GC helper
// should wait (Compactor::helper_may_claim): the online CPUs, when this
// process may use them all; 0 (never wait) when its affinity is narrower,
// since /proc/loadavg counts every CPU and cannot say whether this
// process's own are busy.
int helper_cpu_budget() noexcept;

}  // namespace remap::os
