"""Where the package was told libbackprop is installed.

In the source tree LIBDIR is None. `cmake --install` copies the package to
<prefix>/share/backprop/python and rewrites this file there with the library directory of
that installation (e.g. "/usr/local/lib"), so that a package pip-installed from that copy
finds the library of the same installation.
"""

LIBDIR = None
