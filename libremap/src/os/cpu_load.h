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

}  // namespace remap::os
