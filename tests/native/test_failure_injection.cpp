// test_failure_injection.cpp — the test-only hook of os/failure_injection.h:
// off unless armed, the n-th call of the chosen site fails `times` times in
// a row with the chosen errno (as the kernel would: nothing done), other
// sites untouched, and a malformed variable disarms.
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "check.h"
#include "os/failure_injection.h"
#include "os/uffd_ops.h"
#include "os/vm.h"

namespace {

using namespace remap::os;

void arm(const char* spec) {
  if (spec) setenv("LIBREMAP_INJECT_FAILURE", spec, 1);
  else unsetenv("LIBREMAP_INJECT_FAILURE");
  inject_arm_from_env();
}

}  // namespace

TEST(failure_injection_off_by_default) {
  arm(nullptr);
  for (int i = 0; i < 100; i++) CHECK_EQ(injected_failure(InjectSite::uffd_move), 0);
}

TEST(failure_injection_nth_call_times) {
  arm("madvise:3:ENOMEM:2");
  int got[6];
  for (int& g : got) g = injected_failure(InjectSite::madvise);
  CHECK_EQ(got[0], 0);
  CHECK_EQ(got[1], 0);
  CHECK_EQ(got[2], ENOMEM);
  CHECK_EQ(got[3], ENOMEM);
  CHECK_EQ(got[4], 0);
  CHECK_EQ(injected_failure(InjectSite::mremap), 0);  // another site counts apart
  arm("uffd_wake:1:ESRCH:0");  // 0: every call from nth on
  for (int i = 0; i < 5; i++) CHECK_EQ(injected_failure(InjectSite::uffd_wake), ESRCH);
  arm(nullptr);
}

TEST(failure_injection_reaches_the_wrappers) {
  remap::os::Mapping m;
  CHECK(remap::os::map_anonymous(4 * remap::os::page_size(), &m).is_ok());
  arm("madvise:1:EINVAL");
  remap::Status s = remap::os::advise(m.addr(), m.size(), remap::os::Advice::dontneed);
  CHECK(!s.is_ok());
  CHECK_EQ(int(s.code), int(REMAP_EINVAL));
  CHECK(remap::os::advise(m.addr(), m.size(), remap::os::Advice::dontneed).is_ok());  // once
  // A fill ioctl: the EAGAIN retry (uffd_ops.cpp) absorbs a few, then
  // reports the class; the fd is never reached (-1 would be EBADF).
  arm("uffd_copy:1:EAGAIN:0");
  UffdResult r = uffd_copy(-1, m.addr(), m.data(), m.size(), 0);
  CHECK(r.err == UffdErr::again);
  CHECK_EQ(r.done, size_t(0));
  arm("uffd_copy:1:EAGAIN:3");
  r = uffd_copy(-1, m.addr(), m.data(), m.size(), 0);
  CHECK_EQ(r.sys_errno, EBADF);  // retried past the three, then the real call
  arm(nullptr);
}

TEST(failure_injection_malformed_disarms) {
  for (const char* bad : {"madvise", "madvise:0:EINVAL", "nosuch:1:EINVAL", "madvise:1:EWHAT",
                          "madvise:1:EINVAL:x", "madvise:1:EINVAL:1:9"}) {
    arm(bad);
    for (int i = 0; i < 3; i++) CHECK_EQ(injected_failure(InjectSite::madvise), 0);
  }
  arm(nullptr);
}
