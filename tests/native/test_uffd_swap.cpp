// test_uffd_swap.cpp — pages that are swapped out move without being swapped
// in (use case B of DESIGN.md: slide cold pages without touching them).
//
// Needs root: it creates a 256 MiB swap file under /var/tmp, swapon(2)s it,
// and always swapoff(2)s and deletes it again (RAII here; tests/kernel/test_native.py
// also removes a leftover if this process dies on the watchdog).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "check.h"
#include "os/uffd_ops.h"
#include "os/vm.h"
#include "test_uffd_util.h"

using namespace remap;
using os::UffdErr;

namespace {

class SwapFile {
 public:
  explicit SwapFile(size_t bytes) {
    path_ = "/var/tmp/libremap-native-test-" + std::to_string(::getpid()) + ".swap";
    ::swapoff(path_.c_str());
    ::unlink(path_.c_str());
    int fd = ::open(path_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
      error_ = "cannot create " + path_ + ": " + std::strerror(errno);
      return;
    }
    created_ = true;
    // Written, not fallocate()d: some file systems refuse swap files with
    // unwritten extents ("swapfile has holes").
    static char zeros[1 << 20];
    for (size_t done = 0; done < bytes; done += sizeof zeros) {
      if (::write(fd, zeros, sizeof zeros) != static_cast<ssize_t>(sizeof zeros)) {
        error_ = "cannot write " + path_ + ": " + std::strerror(errno);
        ::close(fd);
        return;
      }
    }
    ::fsync(fd);
    ::close(fd);
    std::string cmd = "mkswap -q '" + path_ + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      error_ = "mkswap failed (is util-linux installed?)";
      return;
    }
    if (::swapon(path_.c_str(), 0) != 0) {
      error_ = "swapon(" + path_ + ") failed: " + std::strerror(errno) +
               " (file system without swap file support, or a container)";
      return;
    }
    active_ = true;
  }
  ~SwapFile() {
    if (active_ && ::swapoff(path_.c_str()) != 0)
      std::printf("  WARNING: swapoff(%s) failed: %s\n", path_.c_str(), std::strerror(errno));
    if (created_) ::unlink(path_.c_str());
  }
  bool active() const { return active_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::string error_;
  bool created_ = false;
  bool active_ = false;
};

}  // namespace

TEST(uffd_move_swapped_out_pages_stay_swapped) {
  if (::geteuid() != 0) SKIP("needs root to swapon a swap file");
  auto uffd = tu::open_uffd();
  const size_t n = 64, len = n * tu::ps();
  os::Mapping src = tu::anon(len), dst = tu::anon(len);
  (void)os::advise(src.data(), len, os::Advice::nohugepage);
  (void)os::advise(dst.data(), len, os::Advice::nohugepage);
  tu::fill_pages(src.data(), n, 110);

  SwapFile swap(size_t(256) << 20);
  if (!swap.active()) SKIP(swap.error());

  // MADV_PAGEOUT (5.4) reclaims the pages now; writeback is asynchronous,
  // so wait until every page table entry is a swap entry.
  bool out = false;
  for (int attempt = 0; attempt < 50 && !out; ++attempt) {
    REQUIRE(os::advise(src.data(), len, os::Advice::pageout).is_ok());
    out = true;
    for (size_t i = 0; i < n; ++i) out = out && tu::pm_swapped(tu::pagemap(src.data() + i * tu::ps()));
    if (!out) ::usleep(20000);
  }
  if (!out) SKIP("MADV_PAGEOUT did not swap the pages out (memory cgroup without swap?)");

  const long swap_before = tu::status_kb("VmSwap");
  CHECK(swap_before >= static_cast<long>(len / 1024));
  tu::Registration reg(uffd.get(), dst.data(), len);
  REQUIRE(reg.ok());
  // A page still under writeback (or a large folio in the swap cache) makes
  // MOVE answer EBUSY: retry from where it stopped until writeback ends.
  size_t done = 0;
  int busy_retries = 0;
  while (done < len) {
    auto r = os::uffd_move(uffd.get(), dst.data() + done, src.data() + done, len - done, 0);
    done += r.done;
    if (r.ok()) break;
    if (r.err == UffdErr::busy && ++busy_retries < 200) {
      ::usleep(10000);
      continue;
    }
    Status st = os::uffd_status("UFFDIO_MOVE", r, dst.data(), len);
    ::check::fail(__FILE__, __LINE__, st.message);
    throw ::check::Abort{};
  }
  if (busy_retries) std::printf("  (EBUSY during writeback: %d retries)\n", busy_retries);
  // Nothing was swapped in: the process still owns the same swap entries...
  CHECK_EQ(tu::status_kb("VmSwap"), swap_before);
  // ...and they sit at the destination now, not present, swap bit set.
  size_t swapped_dst = 0, empty_src = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t d = tu::pagemap(dst.data() + i * tu::ps());
    swapped_dst += tu::pm_swapped(d) && !tu::pm_present(d);
    const uint64_t s = tu::pagemap(src.data() + i * tu::ps());
    empty_src += !tu::pm_swapped(s) && !tu::pm_present(s);
  }
  CHECK_EQ(swapped_dst, n);
  CHECK_EQ(empty_src, n);
  // Reading swaps them in, with the right bytes.
  for (size_t i = 0; i < n; ++i) CHECK(tu::page_matches(dst.data() + i * tu::ps(), i, 110));
}
