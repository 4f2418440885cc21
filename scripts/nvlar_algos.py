"""nvlar's all-reduce algorithms for the scripts, as the built `nvlar-table --algorithms` prints
them from kernels/nvlar_algos.h. The scripts keep no list of their own: a new row of that table
reaches tune, plot and bench-table without an edit here or there.

Each algorithm is a dict of the columns (`nvlar-table --help` says what each means), in the
table's order: name, title and below_arch / above_max as text; value, min_arch, max_bytes,
bytes_per_cta and most_ctas as numbers; builtin as a bool."""
import csv
import os
import subprocess

HERE = os.path.dirname(os.path.realpath(__file__))
# Where `meson setup build && ninja -C build` puts it; every script takes --nvlar-table PATH.
DEFAULT_NVLAR_TABLE = os.path.normpath(os.path.join(HERE, "..", "build", "tools", "nvlar-table"))
NUMBERS = ("value", "min_arch", "max_bytes", "bytes_per_cta", "most_ctas")
COLUMNS = ("name", "title", "below_arch", "above_max", "builtin") + NUMBERS

_loaded = {}


def add_option(parser, default=DEFAULT_NVLAR_TABLE, default_text=None):
    """The --nvlar-table option of a script's argparse parser; `default_text` says where the
    default is when it is not a path (the script then sets it)."""
    parser.add_argument("--nvlar-table", metavar="PATH", default=default,
                        help="the built nvlar-table, whose --algorithms lists nvlar's algorithms "
                             f"(default {default_text or '%(default)s'})")


def load(path, program):
    """[{column: value}] of `path --algorithms`, in the table's order. Exits with a message that
    names `program` when the program is missing or does not print the table."""
    if path in _loaded:
        return _loaded[path]
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{program}: no nvlar-table at {path}: it lists nvlar's algorithms; build "
                         "nvlar (meson setup build && ninja -C build) or pass --nvlar-table PATH")
    result = subprocess.run([path, "--algorithms"], capture_output=True, text=True)
    rows = list(csv.DictReader(result.stdout.splitlines(), delimiter="\t",
                               quoting=csv.QUOTE_NONE))
    if result.returncode != 0 or not rows or any(c not in rows[0] for c in COLUMNS):
        raise SystemExit(f"{program}: {path} --algorithms gave no algorithm table (exit "
                         f"{result.returncode}; an nvlar-table built before --algorithms?): "
                         f"{result.stderr.strip()}")
    for row in rows:
        for column in NUMBERS:
            row[column] = int(row[column])
        row["builtin"] = row["builtin"] == "yes"
    _loaded[path] = rows
    return rows


def names(path, program):
    """The algorithms' names, in the table's order."""
    return [row["name"] for row in load(path, program)]


def titles(path, program):
    """{name: title}."""
    return {row["name"]: row["title"] for row in load(path, program)}
