// anon_layout.h — the layout of the move and copy backends (see layout.h).
#pragma once

#include <memory>

#include "compact/backend.h"
#include "compact/layout.h"
#include "heap/heap.h"
#include "os/vm.h"

namespace remap {

// `uffd` and `backend` must outlive the layout.
Status make_anon_layout(Heap& heap, int uffd, Backend& backend, std::unique_ptr<Layout>* out);

}  // namespace remap
