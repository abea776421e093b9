// version_api.cpp — versions, names and the last error: the entry points
// that cannot fail.
#include "base/status.h"

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
  switch (backend) {
    case REMAP_BACKEND_AUTO: return "auto";
    case REMAP_BACKEND_MOVE: return "move";
    case REMAP_BACKEND_COPY: return "copy";
    case REMAP_BACKEND_MINOR: return "minor";
    case REMAP_BACKEND_SIGSEGV: return "sigsegv";
    case REMAP_BACKEND_STW: return "stw";
  }
  return "unknown";
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
