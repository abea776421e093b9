"""A seccomp filter that denies userfaultfd, as code for a child interpreter.

userfaultfd(2) and ioctl(USERFAULTFD_IOC_NEW) fail with `errno_value`, as a
container runtime's profile makes them (x86-64 numbers). Opening
/dev/userfaultfd itself cannot be filtered by path in seccomp; denying its
one ioctl closes that path all the same (deny_dev=False leaves it open).
The child installs the filter with ctypes before anything else runs, and
exits with a message if the kernel refuses it."""

from __future__ import annotations

_PRELUDE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]
LD_ABS_W, JEQ, RET = 0x20, 0x15, 0x06
AUDIT_ARCH_X86_64, NR_USERFAULTFD, NR_IOCTL = 0xC000003E, 323, 16
ALLOW, DENY = 0x7FFF0000, 0x00050000 | {errno}
prog = [
    (LD_ABS_W, 0, 0, 4),                 # arch
    (JEQ, 0, 5, AUDIT_ARCH_X86_64),      # other arch -> allow
    (LD_ABS_W, 0, 0, 0),                 # nr
    (JEQ, 4, 0, NR_USERFAULTFD),         # -> deny
    (JEQ, 0, 2, NR_IOCTL),               # not ioctl -> allow
    (LD_ABS_W, 0, 0, 24),                # low half of args[1]
    (JEQ, 1, 0, {ioc_new}),              # USERFAULTFD_IOC_NEW -> deny
    (RET, 0, 0, ALLOW),
    (RET, 0, 0, DENY),
]
arr = (SockFilter * len(prog))(*[SockFilter(*i) for i in prog])
fprog = SockFprog(len(prog), arr)
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit("prctl: errno %d" % ctypes.get_errno())
if libc.syscall(317, 1, 0, ctypes.byref(fprog)) != 0:  # seccomp(SET_MODE_FILTER)
    sys.exit("seccomp: errno %d" % ctypes.get_errno())
"""


def deny_userfaultfd(errno_value: int, deny_dev: bool = True) -> str:
    """Python source that installs the filter; append the child's own code."""
    # 0xAA00: USERFAULTFD_IOC_NEW; no ioctl request is all ones.
    ioc_new = "0xAA00" if deny_dev else "0xFFFFFFFF"
    return _PRELUDE.replace("{errno}", str(errno_value)).replace("{ioc_new}", ioc_new)
