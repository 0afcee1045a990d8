#!/usr/bin/env python3
"""check_ffi.py -- assert the FFI rules of STYLE.md section 1 on include/backprop.h.

    python3 check_ffi.py HEADER [--lib libbackprop.so] [--nm nm]

Rules checked on the public C header (backprop.hpp is C++ and not part of the C ABI):
  - only <stddef.h> and <stdint.h> are included;
  - no public struct or union layouts (handles are incomplete types);
  - no struct passed or returned by value; no enum-typed parameter (enums travel as int;
    the bp_status return type is the one allowed enum, its values are pinned);
  - no variadic function or callback; no bool/_Bool anywhere;
  - every parameter is named; every function is bp_ (not bp__), declared once;
  - with --lib: every exported bp_ function is declared in the header and every declared
    function is exported (nm -D --defined-only for a shared library), and the shared
    library exports nothing but bp_ names.
Exit status 0 when every rule holds; 1 with one line per violation otherwise.
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bp_header  # noqa: E402

ALLOWED_INCLUDES = {"<stddef.h>", "<stdint.h>"}
ALLOWED_ENUM_RETURNS = {"bp_status"}


def _base_is_by_value(ctype, hdr):
    """True when the type names a struct/handle/enum without any pointer level."""
    if "*" in ctype.split():
        return False
    words = [w for w in ctype.split() if w not in ("const", "volatile")]
    plain = " ".join(words)
    return plain in hdr.handles or plain.startswith("struct ") or plain.startswith("union ")


def check(hdr, lib=None, nm="nm"):
    errors = list(hdr.problems)
    code = bp_header._COMMENT.sub(" ", hdr.text)

    for inc in hdr.includes:
        if inc not in ALLOWED_INCLUDES:
            errors.append(f"includes {inc}; only {sorted(ALLOWED_INCLUDES)} are allowed")
    for m in re.finditer(r"\b(struct|union)\s+(\w+)\s*\{", code):
        errors.append(f"public {m.group(1)} layout: {m.group(1)} {m.group(2)} {{...}}")
    if re.search(r"\b(bool|_Bool)\b|stdbool\.h", code):
        errors.append("bool/_Bool used in the header: use int 0/1")
    for name, text in hdr.callbacks.items():
        if "..." in text:
            errors.append(f"callback type {name} is variadic")
        inner = re.search(r"\)\s*\((.*)\)\s*;", text, re.S)
        for p in bp_header._split_params(inner.group(1)) if inner else []:
            param = bp_header.parse_param(p)
            if _base_is_by_value(param.type, hdr):
                errors.append(f"callback type {name} takes {param.type} by value")

    seen = set()
    for fn in hdr.functions:
        where = f"{fn.name} (line {fn.line})"
        if fn.name in seen:
            errors.append(f"{where}: declared twice")
        seen.add(fn.name)
        if not fn.name.startswith("bp_") or fn.name.startswith("bp__"):
            errors.append(f"{where}: exported names start with bp_ (not bp__)")
        if _base_is_by_value(fn.ret, hdr):
            errors.append(f"{where}: returns {fn.ret} by value")
        ret_plain = fn.ret.replace("const ", "")
        if ret_plain in hdr.enum_types and ret_plain not in ALLOWED_ENUM_RETURNS:
            errors.append(f"{where}: returns the enum {fn.ret}; return int")
        for i, p in enumerate(fn.params):
            if p.type == "...":
                errors.append(f"{where}: variadic; use one function per setting or a key")
                continue
            if not p.name:
                errors.append(f"{where}: parameter {i + 1} ({p.type}) has no name")
            if _base_is_by_value(p.type, hdr):
                errors.append(f"{where}: parameter {p.name or i + 1} passes {p.type} by value")
            if p.type.replace("const ", "") in hdr.enum_types:
                errors.append(f"{where}: parameter {p.name} has enum type {p.type}; use int")
            if p.type in ("long double", "_Complex", "float _Complex", "double _Complex"):
                errors.append(f"{where}: parameter {p.name} has type {p.type}")

    if lib:
        exported, others = bp_header.exported_symbols(lib, nm)
        declared = {fn.name for fn in hdr.functions}
        for name in sorted(exported - declared):
            errors.append(f"{lib} exports {name}, which the header does not declare")
        for name in sorted(declared - exported):
            errors.append(f"header declares {name}, which {lib} does not export")
        if not lib.endswith(".a"):
            for name in sorted(others):
                errors.append(f"{lib} exports the non-bp_ symbol {name}")
    return errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("header")
    ap.add_argument("--lib", help="shared library (or static archive) to compare exports with")
    ap.add_argument("--nm", default="nm")
    args = ap.parse_args(argv)
    hdr = bp_header.parse(args.header)
    if not hdr.functions:
        print(f"check_ffi: no BP_API function found in {args.header}")
        return 1
    errors = check(hdr, args.lib, args.nm)
    for e in errors:
        print(f"check_ffi: {e}")
    if errors:
        return 1
    what = f", all exported by {os.path.basename(args.lib)}" if args.lib else ""
    print(f"check_ffi: {len(hdr.functions)} functions, {len(hdr.enumerators)} enumerators "
          f"follow the FFI rules{what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
