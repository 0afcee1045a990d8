#!/usr/bin/env python3
"""make_venv.py VENV PACKAGE COPY -- create a fresh virtual environment that sees the
system's packages (NumPy, setuptools) and pip-install the package directory PACKAGE
(src/python) into it without network access: --no-index (pip never downloads),
--no-build-isolation (setuptools and wheel come from the system, Debian's
python3-setuptools and python3-wheel). pip builds in the directory it is given, so it is
given COPY, a fresh copy of PACKAGE in the build tree: the source tree stays untouched."""

import os
import shutil
import subprocess
import sys

venv, source, package = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(package, ignore_errors=True)
shutil.copytree(source, package, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                               "*.egg-info"))
shutil.rmtree(venv, ignore_errors=True)
subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
python = os.path.join(venv, "bin", "python")
env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
           PIP_NO_CACHE_DIR="1")
subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                "--no-deps", package], check=True, env=env)
print(f"installed {package} into {venv}")
