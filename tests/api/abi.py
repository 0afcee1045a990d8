#!/usr/bin/env python3
"""abi.py -- record and check the ABI of libbackprop.so with libabigail (abidw, abidiff).

    python3 abi.py write --lib build/test/libbackprop.so --headers include --dir docs/abi
    python3 abi.py check --lib build/test/libbackprop.so --headers include --dir docs/abi

The library must be built with debug information (-g; the `test` preset's RelWithDebInfo
does), or abidw sees only symbol names. Both modes describe the library with the same abidw
options: public headers only (--headers-dir, with private types dropped, so the layout of the
opaque handles' structs is not part of the ABI), no paths, locations or DT_NEEDED entries
(they differ between machines and build options without changing the ABI).

`write` stores the description as DIR/<SONAME>.abi (e.g. libbackprop.so.0.abi).
`check` compares DIR/<SONAME>.abi with the fresh library (abidiff's exit status is a bit
set: 1 error, 2 usage error, 4 ABI change, 8 incompatible ABI change):
  - no change, or additions only (functions or variables added): passes, listing them;
  - anything else fails, printing abidiff's report: bit 8 (abidiff's "incompatible", e.g.
    a function removed), and also a bit-4 report with removed or changed functions or
    variables. libabigail rates a changed parameter or return type (float -> double) as a
    mere "ABI change" (4); for a C library of opaque handles any change to an existing
    function's types breaks callers, so it fails here too. Private types are dropped, so
    the layout of the handles' structs never counts;
  - the enumerators recorded in DIR/<SONAME>.enums (all enum values of the header, which
    travel as int and so are invisible to abidiff) must keep their values: one removed or
    renumbered fails, new ones pass;
  - no baseline for the library's SONAME, but one for an older SONAME: the major version
    was bumped, so incompatible changes are allowed; passes with a reminder to record the
    new baseline at the release.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bp_header  # noqa: E402

ABIDW_OPTIONS = ["--no-corpus-path", "--no-comp-dir-path", "--no-show-locs", "--no-elf-needed",
                 "--drop-private-types", "--type-id-style", "hash"]

ABIDIFF_ERROR, ABIDIFF_USAGE_ERROR = 1, 2
ABIDIFF_ABI_CHANGE, ABIDIFF_ABI_INCOMPATIBLE_CHANGE = 4, 8


def tool(name, given):
    path = given or shutil.which(name)
    if not path:
        raise SystemExit(f"abi: {name} not found (Debian: apt-get install abigail-tools)")
    return path


def describe(abidw, lib, headers, out):
    subprocess.run([abidw, "--headers-dir", headers, *ABIDW_OPTIONS, "--out-file", out, lib],
                   check=True)
    # Translation-unit paths relative to the source tree: the file must not depend on where
    # the tree was checked out.
    root = os.path.dirname(os.path.abspath(headers)) + os.sep
    with open(out, encoding="utf-8") as f:
        text = f.read().replace("path='" + root, "path='")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    head = text[:4096]
    m = re.search(r"soname='([^']+)'", head)
    if not m:
        raise SystemExit(f"abi: {lib} has no SONAME")
    if "<function-decl" not in text:
        raise SystemExit(f"abi: abidw found no function types in {lib}: build it with -g "
                         "(e.g. the test preset, RelWithDebInfo)")
    return m.group(1)


def enum_lines(hdr):
    return [f"{name} = {value}" for name, value in sorted(hdr.enumerators.items())]


def read_enums(path):
    enums = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                name, value = (s.strip() for s in line.split("=", 1))
                enums[name] = int(value)
    return enums


def summary_counts(report):
    """{'Functions': (removed, changed, added), 'Variables': (...)} from abidiff's text."""
    counts = {}
    for m in re.finditer(r"(Functions|Variables) changes summary: (\d+) Removed(?: \(\d+ filtered "
                         r"out\))?, (\d+) Changed(?: \(\d+ filtered out\))?, (\d+) Added",
                         report):
        counts[m.group(1)] = tuple(int(m.group(i)) for i in (2, 3, 4))
    return counts


def major_of(soname):
    m = re.search(r"\.so\.(\d+)", soname)
    return int(m.group(1)) if m else -1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["write", "check"])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--headers", required=True, help="public header directory (include)")
    ap.add_argument("--dir", required=True, help="baseline directory (docs/abi)")
    ap.add_argument("--abidw")
    ap.add_argument("--abidiff")
    args = ap.parse_args(argv)
    abidw = tool("abidw", args.abidw)

    with tempfile.TemporaryDirectory() as tmp:
        fresh = os.path.join(tmp, "fresh.abi")
        soname = describe(abidw, args.lib, args.headers, fresh)
        baseline = os.path.join(args.dir, soname + ".abi")

        hdr = bp_header.parse(os.path.join(args.headers, "backprop.h"))
        enums_path = os.path.join(args.dir, soname + ".enums")

        if args.mode == "write":
            os.makedirs(args.dir, exist_ok=True)
            shutil.copyfile(fresh, baseline)
            with open(enums_path, "w", encoding="utf-8") as f:
                f.write("# Enumerator values of include/backprop.h recorded with the ABI "
                        "baseline (tests/api/abi.py); they never change.\n")
                f.write("\n".join(enum_lines(hdr)) + "\n")
            print(f"abi: wrote {baseline} and {enums_path}")
            return 0

        abidiff = tool("abidiff", args.abidiff)
        if not os.path.exists(baseline):
            older = [p for p in glob.glob(os.path.join(args.dir, "*.abi"))
                     if major_of(os.path.basename(p)) < major_of(soname)]
            if older:
                print(f"abi: {soname} has no baseline but {os.path.basename(max(older))} "
                      "does: the SONAME major was bumped, so incompatible changes are "
                      f"allowed. Record the new baseline ({baseline}) at the release.")
                return 0
            print(f"abi: no baseline {baseline} for {soname}; see docs/abi.md")
            return 1

        enum_errors = []
        if os.path.exists(enums_path):
            for name, value in sorted(read_enums(enums_path).items()):
                now = hdr.enumerators.get(name)
                if now is None:
                    enum_errors.append(f"{name} (= {value}) was removed from the header")
                elif now != value:
                    enum_errors.append(f"{name} changed from {value} to {now}")
        else:
            enum_errors.append(f"no enumerator baseline {enums_path}")
        if enum_errors:
            print(f"abi: enumerator values differ from {enums_path} while the SONAME is still "
                  f"{soname}:\n  " + "\n  ".join(enum_errors))
            return 1

        proc = subprocess.run([abidiff, baseline, fresh], capture_output=True, text=True)
        report = (proc.stdout + proc.stderr).strip()
        rc = proc.returncode
        if rc & (ABIDIFF_ERROR | ABIDIFF_USAGE_ERROR):
            print(f"abi: abidiff failed (exit {rc}):\n{report}")
            return 1
        counts = summary_counts(report)
        if rc & ABIDIFF_ABI_CHANGE and not counts:
            print(f"abi: cannot read abidiff's summary (exit {rc}):\n{report}")
            return 1
        breaking = any(removed or changed for removed, changed, _ in counts.values())
        if rc & ABIDIFF_ABI_INCOMPATIBLE_CHANGE or breaking:
            print(f"abi: INCOMPATIBLE change against {baseline} while the SONAME is still "
                  f"{soname}. Either keep the old interface (add a new function instead, "
                  "see docs/abi.md) or bump the SONAME major version.\n" + report)
            return 1
        if rc & ABIDIFF_ABI_CHANGE:
            print(f"abi: additions only against {baseline} (allowed; record the new "
                  "baseline at the release):\n" + report)
            return 0
        print(f"abi: {soname} matches {baseline}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
