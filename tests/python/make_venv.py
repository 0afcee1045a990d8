#!/usr/bin/env python3
"""make_venv.py VENV PACKAGE -- create a fresh virtual environment that sees the system's
packages (NumPy, setuptools) and pip-install the package directory PACKAGE into it without
network access: --no-index (pip never downloads), --no-build-isolation (setuptools and
wheel come from the system, Debian's python3-setuptools and python3-wheel)."""

import os
import shutil
import subprocess
import sys

venv, package = sys.argv[1], sys.argv[2]
shutil.rmtree(venv, ignore_errors=True)
subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
python = os.path.join(venv, "bin", "python")
env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
           PIP_NO_CACHE_DIR="1")
subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                "--no-deps", package], check=True, env=env)
print(f"installed {package} into {venv}")
