#!/usr/bin/env python3
"""test_checkers.py -- the API checkers find the violations they exist for.

Each case writes a small header in the style of backprop.h with one seeded defect and
expects check_ffi / symbols to report it (and a clean header to pass), so that a checker
that silently stopped matching anything would fail here.
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bp_header  # noqa: E402
import check_ffi  # noqa: E402
import symbols  # noqa: E402

CLEAN = """\
#ifndef T_H
#define T_H
#include <stddef.h>
#include <stdint.h>
#define BP_VERSION_MAJOR 0
#define BP_VERSION_MINOR 3
#define BP_VERSION_PATCH 1
#ifndef BP_API
#  define BP_API __attribute__((visibility("default")))
#endif
/* ============================================================================================
 * Status codes
 * ==========================================================================================*/
typedef enum bp_status { BP_OK = 0, BP_ERR_X = -100, BP_ERR_Y } bp_status;
typedef struct bp_net bp_net;
enum bp_kind { BP_KIND_A = 1 << 2, BP_KIND_B };
typedef void *(*bp_alloc_fn)(void *user, size_t size);
/* ============================================================================================
 * Network
 * ==========================================================================================*/
/** Make one. @param out the net. @param n width. @return BP_OK. @since 0.1 */
BP_API bp_status bp_net_create(bp_net **out, size_t n);
/** Name. @return a static string. @since 0.2 */
BP_API const char *bp_net_name(const bp_net *net,
                               int kind);
/** Old. @deprecated 0.3 use bp_net_name. @since 0.1 */
BP_DEPRECATED("use bp_net_name()") BP_API int bp_net_old(bp_net *net);
#endif
"""


def parse_text(text):
    with tempfile.NamedTemporaryFile("w", suffix=".h", delete=False) as f:
        f.write(text)
    try:
        return bp_header.parse(f.name)
    finally:
        os.unlink(f.name)


def violations(text):
    return check_ffi.check(parse_text(text))


class Parser(unittest.TestCase):
    def test_clean_header_is_read_completely(self):
        hdr = parse_text(CLEAN)
        self.assertEqual(hdr.problems, [])
        self.assertEqual([f.name for f in hdr.functions],
                         ["bp_net_create", "bp_net_name", "bp_net_old"])
        name = hdr.functions[1]
        self.assertEqual(name.ret, "const char *")
        self.assertEqual([(p.type, p.name) for p in name.params],
                         [("const bp_net *", "net"), ("int", "kind")])
        self.assertEqual([f.since for f in hdr.functions], ["0.1", "0.2", "0.1"])
        self.assertEqual(hdr.functions[2].deprecated, "0.3")
        self.assertEqual(hdr.functions[0].section, "Network")
        self.assertEqual(hdr.enumerators["BP_ERR_Y"], -99)
        self.assertEqual(hdr.enumerators["BP_KIND_B"], 5)
        self.assertEqual(bp_header.version(hdr), (0, 3, 1))
        self.assertEqual(violations(CLEAN), [])


class FfiRules(unittest.TestCase):
    def assertCaught(self, old, new, fragment):
        self.assertIn(old, CLEAN)
        found = violations(CLEAN.replace(old, new))
        self.assertTrue(any(fragment in v for v in found), f"{fragment!r} not in {found}")

    def test_struct_by_value_parameter(self):
        self.assertCaught("const bp_net *net,", "bp_net net,", "by value")

    def test_struct_by_value_return(self):
        self.assertCaught("BP_API int bp_net_old", "BP_API bp_net bp_net_old", "by value")

    def test_variadic_function(self):
        self.assertCaught("int kind);", "int kind, ...);", "variadic")

    def test_bool(self):
        self.assertCaught("int kind);", "bool kind);", "bool")

    def test_enum_parameter(self):
        self.assertCaught("int kind);", "enum bp_kind kind);", "enum type")

    def test_public_struct_layout(self):
        self.assertCaught("typedef struct bp_net bp_net;",
                          "typedef struct bp_net { int a; } bp_net;", "layout")

    def test_foreign_include(self):
        self.assertCaught("#include <stdint.h>", "#include <stdio.h>", "stdio.h")

    def test_unnamed_parameter(self):
        self.assertCaught("size_t n);", "size_t);", "no name")

    def test_internal_name_exported(self):
        self.assertCaught("bp_net_old(", "bp__old(", "bp__")


class Symbols(unittest.TestCase):
    def test_render_lists_every_function_with_its_version(self):
        text = symbols.render(parse_text(CLEAN))
        self.assertIn("| `bp_net_name` | 0.2 |  | Network |", text)
        self.assertIn("| `bp_net_old` | 0.1 | 0.3 | Network |", text)
        self.assertEqual(symbols.table_functions(text),
                         {"bp_net_create", "bp_net_name", "bp_net_old"})
        self.assertIn("`BP_KIND_B` = 5", text)

    def test_missing_since_fails_the_check(self):
        with tempfile.TemporaryDirectory() as tmp:
            header = os.path.join(tmp, "t.h")
            listing = os.path.join(tmp, "symbols.md")
            with open(header, "w") as f:
                f.write(CLEAN)
            self.assertEqual(symbols.main([header, "--write", listing]), 0)
            self.assertEqual(symbols.main([header, "--check", listing]), 0)
            with open(header, "w") as f:
                f.write(CLEAN.replace("@since 0.2", ""))
            self.assertEqual(symbols.main([header, "--check", listing]), 1)
            with open(header, "w") as f:  # a new function makes the listing stale
                f.write(CLEAN[:-len("#endif\n")] + "/** New. @since 0.3 */\n"
                        "BP_API int bp_net_new(int x);\n#endif\n")
            self.assertEqual(symbols.main([header, "--check", listing]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
