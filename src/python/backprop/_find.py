"""Finding the shared library libbackprop, in this order:

1. pkg-config: the directory `pkg-config --variable=libdir backprop` names (honours
   PKG_CONFIG_PATH), e.g. /usr/local/lib after `cmake --install build`;
2. the library directory of the CMake installation the package was copied from
   (backprop._config.LIBDIR, written by `cmake --install`; None in the source tree);
3. the system loader's search: ctypes.util.find_library("backprop") (ldconfig's cache);
4. the environment variable BACKPROP_LIBRARY (a path to libbackprop.so), the last resort.

The first candidate that loads is used; backprop.library_path says which file that was and
backprop.library_source how it was found.
"""

import ctypes
import ctypes.util
import os
import shutil
import subprocess

from . import _config

SONAMES = ("libbackprop.so.0", "libbackprop.so")


def _in_dir(libdir):
    for name in SONAMES:
        path = os.path.join(libdir, name)
        if os.path.exists(path):
            return path
    return None


def pkg_config_libdir():
    """The libdir variable of backprop.pc, or None (no pkg-config, no backprop.pc)."""
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    try:
        p = subprocess.run([exe, "--variable=libdir", "backprop"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = p.stdout.strip()
    return libdir if p.returncode == 0 and libdir else None


def candidates():
    """The (source, path) pairs tried, in order (see the module's documentation)."""
    out = []
    libdir = pkg_config_libdir()
    if libdir and _in_dir(libdir):
        out.append(("pkg-config", _in_dir(libdir)))
    if _config.LIBDIR and _in_dir(_config.LIBDIR):
        out.append(("install prefix", _in_dir(_config.LIBDIR)))
    found = ctypes.util.find_library("backprop")
    if found:
        out.append(("find_library", found))
    env = os.environ.get("BACKPROP_LIBRARY")
    if env:
        out.append(("BACKPROP_LIBRARY", env))
    return out


def load():
    """(ctypes.CDLL, path, source) of the first candidate that loads; ImportError if none."""
    tried = []
    for source, path in candidates():
        try:
            return ctypes.CDLL(path), path, source
        except OSError as e:
            tried.append(f"{source}: {path} ({e})")
    detail = "; ".join(tried) if tried else "no candidate found"
    raise ImportError(
        "backprop: cannot find the shared library libbackprop (" + detail + "). Install it "
        "(cmake --install build) where pkg-config finds it (PKG_CONFIG_PATH), run ldconfig, "
        "or set BACKPROP_LIBRARY to the path of libbackprop.so")
