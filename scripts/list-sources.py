#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Lists files matching a glob, sorted, one per line, relative to a directory: Meson has no glob.

Meson reads the list at configure time, so a new file needs `meson setup --reconfigure` (scripts/test.sh does it).
Usage: list-sources.py <directory> <pattern>
"""
import pathlib
import sys

root = pathlib.Path(sys.argv[1])
for path in sorted(root.glob(sys.argv[2])):
    if path.is_file():
        print(path.relative_to(root).as_posix())
