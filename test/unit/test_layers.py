#!/usr/bin/env python3
"""No #include of libnvlar's code runs back up its layers (docs/design.md, "Source layout").

The build already refuses a bare name from a layer above: each layer's library sees only its own
include folder and those below it. What it cannot see is a path that climbs on its own
("../plugin/route.h" resolves next to the including file), so this reads every quoted include
of every layer and fails on one that reaches a layer above it, whatever way it is written.

usage: test_layers.py SOURCE_ROOT LAYER... (the layers' folders, bottom up)"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)
SOURCES = (".c", ".h", ".cu", ".cuh")

root, layers = os.path.realpath(sys.argv[1]), sys.argv[2:]
layer_dirs = [os.path.join(root, layer) for layer in layers]


def layer_of(path):
    """The index of the layer that holds `path`, or None outside every layer."""
    for index, directory in enumerate(layer_dirs):
        if os.path.commonpath([directory, path]) == directory:
            return index
    return None


def resolve(including, name, level):
    """Where the compiler finds `name`, included from `including` in layer `level`: beside the
    including file, then in the include folders of that layer's library (its own, those below),
    then, for the message, in a layer above (where the build fails on it). None: not ours (a
    system header, or one the build generates)."""
    candidates = [os.path.dirname(including)] + layer_dirs[level::-1] + layer_dirs[level + 1:]
    for directory in candidates:
        path = os.path.realpath(os.path.join(directory, name))
        if os.path.isfile(path):
            return path
    return None


failures = []
files = 0
for level, directory in enumerate(layer_dirs):
    for folder, _, names in os.walk(directory):
        for file_name in sorted(names):
            if not file_name.endswith(SOURCES):
                continue
            files += 1
            including = os.path.join(folder, file_name)
            with open(including, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for name in INCLUDE.findall(text):
                target = resolve(including, name, level)
                target_level = layer_of(target) if target else None
                if target_level is not None and target_level > level:
                    failures.append(f"{os.path.relpath(including, root)}: #include \"{name}\" "
                                    f"reaches {os.path.relpath(target, root)}, in "
                                    f"{layers[target_level]}/ above {layers[level]}/")

if files == 0:
    sys.exit(f"test_layers: no sources under {', '.join(layers)} in {root}")
for failure in failures:
    print(failure)
print(f"{files} files of {len(layers)} layers read, {len(failures)} includes running back up")
sys.exit(1 if failures else 0)
