#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Generate rvgpu's vGPU type tables (Rust) from mdev_types/*.types.

Usage:
    gen-types.py [-o OUT.rs] [--describe] FILE.types...

Every input file is one board model (the board name is the file stem).  The
file format is documented in mdev_types/README.md.  All input is validated;
every problem is reported as ``FILE:LINE: message`` on stderr and the exit
status is 1, so a malformed table fails the kernel build.

-o OUT.rs   write the Rust tables (atomically, and only if the content changed)
--describe  print, for each type of each table,
            ``vram<TAB>id<TAB>name<TAB>description`` where vram is e.g. ``256M``
            and description is exactly the string the driver shows in sysfs.
With neither option the files are only validated.
"""

import argparse
import os
import re
import sys
import tempfile

MIB = 1 << 20

# class -> (maximum heads, maximum resolution (W, H)), per grid-types.md.
# Q: 7680x4320 is what newer boards allow from 2Q up; C: 4096x2400.
CLASSES = {
    "Q": (4, (7680, 4320)),
    "B": (4, (5120, 2880)),
    "A": (1, (1280, 1024)),
    "C": (1, (4096, 2400)),
}

COLUMNS = ("id", "name", "class", "profile", "reserved", "heads",
           "max_res", "fps", "max_inst")

NAME_MAX = 63          # bytes, without the terminating NUL
U32_MAX = (1 << 32) - 1
BOARD_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
SIZE_RE = re.compile(r"([1-9][0-9]*|0)([MG])\Z")
INT_RE = re.compile(r"(0|[1-9][0-9]*)\Z")
RES_RE = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)\Z")
HEADER_RE = re.compile(r"\[\s*([A-Za-z_]+)\s*(.*?)\s*\]\Z")


class Errors:
    """Collects FILE:LINE: message diagnostics."""

    def __init__(self):
        self.entries = []

    def add(self, path, line, msg):
        self.entries.append((path, line, msg))

    @property
    def messages(self):
        # Files in command-line order, then by line.
        order = {}
        for path, _, _ in self.entries:
            order.setdefault(path, len(order))
        return ["%s:%d: %s" % e for e in
                sorted(self.entries, key=lambda e: (order[e[0]], e[1]))]

    def __bool__(self):
        return bool(self.entries)


class LineError(Exception):
    pass


class VgpuType:
    __slots__ = ("id", "name", "cls", "profile", "reserved", "heads",
                 "width", "height", "fps", "max_inst", "line",
                 "slice", "slice_reserved", "mode_width", "mode_height")

    def params(self):
        """Everything that defines the type independently of the VRAM size."""
        return (self.name, self.cls, self.profile, self.reserved, self.heads,
                self.width, self.height, self.fps)

    def description(self):
        # framebuffer= is the size of the slice an instance gets (a persona's profile divided
        # by its factor); everything else is as the table says.
        return ("num_heads=%d, frl_config=%d, framebuffer=%dM, "
                "max_resolution=%dx%d, max_instance=%d"
                % (self.heads, self.fps, self.slice, self.width,
                   self.height, self.max_inst))


# The resolutions a persona's display offers at most: the largest of these within the type's
# max_res that one head can scan out of its (scaled) usable framebuffer at 32 bpp.
MODES = [(640, 480), (800, 600), (1024, 768), (1280, 1024), (1920, 1080), (1920, 1200),
         (2560, 1600), (3840, 2160), (5120, 2880), (7680, 4320)]


class Table:
    def __init__(self, board, vram, path, line):
        self.board = board
        self.vram = vram
        self.persona = None
        self.path = path
        self.line = line
        self.types = []
        self.nlines = 0   # type lines seen, valid or not


SKIP = object()   # parser state after a bad section header


def is_pow2(n):
    return n > 0 and (n & (n - 1)) == 0


def tokenize(text):
    """Split a line into (token, quoted) pairs; '#' outside quotes starts a comment."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            break
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise LineError("unterminated quoted string")
            if end + 1 < n and not (text[end + 1].isspace() or text[end + 1] == "#"):
                raise LineError("unexpected character after quoted string "
                                "(a name may not contain '\"')")
            tokens.append((text[i + 1:end], True))
            i = end + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '#"':
                j += 1
            if j < n and text[j] == '"':
                raise LineError("unexpected '\"' inside %r" % text[i:j + 1])
            tokens.append((text[i:j], False))
            i = j
    return tokens


def parse_size(tok, what):
    m = SIZE_RE.match(tok)
    if not m:
        raise LineError("bad %s size %r (expected e.g. 64M or 1G)" % (what, tok))
    val = int(m.group(1)) * (1024 if m.group(2) == "G" else 1)
    if val > U32_MAX:
        raise LineError("%s size %r is too large" % (what, tok))
    return val


def parse_int(tok, what, lo, hi):
    if not INT_RE.match(tok):
        raise LineError("bad %s %r (expected a decimal number)" % (what, tok))
    val = int(tok)
    if not lo <= val <= hi:
        raise LineError("%s %d out of range %d..%d" % (what, val, lo, hi))
    return val


def check_name(name):
    if not name.startswith("GRID "):
        raise LineError("name %r does not start with \"GRID \"" % name)
    if not all(" " <= ch <= "~" for ch in name):
        raise LineError("name %r contains non-ASCII or control characters" % name)
    if "\\" in name:
        raise LineError("name %r contains a backslash" % name)
    if len(name.encode("ascii")) > NAME_MAX:
        raise LineError("name %r is longer than %d bytes" % (name, NAME_MAX))


def parse_type(tokens, vram, persona=None):
    """One type line of a [vram VRAM] table. With `persona` (a real board's VRAM, MiB) the line
    holds the real board's figures: they are checked as such and the slice is the profile
    divided by persona / VRAM."""
    if len(tokens) != len(COLUMNS):
        raise LineError("expected %d columns (%s), got %d"
                        % (len(COLUMNS), " ".join(COLUMNS), len(tokens)))
    for (tok, quoted), col in zip(tokens, COLUMNS):
        if quoted != (col == "name"):
            if quoted:
                raise LineError("column %s must not be quoted" % col)
            raise LineError("column name must be a quoted string, got %r" % tok)
    vals = [tok for tok, _ in tokens]
    t = VgpuType()
    t.id = parse_int(vals[0], "id", 1, U32_MAX)
    t.name = vals[1]
    check_name(t.name)
    t.cls = vals[2]
    if t.cls not in CLASSES:
        raise LineError("unknown class %r (expected one of %s)"
                        % (t.cls, ", ".join(CLASSES)))
    t.profile = parse_size(vals[3], "profile")
    t.reserved = parse_size(vals[4], "reserved")
    t.heads = parse_int(vals[5], "heads", 1, 4)
    m = RES_RE.match(vals[6])
    if not m:
        raise LineError("bad resolution %r (expected WxH, e.g. 1920x1080)" % vals[6])
    t.width, t.height = int(m.group(1)), int(m.group(2))
    if t.width > 65535 or t.height > 65535:
        raise LineError("resolution %r is too large" % vals[6])
    t.fps = parse_int(vals[7], "fps", 1, 240)
    t.max_inst = parse_int(vals[8], "max_inst", 0, U32_MAX)

    board_vram = persona or vram
    if not is_pow2(t.profile):
        raise LineError("profile %dM is not a power of two" % t.profile)
    if t.profile > board_vram:
        raise LineError("profile %dM is larger than the %s VRAM %dM"
                        % (t.profile, "persona's" if persona else "section's", board_vram))
    if t.reserved >= t.profile:
        raise LineError("reserved %dM is not smaller than profile %dM"
                        % (t.reserved, t.profile))
    max_heads, (max_w, max_h) = CLASSES[t.cls]
    if t.heads > max_heads:
        raise LineError("class %s allows at most %d head(s), got %d"
                        % (t.cls, max_heads, t.heads))
    if t.width > max_w or t.height > max_h:
        raise LineError("max_res %dx%d exceeds the class %s maximum %dx%d"
                        % (t.width, t.height, t.cls, max_w, max_h))
    usable = (t.profile - t.reserved) * MIB
    need = t.width * t.height * 4
    if need > usable:
        raise LineError("max_res %dx%d needs %d bytes at 32 bpp, more than the "
                        "usable framebuffer %dM (%d bytes)"
                        % (t.width, t.height, need, t.profile - t.reserved, usable))
    if t.max_inst != board_vram // t.profile:
        raise LineError("max_inst %d is not VRAM/profile = %dM/%dM = %d"
                        % (t.max_inst, board_vram, t.profile, board_vram // t.profile))
    t.slice, t.slice_reserved = t.profile, t.reserved
    t.mode_width, t.mode_height = t.width, t.height
    if persona:
        factor = persona // vram
        if t.profile < factor:
            raise LineError("profile %dM is below 1M once divided by %d (%dM / %dM VRAM)"
                            % (t.profile, factor, persona, vram))
        t.slice = t.profile // factor
        # The reservation scaled like the profile, to the nearest MiB (at least 1M).
        t.slice_reserved = max(1, (t.reserved + factor // 2) // factor)
        if t.slice_reserved >= t.slice:
            raise LineError("profile %dM leaves no usable framebuffer once divided by %d"
                            % (t.profile, factor))
        usable = (t.slice - t.slice_reserved) * MIB
        fits = [(w, h) for w, h in MODES
                if w <= t.width and h <= t.height and w * h * 4 <= usable]
        if not fits:
            raise LineError("profile %dM divided by %d cannot hold a 640x480 screen"
                            % (t.profile, factor))
        t.mode_width, t.mode_height = fits[-1]
    return t


def parse_file(path, errors):
    """Parse and validate one .types file; returns its tables (possibly partial)."""
    board = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        errors.add(path, 0, "cannot read: %s" % e.strerror)
        return []
    if not BOARD_RE.match(board):
        errors.add(path, 1, "board name (file stem) %r must match [A-Za-z0-9_-]+" % board)

    tables = []
    table = None
    persona = None    # a real board's VRAM (MiB), from a [persona SIZE] header
    vram_seen = {}    # vram -> header line
    id_seen = {}      # id -> first VgpuType with that id in this file
    name_seen = {}    # name -> first VgpuType with that name in this file

    def close(tbl):
        if isinstance(tbl, Table) and not tbl.nlines:
            errors.add(path, tbl.line, "empty table: no types in [vram %dM]" % tbl.vram)

    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for lineno, bline in enumerate(lines, 1):
        try:
            text = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            errors.add(path, lineno, "not valid UTF-8")
            continue
        try:
            stripped = text.strip()
            if stripped.startswith("["):
                close(table)
                table = SKIP     # until the header is known good: no cascade of errors
                header = stripped.split("#", 1)[0].strip()
                m = HEADER_RE.match(header)
                if m and m.group(1) == "persona":
                    if persona is not None or vram_seen or table is not None and table is not SKIP:
                        raise LineError("[persona ...] must come once, before any [vram ...]")
                    persona = parse_size(m.group(2), "persona VRAM")
                    if not is_pow2(persona):
                        raise LineError("persona VRAM %dM is not a power of two" % persona)
                    table = None
                    continue
                if not m or m.group(1) != "vram":
                    raise LineError("unknown header %r (expected e.g. [vram 256M])" % header)
                vram = parse_size(m.group(2), "VRAM")
                if not is_pow2(vram):
                    raise LineError("VRAM %dM is not a power of two" % vram)
                if persona is not None and vram > persona:
                    raise LineError("VRAM %dM is larger than the persona's %dM" % (vram, persona))
                if vram in vram_seen:
                    raise LineError("duplicate section [vram %dM] (first at %s:%d)"
                                    % (vram, path, vram_seen[vram]))
                vram_seen[vram] = lineno
                table = Table(board, vram, path, lineno)
                table.persona = persona
                tables.append(table)
                continue
            tokens = tokenize(text)
            if not tokens:
                continue
            if table is None:
                raise LineError("type line before any [vram ...] section header")
            if table is SKIP:
                continue
            table.nlines += 1
            t = parse_type(tokens, table.vram, persona)
            t.line = lineno
            for other in table.types:
                if other.id == t.id:
                    raise LineError("duplicate id %d in [vram %dM] (first at %s:%d)"
                                    % (t.id, table.vram, path, other.line))
                if other.name == t.name:
                    raise LineError("duplicate name %r in [vram %dM] (first at %s:%d)"
                                    % (t.name, table.vram, path, other.line))
            first = id_seen.get(t.id)
            if first is not None and first.params() != t.params():
                raise LineError("id %d has different type parameters than at %s:%d"
                                % (t.id, path, first.line))
            first = name_seen.get(t.name)
            if first is not None and first.id != t.id:
                raise LineError("name %r has id %d here but id %d at %s:%d"
                                % (t.name, t.id, first.id, path, first.line))
            id_seen.setdefault(t.id, t)
            name_seen.setdefault(t.name, t)
            table.types.append(t)
        except LineError as e:
            errors.add(path, lineno, str(e))
    close(table)
    if not vram_seen and not any(e[0] == path for e in errors.entries):
        errors.add(path, 1, "no [vram ...] sections")
    return tables


def rust_str(s):
    # Validated names and board stems are printable ASCII without '"' or '\'.
    return '"%s"' % s


def render(tables, sources):
    out = []
    out.append("// SPDX-License-Identifier: GPL-2.0")
    out.append("// Generated by scripts/gen-types.py from %s; do not edit." % ", ".join(sources))
    out.append("")
    out.append("pub(crate) static TYPE_TABLES: &[TypeTable] = &[")
    for tbl in tables:
        out.append("    TypeTable {")
        out.append("        board: %s," % rust_str(tbl.board))
        out.append("        vram_mib: %d," % tbl.vram)
        out.append("        persona_mib: %d," % (tbl.persona or 0))
        out.append("        types: &[")
        for t in tbl.types:
            out.append("            VgpuType {")
            out.append("                id: %d," % t.id)
            out.append("                name: c%s," % rust_str(t.name))
            out.append("                class: TypeClass::%s," % t.cls)
            out.append("                profile_mib: %d," % t.slice)
            out.append("                reserved_mib: %d," % t.slice_reserved)
            out.append("                heads: %d," % t.heads)
            out.append("                max_width: %d," % t.width)
            out.append("                max_height: %d," % t.height)
            out.append("                mode_width: %d," % t.mode_width)
            out.append("                mode_height: %d," % t.mode_height)
            out.append("                frl_fps: %d," % t.fps)
            out.append("                max_instances: %d," % t.max_inst)
            out.append("            },")
        out.append("        ],")
        out.append("    },")
    out.append("];")
    return "\n".join(out) + "\n"


def source_name(path):
    """How an input is named in the header: relative to the repository if inside it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = os.path.abspath(path)
    if ap.startswith(root + os.sep):
        return os.path.relpath(ap, root).replace(os.sep, "/")
    return os.path.basename(path)


def write_if_changed(path, content):
    """Atomically replace path with content unless it already holds exactly that."""
    data = content.encode("ascii")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Validate mdev_types/*.types and generate the Rust vGPU type tables.")
    ap.add_argument("-o", "--output", metavar="OUT.rs",
                    help="write the Rust tables here (atomically, only if changed)")
    ap.add_argument("--describe", action="store_true",
                    help="print vram<TAB>id<TAB>name<TAB>description for every type")
    ap.add_argument("files", nargs="+", metavar="FILE.types")
    args = ap.parse_args(argv)

    errors = Errors()
    tables = []
    boards = {}
    for path in args.files:
        board = os.path.splitext(os.path.basename(path))[0]
        if board in boards:
            errors.add(path, 1, "board %r already defined by %s" % (board, boards[board]))
            continue
        boards[board] = path
        tables.extend(parse_file(path, errors))
    if errors:
        for msg in errors.messages:
            print(msg, file=sys.stderr)
        return 1

    tables.sort(key=lambda t: (t.board, t.vram))
    if args.output:
        sources = sorted(source_name(p) for p in args.files)
        try:
            write_if_changed(args.output, render(tables, sources))
        except OSError as e:
            print("%s: cannot write: %s" % (args.output, e.strerror or e), file=sys.stderr)
            return 1
    if args.describe:
        for tbl in tables:
            for t in tbl.types:
                sys.stdout.write("%dM\t%d\t%s\t%s\n" % (tbl.vram, t.id, t.name, t.description()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
