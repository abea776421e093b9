// test_vm.cpp — os/vm: aligned reservations, the flip's mremap(DONTUNMAP),
// memfd mappings and hole punching, and the messages of failures.
#include <sys/mman.h>

#include <cstring>

#include "check.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;

TEST(vm_reserve_gib_aligned) {
  const size_t gib = size_t(1) << 30;
  for (size_t n : {size_t(1), size_t(2)}) {
    os::Mapping m;
    Status s = os::reserve_aligned(n * gib, gib, PROT_READ | PROT_WRITE, &m);
    REQUIRE(s.is_ok());
    CHECK_EQ(reinterpret_cast<uintptr_t>(m.data()) % gib, uintptr_t(0));
    CHECK_EQ(m.size(), n * gib);
    // Trimmed on both sides: the byte before and the byte after are not ours.
    CHECK(tu::mapped_in_maps(m.data()));
    CHECK(tu::mapped_in_maps(m.data() + m.size() - 1));
    // MAP_NORESERVE + untouched: no memory; a touch works.
    m.data()[n * gib - 1] = 7;
    CHECK_EQ(m.data()[n * gib - 1], 7);
  }
}

TEST(vm_reserve_rejects_bad_arguments) {
  os::Mapping m;
  Status s = os::reserve_aligned(12345, 4096, PROT_READ, &m);
  CHECK_EQ(s.code, REMAP_EINVAL);
  s = os::reserve_aligned(4096 * 4, 3 * 4096, PROT_READ, &m);
  CHECK_EQ(s.code, REMAP_EINVAL);
  CHECK(!m.valid());
}

TEST(vm_mapping_unmaps_on_destruction) {
  void* addr = nullptr;
  {
    os::Mapping m = tu::anon(4 * tu::ps());
    addr = m.data();
    CHECK(tu::mapped_in_maps(addr));
  }
  CHECK(!tu::mapped_in_maps(addr));
}

TEST(vm_remap_dontunmap_moves_pages_keeps_old_range) {
  const size_t n = 16;
  os::Mapping old_range = tu::anon(n * tu::ps());
  os::Mapping new_range = tu::anon(n * tu::ps());
  tu::fill_pages(old_range.data(), n, 11);
  Status s = os::remap_dontunmap(old_range.data(), n * tu::ps(), new_range.data());
  REQUIRE(s.is_ok());
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_matches(new_range.data() + i * tu::ps(), i, 11));
  // The old range is still mapped (DONTUNMAP) and faults in fresh zero pages.
  CHECK(tu::mapped_in_maps(old_range.data()));
  CHECK(tu::page_is_zero(old_range.data()));
}

TEST(vm_remap_dontunmap_errors_are_classified) {
  os::Mapping a = tu::anon(4 * tu::ps());
  Status s = os::remap_dontunmap(a.data() + 1, tu::ps(), a.data() + 2 * tu::ps());
  CHECK_EQ(s.code, REMAP_EINVAL);
  CHECK(s.message.find("aligned") != std::string::npos);
}

TEST(vm_madvise_unmapped_range_says_so) {
  os::Mapping a = tu::anon(4 * tu::ps());
  char* p = a.data();
  a.reset();
  Status s = os::advise(p, 4 * tu::ps(), os::Advice::dontneed);
  CHECK_EQ(s.code, REMAP_ENOMEM);
  CHECK(s.message.find("MADV_DONTNEED") != std::string::npos);
  CHECK(s.message.find("not mapped") != std::string::npos);
}

TEST(vm_memfd_map_fixed_and_punch_hole) {
  const size_t n = 4, len = n * tu::ps();
  os::UniqueFd fd;
  REQUIRE(os::memfd_create_sized("libremap-test", len, &fd).is_ok());
  os::Mapping view;
  REQUIRE(os::map_file(len, PROT_READ | PROT_WRITE, fd.get(), 0, &view).is_ok());
  tu::fill_pages(view.data(), n, 40);
  // A second view placed over a reserved anonymous range, as the minor and
  // sigsegv backends lay out their heap.
  os::Mapping heap = tu::anon(len);
  REQUIRE(os::map_file_fixed(heap.data(), len, PROT_READ | PROT_WRITE, fd.get(), 0).is_ok());
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_matches(heap.data() + i * tu::ps(), i, 40));
  REQUIRE(os::punch_hole(fd.get(), static_cast<off_t>(tu::ps()), tu::ps()).is_ok());
  CHECK(tu::page_is_zero(view.data() + tu::ps()));
  CHECK(tu::page_is_zero(heap.data() + tu::ps()));
  CHECK(tu::page_matches(heap.data(), 0, 40));
  CHECK(tu::page_matches(heap.data() + 2 * tu::ps(), 2, 40));
}

TEST(vm_mprotect_and_advice_work) {
  os::Mapping a = tu::anon(8 * tu::ps());
  CHECK(os::protect(a.data(), 8 * tu::ps(), PROT_READ).is_ok());
  CHECK(os::protect(a.data(), 8 * tu::ps(), PROT_READ | PROT_WRITE).is_ok());
  for (auto adv : {os::Advice::dontfork, os::Advice::dofork, os::Advice::cold,
                   os::Advice::pageout, os::Advice::dontneed}) {
    Status s = os::advise(a.data(), 8 * tu::ps(), adv);
    CHECK(s.is_ok());
    if (!s) std::printf("  %s\n", s.message.c_str());
  }
}
