// test_uffd_fill.cpp — COPY, ZEROPAGE, CONTINUE, WAKE and registration, through
// os/uffd_ops: the install paths of the copy and minor backends.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "check.h"
#include "os/uffd_ops.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;
using os::UffdErr;

TEST(uffd_copy_basics_and_eexist) {
  auto uffd = tu::open_uffd(0);
  const size_t n = 8;
  os::Mapping buf = tu::anon(n * tu::ps()), dst = tu::anon(n * tu::ps());
  tu::fill_pages(buf.data(), n, 80);
  tu::Registration reg(uffd.get(), dst.data(), dst.size());
  REQUIRE(reg.ok());
  auto r = os::uffd_copy(uffd.get(), dst.data(), buf.data(), n * tu::ps(), 0);
  CHECK(r.ok());
  CHECK_EQ(r.done, n * tu::ps());
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_matches(dst.data() + i * tu::ps(), i, 80));
  // COPY leaves its source alone (unlike MOVE).
  CHECK(tu::page_matches(buf.data(), 0, 80));
  r = os::uffd_copy(uffd.get(), dst.data() + tu::ps(), buf.data(), tu::ps(), 0);
  CHECK(r.err == UffdErr::exists);
  CHECK_EQ(r.done, size_t(0));
}

TEST(uffd_copy_stops_at_mapped_page_with_progress) {
  auto uffd = tu::open_uffd(0);
  const size_t n = 6;
  os::Mapping buf = tu::anon(n * tu::ps()), dst = tu::anon(n * tu::ps());
  tu::fill_pages(buf.data(), n, 90);
  tu::Registration reg(uffd.get(), dst.data(), dst.size());
  REQUIRE(reg.ok());
  REQUIRE(os::uffd_copy(uffd.get(), dst.data() + 4 * tu::ps(), buf.data(), tu::ps(), 0).ok());
  auto r = os::uffd_copy(uffd.get(), dst.data(), buf.data(), n * tu::ps(), 0);
  CHECK(r.err == UffdErr::exists);
  CHECK_EQ(r.done, 4 * tu::ps());
  for (size_t i = 0; i < 4; ++i) CHECK(tu::page_matches(dst.data() + i * tu::ps(), i, 90));
}

TEST(uffd_zeropage_basics) {
  auto uffd = tu::open_uffd(0);
  const size_t n = 4;
  os::Mapping dst = tu::anon(n * tu::ps());
  tu::Registration reg(uffd.get(), dst.data(), dst.size());
  REQUIRE(reg.ok());
  auto r = os::uffd_zeropage(uffd.get(), dst.data(), n * tu::ps(), 0);
  CHECK(r.ok());
  CHECK_EQ(r.done, n * tu::ps());
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_is_zero(dst.data() + i * tu::ps()));
  // The zero page is mapped read-only: a write COWs it without a uffd fault.
  dst.data()[0] = 1;
  CHECK_EQ(dst.data()[0], 1);
  r = os::uffd_zeropage(uffd.get(), dst.data(), tu::ps(), 0);
  CHECK(r.err == UffdErr::exists);
}

// Unlike MOVE (EINVAL), the mfill ioctls answer ENOENT when the destination
// is not in a VMA registered with this uffd (mm/userfaultfd.c looks the VMA
// up and returns -ENOENT when it is missing or not ours).
TEST(uffd_copy_into_unregistered_is_enoent) {
  auto uffd = tu::open_uffd(0);
  os::Mapping buf = tu::anon(tu::ps()), dst = tu::anon(tu::ps());
  auto r = os::uffd_copy(uffd.get(), dst.data(), buf.data(), tu::ps(), 0);
  CHECK(r.err == UffdErr::hole);
  CHECK_EQ(r.sys_errno, ENOENT);
  CHECK_EQ(r.done, size_t(0));
  Status st = os::uffd_status("UFFDIO_COPY", r, dst.data(), tu::ps());
  CHECK_EQ(st.code, REMAP_ENOENT);
  CHECK(st.message.find("register") != std::string::npos);
  r = os::uffd_zeropage(uffd.get(), dst.data(), tu::ps(), 0);
  CHECK(r.err == UffdErr::hole);
}

// MINOR on shmem: the page is already in the page cache (written through a
// second mapping); CONTINUE maps it at the registered address, and both views
// then share it.
TEST(uffd_continue_maps_page_cache_page) {
  auto uffd = tu::open_uffd(UFFD_FEATURE_MINOR_SHMEM);
  REQUIRE(uffd.features & UFFD_FEATURE_MINOR_SHMEM);
  const size_t n = 4, len = n * tu::ps();
  os::UniqueFd fd;
  REQUIRE(os::memfd_create_sized("libremap-minor", len, &fd).is_ok());
  os::Mapping alias, heap;
  REQUIRE(os::map_file(len, PROT_READ | PROT_WRITE, fd.get(), 0, &alias).is_ok());
  REQUIRE(os::map_file(len, PROT_READ | PROT_WRITE, fd.get(), 0, &heap).is_ok());
  tu::fill_pages(alias.data(), n, 100);
  tu::Registration reg(uffd.get(), heap.data(), len, UFFDIO_REGISTER_MODE_MINOR);
  REQUIRE(reg.ok());
  CHECK(reg.ioctls() & (uint64_t(1) << _UFFDIO_CONTINUE));
  CHECK(!tu::pm_present(tu::pagemap(heap.data())));
  auto r = os::uffd_continue(uffd.get(), heap.data(), len, 0);
  CHECK(r.ok());
  CHECK_EQ(r.done, len);
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_matches(heap.data() + i * tu::ps(), i, 100));
  heap.data()[0] = 42;
  CHECK_EQ(alias.data()[0], 42);
  r = os::uffd_continue(uffd.get(), heap.data(), tu::ps(), 0);
  CHECK(r.err == UffdErr::exists);
}

// MINOR registration needs shmem/hugetlb; anonymous memory is refused.
TEST(uffd_minor_on_anonymous_is_einval) {
  auto uffd = tu::open_uffd(UFFD_FEATURE_MINOR_SHMEM);
  os::Mapping a = tu::anon(2 * tu::ps());
  tu::Registration reg(uffd.get(), a.data(), a.size(), UFFDIO_REGISTER_MODE_MINOR);
  CHECK(!reg.ok());
  CHECK(reg.result().err == UffdErr::invalid);
  Status st = os::uffd_status("UFFDIO_REGISTER", reg.result(), a.data(), a.size());
  CHECK_EQ(st.code, REMAP_EINVAL);
  CHECK(st.message.find("MINOR") != std::string::npos);
}

// Registering a range twice with two uffds: EBUSY.
TEST(uffd_register_twice_is_ebusy) {
  auto a = tu::open_uffd(0), b = tu::open_uffd(0);
  os::Mapping m = tu::anon(2 * tu::ps());
  tu::Registration ra(a.get(), m.data(), m.size());
  REQUIRE(ra.ok());
  CHECK_EQ(ra.result().done, m.size());
  tu::Registration rb(b.get(), m.data(), m.size());
  CHECK(rb.result().err == UffdErr::busy);
  Status st = os::uffd_status("UFFDIO_REGISTER", rb.result(), m.data(), m.size());
  CHECK_EQ(st.code, REMAP_EBUSY);
  CHECK(st.message.find("another userfaultfd") != std::string::npos);
}

TEST(uffd_wake_and_bad_fd) {
  auto uffd = tu::open_uffd(0);
  os::Mapping m = tu::anon(2 * tu::ps());
  tu::Registration reg(uffd.get(), m.data(), m.size());
  REQUIRE(reg.ok());
  CHECK(os::uffd_wake(uffd.get(), m.data(), m.size()).ok());
  auto r = os::uffd_wake(-1, m.data(), m.size());
  CHECK(r.err == UffdErr::other);
  CHECK_EQ(r.sys_errno, EBADF);
  CHECK_EQ(os::uffd_status("UFFDIO_WAKE", r, m.data(), m.size()).code, REMAP_EINVAL);
}
