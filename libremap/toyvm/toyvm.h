// toyvm.h — the toy VM's public face for an embedding program: the VM
// (vm.h), its object layout (object.h), the per-GC records and the pause log
// (stats.h), the workloads with their runner (workloads.h), and the marking
// microbenchmark (mark_bench.h). Everything below it uses only
// libremap.h, as any runtime embedding libremap would.
#pragma once

#include "mark_bench.h"
#include "object.h"
#include "stats.h"
#include "vm.h"
#include "workloads.h"
