// probe_api.cpp — remap_probe and remap_uffd_feature_name.
#include <cstring>

#include "api/api_call.h"
#include "os/probe.h"

extern "C" {

REMAP_API remap_status remap_probe(remap_probe_info* out) {
  return remap::api_call("remap_probe", [&]() -> remap::Status {
    if (!out) return remap::fail(REMAP_EINVAL, "out is NULL");
    // The first released remap_probe_info is this one; later versions only
    // append fields, and a smaller caller struct gets the prefix it knows.
    remap::Status s = remap::check_struct_size("remap_probe_info", out->struct_size,
                                               sizeof(remap_probe_info), sizeof(remap_probe_info));
    if (!s) return s;
    size_t caller_size = out->struct_size;
    remap_probe_info info;
    remap::os::probe_kernel(&info);
    std::memcpy(out, &info, caller_size);
    out->struct_size = caller_size;
    return remap::Status::ok();
  });
}

REMAP_API const char* remap_uffd_feature_name(unsigned bit) {
  return remap::os::uffd_feature_name(bit);
}

}  // extern "C"
