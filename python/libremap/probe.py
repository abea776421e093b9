"""The kernel capability probe as a typed object: ``libremap.probe()``."""

from __future__ import annotations

import dataclasses
import errno as _errno
from dataclasses import dataclass
from typing import Any

UFFD_PATHS = {0: "none", 1: "syscall", 2: "dev", 3: "user_mode_only"}
THP_MODES = {0: "unknown", 1: "always", 2: "madvise", 3: "never"}

# Where a missing feature's message says which kernel brought it.
FEATURE_SINCE = {"move": " (Linux 6.8+)"}

# Bit positions of the ioctls in UFFDIO_REGISTER's `ioctls` (the kernel's
# _UFFDIO_* numbers).
UFFD_IOCTLS = {
    "register": 0x00,
    "unregister": 0x01,
    "wake": 0x02,
    "copy": 0x03,
    "zeropage": 0x04,
    "move": 0x05,
    "writeprotect": 0x06,
    "continue": 0x07,
    "poison": 0x08,
    "api": 0x3F,
}


def errno_name(err: int) -> str | None:
    """``"EPERM"`` for 1, ``None`` for 0."""
    if err == 0:
        return None
    return _errno.errorcode.get(err, str(err))


@dataclass(frozen=True)
class ProbeInfo:
    """What this kernel and this process allow (see ``remap_probe_info``)."""

    kernel: str
    uffd_available: bool
    uffd_path: str
    """Best path that opened a userfaultfd: syscall, dev, user_mode_only or none."""
    uffd_status: str
    """full, user_mode_only, denied (EPERM/EACCES), unsupported (ENOSYS) or unavailable."""
    uffd_errno: dict[str, int]
    """errno of each path (syscall, dev, user_mode_only); 0 if it worked or was not tried."""
    features: dict[str, bool]
    features_raw: int
    ioctls: dict[str, bool]
    ioctls_raw: int
    mremap_dontunmap: bool
    thp_mode: str
    max_map_count: int
    unprivileged_userfaultfd: int
    swap_present: bool
    page_size: int
    euid: int
    cap_sys_ptrace: bool
    auto_backend: str
    auto_reason: str

    @property
    def has_move(self) -> bool:
        return self.features.get("move", False)

    def to_json(self) -> dict[str, Any]:
        """The ``python -m libremap probe --json`` object."""
        return {
            "kernel": self.kernel,
            "uffd": {
                "available": self.uffd_available,
                "path": self.uffd_path,
                "status": self.uffd_status,
                "errno": dict(self.uffd_errno),
                "errno_names": {k: errno_name(v) for k, v in self.uffd_errno.items()},
            },
            "features": dict(self.features),
            "features_raw": self.features_raw,
            "ioctls": dict(self.ioctls),
            "ioctls_raw": self.ioctls_raw,
            "mremap_dontunmap": self.mremap_dontunmap,
            "thp_mode": self.thp_mode,
            "max_map_count": self.max_map_count,
            "unprivileged_userfaultfd": self.unprivileged_userfaultfd,
            "swap_present": self.swap_present,
            "page_size": self.page_size,
            "euid": self.euid,
            "cap_sys_ptrace": self.cap_sys_ptrace,
            "auto_backend": self.auto_backend,
            "auto_reason": self.auto_reason,
        }

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _uffd_status(available: bool, path: str, errs: dict[str, int]) -> str:
    if available:
        return "user_mode_only" if path == "user_mode_only" else "full"
    tried = [e for e in errs.values() if e]
    if any(e in (_errno.EPERM, _errno.EACCES) for e in tried):
        return "denied"
    if tried and all(e in (_errno.ENOSYS, _errno.ENOENT) for e in tried):
        return "unsupported"
    return "unavailable"


def feature_names() -> dict[int, str]:
    """Bit -> name of every UFFD_FEATURE bit the library knows."""
    from .cabi import ffi, lib

    names = {}
    for bit in range(64):
        p = lib.remap_uffd_feature_name(bit)
        if p != ffi.NULL:
            names[bit] = ffi.string(p).decode()
    return names


def unoffered_reason(probe: dict[str, Any], backend: str, fault_mode: str) -> str | None:
    """Why this kernel cannot run `backend` with `fault_mode`, from a probe's
    JSON object (ProbeInfo.to_json); None if it can. fault_mode "auto" for
    the backends that take no userfaultfd faults (sigsegv, stw)."""
    from ._names import CAP_UFFD, backend_caps, backend_uffd_features

    uffd = probe["uffd"]["available"]
    features = probe["features"]
    if backend_caps(backend) & CAP_UFFD and not uffd:
        return f"no userfaultfd here ({probe['uffd']['status']}): {backend} needs one"
    needed = backend_uffd_features(backend)
    for bit, name in feature_names().items():
        if needed >> bit & 1 and not features.get(name):
            since = FEATURE_SINCE.get(name, "")
            return f"kernel {probe['kernel']} has no UFFD_FEATURE_{name.upper()}{since}"
    if fault_mode == "sigbus" and not features.get("sigbus"):
        return f"kernel {probe['kernel']} has no UFFD_FEATURE_SIGBUS"
    return None


def probe() -> ProbeInfo:
    """Probe the kernel (``remap_probe``); never fails for lack of userfaultfd."""
    from ._names import BACKEND_NAMES
    from .cabi import ffi, last_error, lib, status_name

    info = ffi.new("remap_probe_info*")
    info.struct_size = ffi.sizeof("remap_probe_info")
    st = lib.remap_probe(info)
    if st != 0:
        raise OSError(f"remap_probe failed: {status_name(st)}: {last_error()}")
    feats = int(info.uffd_features)
    ioctls = int(info.uffd_ioctls)
    path = UFFD_PATHS.get(info.uffd_path, str(info.uffd_path))
    errs = {
        "syscall": int(info.uffd_syscall_errno),
        "dev": int(info.uffd_dev_errno),
        "user_mode_only": int(info.uffd_user_mode_errno),
    }
    return ProbeInfo(
        kernel=ffi.string(info.kernel_release).decode(),
        uffd_available=bool(info.uffd_available),
        uffd_path=path,
        uffd_status=_uffd_status(bool(info.uffd_available), path, errs),
        uffd_errno=errs,
        features={name: bool(feats >> bit & 1) for bit, name in feature_names().items()},
        features_raw=feats,
        ioctls={name: bool(ioctls >> bit & 1) for name, bit in UFFD_IOCTLS.items()},
        ioctls_raw=ioctls,
        mremap_dontunmap=bool(info.mremap_dontunmap),
        thp_mode=THP_MODES.get(info.thp_mode, "unknown"),
        max_map_count=int(info.max_map_count),
        unprivileged_userfaultfd=int(info.unprivileged_userfaultfd),
        swap_present=bool(info.swap_present),
        page_size=int(info.page_size),
        euid=int(info.euid),
        cap_sys_ptrace=bool(info.cap_sys_ptrace),
        auto_backend=BACKEND_NAMES.get(info.auto_backend, str(info.auto_backend)),
        auto_reason=ffi.string(info.auto_reason).decode(),
    )


__all__ = ["ProbeInfo", "errno_name", "feature_names", "probe"]
