// to_space.h — what allocation asks the compaction in progress.
#pragma once

#include <cstdint>

namespace remap {

// Implemented by the concurrent engine (compact/compactor.h) while a cycle
// compacts: Heap::acquire_region asks it whether a compacted region's free
// tail is in place yet, so that it hands out tails the GC workers have
// installed and a mutator allocating there does not fault.
class ToSpaceView {
 public:
  // Whether the pages of [from, to) are installed (read without locks; a
  // hint: the answer may turn true right after).
  virtual bool installed(uintptr_t from, uintptr_t to) const noexcept = 0;

 protected:
  ~ToSpaceView() = default;
};

}  // namespace remap
