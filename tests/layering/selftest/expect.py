#!/usr/bin/env python3
"""expect.py -- run check_layering.py on seeded objects and check its verdict.

    python3 expect.py --status N [--match REGEX]... [--no-match REGEX]... -- CHECKER_ARGS...

Passes when the checker exits with status N, its output matches every --match regular
expression (re.MULTILINE) and none of the --no-match ones; otherwise prints why and the
checker's output and exits 1. So a checker that fails for the wrong reason (a missing nm, a
broken floors file: status 2) or reports the wrong modules does not pass the self-test.
"""

import argparse
import os
import re
import subprocess
import sys

CHECKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "check_layering.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", type=int, required=True)
    ap.add_argument("--match", action="append", default=[])
    ap.add_argument("--no-match", action="append", default=[])
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    run = subprocess.run([sys.executable, CHECKER] + args, capture_output=True, text=True,
                         check=False)
    out = run.stdout + run.stderr
    errors = []
    if run.returncode != a.status:
        errors.append(f"exit status {run.returncode}, expected {a.status}")
    errors += [f"output does not match {m!r}" for m in a.match
               if not re.search(m, out, re.MULTILINE)]
    errors += [f"output matches {m!r}" for m in a.no_match if re.search(m, out, re.MULTILINE)]
    print(out, end="")
    if errors:
        for e in errors:
            print(f"expect.py: FAIL: {e}")
        return 1
    print(f"expect.py: ok (status {run.returncode}, {len(a.match)} expected message(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
