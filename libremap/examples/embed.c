/* embed.c — the smallest C program that embeds libremap: check that the
 * library loaded at run time speaks the ABI this program was compiled
 * against, then probe the kernel and print what it offers. */
#include <stdio.h>

#include <libremap.h>

int main(void) {
  if (remap_abi_version() != REMAP_ABI_VERSION) {
    fprintf(stderr, "libremap ABI mismatch: built for %d, loaded %u\n", REMAP_ABI_VERSION,
            remap_abi_version());
    return 2;
  }
  printf("libremap %s (abi %u)\n", remap_version_string(), remap_abi_version());

  remap_probe_info info = {0};
  info.struct_size = sizeof info;
  remap_status st = remap_probe(&info);
  if (st != REMAP_OK) {
    fprintf(stderr, "remap_probe: %s: %s\n", remap_status_name(st), remap_last_error());
    return 1;
  }
  printf("kernel %s\n", info.kernel_release);
  printf("userfaultfd %s (path %d)\n", info.uffd_available ? "available" : "unavailable",
         info.uffd_path);
  printf("move %s\n", (info.uffd_features & REMAP_FEATURE_MOVE) ? "yes" : "no");
  printf("auto_backend %s: %s\n", remap_backend_name(info.auto_backend), info.auto_reason);
  return 0;
}
