// test_uffd_capi.cpp — the public remap_uffd_* functions of libremap.h: every
// checkable bad argument is REMAP_EINVAL with a message (never a crash), and
// the kernel's answers come back as the documented status codes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "check.h"
#include "libremap.h"
#include "os/vm.h"
#include "test_uffd_util.h"

namespace {

bool last_error_has(const char* needle) {
  return std::strstr(remap_last_error(), needle) != nullptr;
}

remap_uffd* open_or_skip(uint64_t features) {
  remap_uffd* u = nullptr;
  remap_status s = remap_uffd_open(features, 0, &u);
  if (s == REMAP_EPERM || s == REMAP_EUNSUPPORTED)
    SKIP(std::string("no userfaultfd: ") + remap_last_error());
  REQUIRE(s == REMAP_OK);
  REQUIRE(u != nullptr);
  return u;
}

struct Closer {
  remap_uffd* u;
  ~Closer() { remap_uffd_close(u); }
};

}  // namespace

TEST(capi_uffd_open_close_and_accessors) {
  remap_uffd* u = open_or_skip(REMAP_FEATURE_MOVE);
  Closer c{u};
  CHECK(remap_uffd_fd(u) >= 0);
  CHECK(remap_uffd_features(u) & REMAP_FEATURE_MOVE);
  remap_uffd_close(nullptr);
  CHECK_EQ(remap_uffd_fd(nullptr), -1);
  CHECK_EQ(remap_uffd_features(nullptr), uint64_t(0));
}

TEST(capi_uffd_open_rejects_bad_arguments) {
  CHECK_EQ(remap_uffd_open(0, 0, nullptr), REMAP_EINVAL);
  CHECK(last_error_has("out is NULL"));
  remap_uffd* u = reinterpret_cast<remap_uffd*>(0x1);
  CHECK_EQ(remap_uffd_open(0, 0x100, &u), REMAP_EINVAL);
  CHECK(u == nullptr);
  CHECK(last_error_has("flags"));
  // A feature bit no kernel has: refused, not silently dropped.
  CHECK_EQ(remap_uffd_open(uint64_t(1) << 62, 0, &u), REMAP_EUNSUPPORTED);
  CHECK(u == nullptr);
}

TEST(capi_uffd_null_and_misaligned_arguments) {
  remap_uffd* u = open_or_skip(REMAP_FEATURE_MOVE);
  Closer c{u};
  const size_t ps = tu::ps();
  remap::os::Mapping a = tu::anon(4 * ps), b = tu::anon(4 * ps);
  size_t done = 123;
  uint64_t ioctls = 99;

  CHECK_EQ(remap_uffd_register(nullptr, a.data(), ps, REMAP_REGISTER_MISSING, &ioctls),
           REMAP_EINVAL);
  CHECK(last_error_has("uffd is NULL"));
  CHECK_EQ(ioctls, uint64_t(0));
  CHECK_EQ(remap_uffd_register(u, nullptr, ps, REMAP_REGISTER_MISSING, nullptr), REMAP_EINVAL);
  CHECK(last_error_has("addr is NULL"));
  CHECK_EQ(remap_uffd_register(u, a.data() + 1, ps, REMAP_REGISTER_MISSING, nullptr),
           REMAP_EINVAL);
  CHECK(last_error_has("aligned"));
  CHECK_EQ(remap_uffd_register(u, a.data(), 0, REMAP_REGISTER_MISSING, nullptr), REMAP_EINVAL);
  CHECK(last_error_has("len is 0"));
  CHECK_EQ(remap_uffd_register(u, a.data(), ps + 1, REMAP_REGISTER_MISSING, nullptr),
           REMAP_EINVAL);
  CHECK_EQ(remap_uffd_register(u, a.data(), ps, 0, nullptr), REMAP_EINVAL);
  CHECK(last_error_has("mode is 0"));
  CHECK_EQ(remap_uffd_register(u, a.data(), ps, 8, nullptr), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_register(u, reinterpret_cast<void*>(~uintptr_t(0) & ~(ps - 1)), 2 * ps,
                               REMAP_REGISTER_MISSING, nullptr),
           REMAP_EINVAL);
  CHECK(last_error_has("wraps"));

  CHECK_EQ(remap_uffd_move(u, nullptr, b.data(), ps, 0, &done), REMAP_EINVAL);
  CHECK_EQ(done, size_t(0));
  CHECK_EQ(remap_uffd_move(u, a.data(), b.data() + 8, ps, 0, &done), REMAP_EINVAL);
  CHECK(last_error_has("src"));
  CHECK_EQ(remap_uffd_move(u, a.data(), b.data(), ps, 4, &done), REMAP_EINVAL);
  CHECK(last_error_has("mode"));
  CHECK_EQ(remap_uffd_move(u, a.data(), a.data() + ps, 2 * ps, 0, &done), REMAP_EINVAL);
  CHECK(last_error_has("overlaps"));
  CHECK_EQ(remap_uffd_copy(u, a.data(), nullptr, ps, 0, &done), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_copy(u, a.data(), b.data(), ps, 2, &done), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_zeropage(u, a.data(), 0, &done), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_continue(nullptr, a.data(), ps, &done), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_wake(u, a.data() + 3, ps), REMAP_EINVAL);
  CHECK_EQ(remap_uffd_unregister(u, a.data(), 0), REMAP_EINVAL);
}

// The fill functions through the C ABI: status codes and *done.
TEST(capi_uffd_move_statuses_and_done) {
  remap_uffd* u = open_or_skip(REMAP_FEATURE_MOVE);
  Closer c{u};
  const size_t ps = tu::ps(), n = 4;
  remap::os::Mapping src = tu::anon(n * ps), dst = tu::anon(n * ps);
  (void)remap::os::advise(src.data(), src.size(), remap::os::Advice::nohugepage);
  tu::fill_pages(src.data(), n, 33);
  REQUIRE(remap::os::advise(src.data() + 2 * ps, ps, remap::os::Advice::dontneed).is_ok());
  size_t done = 0;
  // Not registered yet: EINVAL from the kernel, with the reason spelled out.
  CHECK_EQ(remap_uffd_move(u, dst.data(), src.data(), ps, 0, &done), REMAP_EINVAL);
  CHECK(last_error_has("registered"));
  uint64_t ioctls = 0;
  REQUIRE(remap_uffd_register(u, dst.data(), dst.size(), REMAP_REGISTER_MISSING, &ioctls) ==
          REMAP_OK);
  CHECK(ioctls & (uint64_t(1) << 5));  // _UFFDIO_MOVE
  CHECK_EQ(remap_uffd_move(u, dst.data(), src.data(), n * ps, 0, &done), REMAP_ENOENT);
  CHECK_EQ(done, 2 * ps);
  CHECK(last_error_has("ALLOW_SRC_HOLES"));
  CHECK_EQ(remap_uffd_move(u, dst.data() + 2 * ps, src.data() + 2 * ps, 2 * ps,
                           REMAP_MOVE_ALLOW_SRC_HOLES, &done),
           REMAP_OK);
  CHECK_EQ(done, 2 * ps);
  CHECK_EQ(std::string(remap_last_error()), std::string());
  CHECK_EQ(remap_uffd_move(u, dst.data(), src.data() + 2 * ps, ps, 0, nullptr), REMAP_EEXIST);
  CHECK(tu::page_matches(dst.data(), 0, 33));
  CHECK(tu::page_matches(dst.data() + 3 * ps, 3, 33));
  CHECK_EQ(remap_uffd_wake(u, dst.data(), dst.size()), REMAP_OK);
  CHECK_EQ(remap_uffd_unregister(u, dst.data(), dst.size()), REMAP_OK);
}

TEST(capi_uffd_copy_zeropage) {
  remap_uffd* u = open_or_skip(0);
  Closer c{u};
  const size_t ps = tu::ps();
  remap::os::Mapping buf = tu::anon(2 * ps), dst = tu::anon(2 * ps);
  tu::fill_pages(buf.data(), 1, 44);
  REQUIRE(remap_uffd_register(u, dst.data(), dst.size(), REMAP_REGISTER_MISSING, nullptr) ==
          REMAP_OK);
  size_t done = 0;
  CHECK_EQ(remap_uffd_copy(u, dst.data(), buf.data(), ps, 0, &done), REMAP_OK);
  CHECK_EQ(done, ps);
  CHECK_EQ(remap_uffd_zeropage(u, dst.data() + ps, ps, &done), REMAP_OK);
  CHECK(tu::page_matches(dst.data(), 0, 44));
  CHECK(tu::page_is_zero(dst.data() + ps));
  CHECK_EQ(remap_uffd_copy(u, dst.data(), buf.data(), 2 * ps, 0, &done), REMAP_EEXIST);
  CHECK_EQ(done, size_t(0));
  // CONTINUE on anonymous memory: the kernel refuses.
  CHECK(remap_uffd_continue(u, dst.data(), ps, &done) != REMAP_OK);
  remap_uffd_unregister(u, dst.data(), dst.size());
}
