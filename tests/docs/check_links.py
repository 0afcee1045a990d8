#!/usr/bin/env python3
"""check_links.py SOURCE_DIR | --self-test -- every reference in the project's Markdown files resolves.

Checked in each *.md file of the source tree (build directories aside):
  - Markdown links [text](target) to a file: the file exists (relative to the document);
    with a #fragment into a Markdown file, a heading of that file has this anchor
    (GitHub's rule: lower case, punctuation dropped, spaces become '-');
  - in-document links (#fragment): a heading of the document has the anchor;
  - names of Markdown documents in the text (`design.md`, CHANGELOG.md ...): the document
    exists beside the file, at the top or in docs/;
  - inline code that names a file of the repository (`docs/abi.md`, `tests/api/abi.py`,
    `src/cli/cli_main.c` ...: a path under one of the top-level directories, with an
    extension): the file exists. Paths with wildcards or placeholders (*, <, {, $) and
    build-tree paths (build/...) are not checked.
CHANGELOG.md is history: it may name files that were removed or renamed since, so only its
links are checked.
Prints each broken reference as FILE:LINE: message; exit status 1 if there is any.
"""

import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
TOP = ("include/", "src/", "tests/", "bench/", "cmake/", "docs/", "pkgconfig/", ".ci/")
SKIP_DIRS = {".git", "build", "out", ".cache", "node_modules"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\s]+)`")
MDNAME = re.compile(r"(?<![\w/.-])([\w-]+(?:/[\w-]+)*\.md)\b")
PATHLIKE = re.compile(r"^[\w.+-]+(/[\w.+-]+)*\.[A-Za-z0-9]+$")


def slug(heading):
    text = re.sub(r"`|\*|_(?=\w)|(?<=\w)_", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found, seen, fence = set(), {}, False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fence = not fence
                    continue
                m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    s = slug(m.group(1))
                    n = seen.get(s, 0)
                    found.add(s if n == 0 else f"{s}-{n}")
                    seen[s] = n + 1
        cache[path] = found
    return cache[path]


def markdown_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build")]
        for name in filenames:
            if name.endswith(".md"):
                yield os.path.join(dirpath, name)


def check(path):
    errors = []
    rel = os.path.relpath(path, ROOT)
    here = os.path.dirname(path)
    fence = False
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for m in LINK.finditer(line):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            file_part, _, fragment = target.partition("#")
            dest = os.path.normpath(os.path.join(here, file_part)) if file_part else path
            if not os.path.exists(dest):
                errors.append(f"{rel}:{number}: link to {target}: no such file")
            elif fragment and dest.endswith(".md") and fragment not in anchors(dest):
                errors.append(f"{rel}:{number}: link to {target}: no heading with anchor "
                              f"#{fragment} in {os.path.relpath(dest, ROOT)}")
        if os.path.basename(path) == "CHANGELOG.md":
            continue
        prose = re.sub(r"\]\([^)]*\)|https?://\S+", "]", line)  # link targets checked above
        for m in MDNAME.finditer(prose):
            name = m.group(1)
            if not any(os.path.exists(os.path.join(base, name))
                       for base in (here, ROOT, os.path.join(ROOT, "docs"))):
                errors.append(f"{rel}:{number}: {name} is not a document of the repository")
        for m in CODE.finditer(line):
            text = m.group(1).rstrip(".,;:")
            if not text.startswith(TOP) or any(c in text for c in "*<{$["):
                continue
            if not PATHLIKE.match(text):
                continue
            if not os.path.exists(os.path.join(ROOT, text)):
                errors.append(f"{rel}:{number}: `{text}` is not a file of the repository")
    return errors


def self_test():
    """The checker finds seeded breakage in a scratch tree (and passes its good twin)."""
    import tempfile
    global ROOT
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "docs"))
        os.makedirs(os.path.join(tmp, "src"))
        open(os.path.join(tmp, "src", "real.c"), "w").close()
        with open(os.path.join(tmp, "docs", "guide.md"), "w") as f:
            f.write("# Guide\n\n## Step two: `run` it\n")
        good = ("See [the guide](docs/guide.md#step-two-run-it), [top](#top), `src/real.c`,\n"
                "docs/guide.md and `build/x.c`, `src/*.c`.\n\n# Top\n```\n`src/none.c`\n```\n")
        bad = ("[gone](docs/missing.md), [anchor](docs/guide.md#no-such), [here](#nowhere),\n"
               "`src/none.c`, STYLE.md\n")
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(good)
        ROOT = tmp
        clean = check(os.path.join(tmp, "README.md"))
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(bad)
        found = check(os.path.join(tmp, "README.md"))
    want = ["missing.md: no such file", "no heading with anchor #no-such", "#nowhere",
            "`src/none.c` is not a file", "STYLE.md is not a document"]
    missed = [w for w in want if not any(w in e for e in found)]
    if clean or missed or len(found) != len(want):
        print("check_links self-test failed:", clean, found, missed)
        return 1
    print("check_links self-test: seeded breakage found, clean tree passes")
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test()
    errors = []
    count = 0
    for path in sorted(markdown_files()):
        count += 1
        errors += check(path)
    for e in errors:
        print(e)
    print(f"check_links: {count} Markdown files, {len(errors)} broken reference(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
