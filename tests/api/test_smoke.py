import libremap
from libremap import _core


def test_version_matches_package():
    v = _core.version()
    assert libremap.__version__ == f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
    assert _core.abi_version() >= 1
