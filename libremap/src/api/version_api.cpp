// version_api.cpp — versions, names and the last error: the entry points
// that cannot fail.
#include "base/status.h"
#include "compact/backend.h"

extern "C" {

REMAP_API const char* remap_last_error(void) { return remap::last_error_text(); }

REMAP_API uint32_t remap_version(void) {
  return (uint32_t(REMAP_VERSION_MAJOR) << 16) | (uint32_t(REMAP_VERSION_MINOR) << 8) |
         uint32_t(REMAP_VERSION_PATCH);
}

REMAP_API const char* remap_version_string(void) { return LIBREMAP_VERSION_STRING; }

REMAP_API uint32_t remap_abi_version(void) { return REMAP_ABI_VERSION; }

REMAP_API const char* remap_status_name(remap_status status) {
  switch (status) {
    case REMAP_OK: return "REMAP_OK";
    case REMAP_EINVAL: return "REMAP_EINVAL";
    case REMAP_EUNSUPPORTED: return "REMAP_EUNSUPPORTED";
    case REMAP_EPERM: return "REMAP_EPERM";
    case REMAP_ENOMEM: return "REMAP_ENOMEM";
    case REMAP_EPHASE: return "REMAP_EPHASE";
    case REMAP_EKERNEL: return "REMAP_EKERNEL";
    case REMAP_EBUSY: return "REMAP_EBUSY";
    case REMAP_EEXIST: return "REMAP_EEXIST";
    case REMAP_ENOENT: return "REMAP_ENOENT";
    case REMAP_EAGAIN: return "REMAP_EAGAIN";
    case REMAP_ELIMIT: return "REMAP_ELIMIT";
    case REMAP_EOBJMODEL: return "REMAP_EOBJMODEL";
    case REMAP_EINTERNAL: return "REMAP_EINTERNAL";
  }
  return "REMAP_UNKNOWN_STATUS";
}

REMAP_API const char* remap_backend_name(int backend) {
  const remap::BackendKind* b = remap::find_backend(backend);
  return b ? b->name : "unknown";
}

REMAP_API int remap_backend_count(void) { return remap::backend_count(); }

REMAP_API uint32_t remap_backend_caps(int backend) {
  const remap::BackendKind* b = remap::find_backend(backend);
  if (!b || backend == REMAP_BACKEND_AUTO) return 0;
  uint32_t caps = 0;
  if (b->concurrent()) caps |= REMAP_BACKEND_CAP_CONCURRENT;
  if (b->uses_uffd()) caps |= REMAP_BACKEND_CAP_UFFD;
  if (!b->shared_layout) caps |= REMAP_BACKEND_CAP_CYCLE_BEGIN;  // see remap_cycle_begin
  if (b->shared_layout) caps |= REMAP_BACKEND_CAP_SHARED_HEAP;
  return caps;
}

REMAP_API uint64_t remap_backend_uffd_features(int backend) {
  const remap::BackendKind* b = remap::find_backend(backend);
  return b ? b->uffd_features : 0;
}

REMAP_API const char* remap_fault_mode_name(int fault_mode) {
  switch (fault_mode) {
    case REMAP_FAULT_AUTO: return "auto";
    case REMAP_FAULT_SIGBUS: return "sigbus";
    case REMAP_FAULT_THREAD: return "thread";
  }
  return "unknown";
}

}  // extern "C"
