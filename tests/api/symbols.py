#!/usr/bin/env python3
"""symbols.py -- generate or check docs/symbols.md from include/backprop.h.

    python3 symbols.py HEADER --write docs/symbols.md
    python3 symbols.py HEADER --check docs/symbols.md [--lib libbackprop.so] [--nm nm]

The list is derived from the header: each BP_API function with the version of its @since tag
(and of its @deprecated tag or BP_DEPRECATED marker), and each enumeration with its pinned
values. --check fails when a function lacks @since, when the committed file differs from what
the header gives (the diff is printed: regenerate with --write and review it), or, with
--lib, when the table's functions are not exactly the bp_ functions the library exports.
"""

import argparse
import difflib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bp_header  # noqa: E402

PREAMBLE = """\
# Public symbols

Every function libbackprop exports, with the version that introduced it (its `@since` in
`include/backprop.h`) and, where it applies, the version that deprecated it; then every
enumeration with its values, which never change (see [abi.md](abi.md)).

Generated from the header by `tests/api/symbols.py`; do not edit by hand. After changing the
header, regenerate with `cmake --build build/test --target api-baseline` (or
`python3 tests/api/symbols.py include/backprop.h --write docs/symbols.md`) and review the
diff. The test `api_symbols` fails when this file is out of date or when its functions are
not exactly the ones `libbackprop.so` exports.
"""


def render(hdr):
    major, minor, patch = bp_header.version(hdr)
    out = [PREAMBLE]
    out.append(f"Header version: {major}.{minor}.{patch}; "
               f"{len(hdr.functions)} functions.\n")
    out.append("## Functions\n")
    out.append("| Function | Since | Deprecated | Section |")
    out.append("|---|---|---|---|")
    for fn in sorted(hdr.functions, key=lambda f: f.name):
        out.append(f"| `{fn.name}` | {fn.since or '?'} | {fn.deprecated} | {fn.section} |")
    out.append("")
    out.append("## Enumerations\n")
    out.append("Passed as `int` through the API; each value is part of the ABI.\n")
    for enum_name in sorted(hdr.enum_members):
        members = hdr.enum_members[enum_name]
        out.append(f"- `enum {enum_name}`: " + ", ".join(
            f"`{m}` = {hdr.enumerators[m]}" for m in members))
    out.append("")
    return "\n".join(out)


def table_functions(text):
    return set(re.findall(r"^\| `(bp_\w+)` \|", text, re.M))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("header")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="FILE")
    mode.add_argument("--check", metavar="FILE")
    ap.add_argument("--lib")
    ap.add_argument("--nm", default="nm")
    args = ap.parse_args(argv)

    hdr = bp_header.parse(args.header)
    errors = list(hdr.problems)
    for fn in hdr.functions:
        if not fn.since:
            errors.append(f"{fn.name} (line {fn.line}) has no @since tag in its documentation")
    text = render(hdr)

    if args.write:
        if errors:
            for e in errors:
                print(f"symbols: {e}")
            return 1
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"symbols: wrote {args.write} ({len(hdr.functions)} functions)")
        return 0

    try:
        with open(args.check, encoding="utf-8") as f:
            committed = f.read()
    except OSError as e:
        errors.append(f"cannot read {args.check}: {e}")
        committed = ""
    listed = table_functions(committed)
    if args.lib:
        exported, _ = bp_header.exported_symbols(args.lib, args.nm)
        for name in sorted(exported - listed):
            errors.append(f"{name} is exported by {args.lib} but missing from {args.check}")
        for name in sorted(listed - exported):
            errors.append(f"{name} is listed in {args.check} but not exported by {args.lib}")
    if committed and committed != text:
        diff = difflib.unified_diff(committed.splitlines(), text.splitlines(),
                                    args.check + " (committed)", "from the header", lineterm="")
        errors.append(f"{args.check} is out of date; regenerate it (see docs/abi.md):\n"
                      + "\n".join(diff))
    for e in errors:
        print(f"symbols: {e}")
    if errors:
        return 1
    print(f"symbols: {args.check} lists all {len(listed)} functions, up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
