"""bp_header -- a small parser for include/backprop.h, shared by the API checks.

The header follows a narrow, regular style (STYLE.md section 1): every exported function is
a single declaration starting with BP_API (optionally preceded by BP_DEPRECATED(...)), right
after its Doxygen comment; handles are `typedef struct bp_x bp_x;`; enumerations are
`enum bp_x { BP_A = 1, ... };` or `typedef enum bp_x { ... } bp_x;`. This module reads that
shape and nothing more general: anything it cannot parse is reported, not guessed.

Standard library only (used by ctest with whatever python3 the machine has).
"""

import re
from dataclasses import dataclass, field

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DOC_THEN_DECL = re.compile(
    r"/\*\*((?:(?!\*/).)*)\*/\s*"                     # the doc comment right before
    r"((?:BP_DEPRECATED\((?:[^()]|\([^()]*\))*\)\s*)?"  # optional deprecation marker
    r"BP_API\b[^;{]*;)", re.S)
_DECL = re.compile(r"^(?:BP_DEPRECATED\((?P<dep>(?:[^()]|\([^()]*\))*)\)\s*)?BP_API\s+"
                   r"(?P<ret>.*?)\b(?P<name>\w+)\s*\((?P<params>.*)\)\s*;$", re.S)
_SECTION = re.compile(r"/\* =+\n \* ([^\n]+)\n")
_SINCE = re.compile(r"@since\s+(\d+\.\d+(?:\.\d+)?)")
_DEPRECATED_TAG = re.compile(r"@deprecated\s+(\d+\.\d+(?:\.\d+)?)")


@dataclass
class Param:
    type: str   # normalised C type, e.g. "const float *"
    name: str   # "" when the prototype leaves it unnamed


@dataclass
class Function:
    name: str
    ret: str
    params: list
    since: str            # from @since in the doc comment; "" if missing
    deprecated: str       # version from @deprecated, or the BP_DEPRECATED message, or ""
    doc: str
    section: str
    line: int
    raw: str


@dataclass
class Header:
    path: str
    text: str
    functions: list = field(default_factory=list)
    handles: set = field(default_factory=set)        # typedef'd opaque structs
    enum_types: set = field(default_factory=set)     # "enum bp_x" and typedef names
    enumerators: dict = field(default_factory=dict)  # BP_X -> int
    enum_members: dict = field(default_factory=dict) # enum name -> [BP_X, ...]
    callbacks: dict = field(default_factory=dict)    # function-pointer typedef -> text
    includes: list = field(default_factory=list)
    problems: list = field(default_factory=list)     # things the parser could not read


def normalise_type(text):
    """'const  float*' -> 'const float *' (one space between tokens, '*' as a token)."""
    text = text.replace("*", " * ")
    return " ".join(text.split())


def _split_params(text):
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_TYPE_WORDS = {"const", "volatile", "restrict", "unsigned", "signed", "int", "char", "short",
               "long", "float", "double", "void", "size_t", "struct", "enum", "*"}


def parse_param(text):
    """Split 'const float *x' into Param('const float *', 'x')."""
    tokens = normalise_type(text).split()
    if len(tokens) >= 2 and re.fullmatch(r"[A-Za-z_]\w*", tokens[-1]) \
            and tokens[-1] not in _TYPE_WORDS and tokens[-2] != "struct" \
            and tokens[-2] != "enum":
        return Param(" ".join(tokens[:-1]), tokens[-1])
    return Param(" ".join(tokens), "")


def _eval_enum_value(expr, known):
    expr = expr.strip()
    if not re.fullmatch(r"[\w\s()+\-*<>|~]+", expr):
        raise ValueError(expr)
    names = {k: v for k, v in known.items()}
    expr = re.sub(r"(\d+)[uUlL]+\b", r"\1", expr)
    return int(eval(expr, {"__builtins__": {}}, names))  # noqa: S307 - vetted characters


def _parse_enums(hdr, code):
    for m in re.finditer(r"(typedef\s+)?enum\s+(\w+)\s*\{(.*?)\}\s*(\w*)\s*;", code, re.S):
        enum_name = m.group(2)
        hdr.enum_types.add("enum " + enum_name)
        if m.group(1) and m.group(4):
            hdr.enum_types.add(m.group(4))
        members, nxt = [], 0
        for item in m.group(3).split(","):
            item = item.strip()
            if not item:
                continue
            if "=" in item:
                name, value = (s.strip() for s in item.split("=", 1))
                try:
                    nxt = _eval_enum_value(value, hdr.enumerators)
                except (ValueError, SyntaxError, NameError):
                    hdr.problems.append(f"enum {enum_name}: cannot evaluate {item!r}")
                    continue
            else:
                name = item
            hdr.enumerators[name] = nxt
            members.append(name)
            nxt += 1
        hdr.enum_members[enum_name] = members


def parse(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    hdr = Header(path=path, text=text)
    code = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)

    hdr.includes = re.findall(r"^\s*#\s*include\s*([<\"][^>\"]+[>\"])", code, re.M)
    # Preprocessor lines (with continuations) are not declarations: blank them too.
    code = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), code, flags=re.M)
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s+(\w+)\s*;", code):
        hdr.handles.add(m.group(2))
        hdr.handles.add("struct " + m.group(1))
    for m in re.finditer(r"typedef\s+[^;()]*\(\s*\*\s*(\w+)\s*\)\s*\(([^;]*)\)\s*;", code):
        hdr.callbacks[m.group(1)] = m.group(0)
    _parse_enums(hdr, code)

    sections = [(m.start(), m.group(1).strip()) for m in _SECTION.finditer(text)]

    def section_at(pos):
        name = ""
        for start, title in sections:
            if start > pos:
                break
            name = title
        return name

    documented = {}
    for m in _DOC_THEN_DECL.finditer(text):
        documented[m.start(2)] = m.group(1)

    # Every BP_API declaration in the comment-free code, documented or not.
    for m in re.finditer(r"(?:BP_DEPRECATED\((?:[^()]|\([^()]*\))*\)\s*)?BP_API\b[^;{]*;", code):
        raw = " ".join(m.group(0).split())
        d = _DECL.match(raw)
        line = text.count("\n", 0, m.start()) + 1
        if not d:
            hdr.problems.append(f"line {line}: cannot parse declaration {raw!r}")
            continue
        doc = documented.get(m.start(), "")
        params_text = d.group("params").strip()
        params = [] if params_text in ("", "void") else \
            [parse_param(p) for p in _split_params(params_text)]
        since = _SINCE.search(doc)
        dep_tag = _DEPRECATED_TAG.search(doc)
        deprecated = dep_tag.group(1) if dep_tag else (d.group("dep") or "").strip()
        hdr.functions.append(Function(
            name=d.group("name"), ret=normalise_type(d.group("ret")), params=params,
            since=since.group(1) if since else "", deprecated=deprecated, doc=doc,
            section=section_at(m.start()), line=line, raw=raw))
    return hdr


def version(hdr):
    """(major, minor, patch) from the BP_VERSION_* macros."""
    parts = []
    for key in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"^#define BP_VERSION_%s (\d+)$" % key, hdr.text, re.M)
        parts.append(int(m.group(1)) if m else -1)
    return tuple(parts)


def exported_symbols(lib, nm="nm"):
    """The bp_ function and object names a shared library (nm -D) or static archive (nm -g)
    defines, with internal bp__ names left out of archives."""
    import subprocess
    dynamic = not lib.endswith(".a")
    args = [nm, "-D", "--defined-only", lib] if dynamic else [nm, "-g", "--defined-only", lib]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    names = set()
    others = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2 or line.endswith(":"):
            continue
        kind, name = fields[-2], fields[-1]
        if kind == "A":
            continue
        if not dynamic and name.startswith("bp__"):
            continue
        if name.startswith("bp_"):
            names.add(name)
        else:
            others.add(name)
    return names, others
