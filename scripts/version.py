#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Prints the procpool version (MAJOR.MINOR.PATCH) read from include/procpool/config.hpp, the one source of it.

meson.build calls this in project(); scripts/test.sh uses it to compare the versions of CMake, Meson and the header.
Usage: version.py [path/to/config.hpp]
"""
import pathlib
import re
import sys

path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
    pathlib.Path(__file__).resolve().parent.parent / "include" / "procpool" / "config.hpp"
text = path.read_text(encoding="utf-8")
parts = []
for part in ("MAJOR", "MINOR", "PATCH"):
    m = re.search(r"^\s*#\s*define\s+PROCPOOL_VERSION_%s\s+(\d+)\s*$" % part, text, re.MULTILINE)
    if not m:
        sys.exit("version.py: no PROCPOOL_VERSION_%s in %s" % (part, path))
    parts.append(str(int(m.group(1))))
print(".".join(parts))
