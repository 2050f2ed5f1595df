#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Links header folders of the build machine into one include directory of the build tree.

The Windows cross build (cross/mingw-w64-x86_64.ini) takes the header-only Boost and Catch2 v2 from the build
machine's packages. Adding /usr/include itself to a mingw-w64 build would bring glibc's headers in, so meson.build
links only the folders that the cross file's `procpool_host_headers` lists (the CMake toolchain file does the same).
Usage: host-headers.py <include dir to create> <folder>...
"""
import os
import pathlib
import sys

dest = pathlib.Path(sys.argv[1])
dest.mkdir(parents=True, exist_ok=True)
for source in map(pathlib.Path, sys.argv[2:]):
    if not source.is_dir():
        sys.exit(f"host-headers.py: {source} is not a folder (install the package that provides it)")
    link = dest / source.name
    if link.is_symlink() and os.readlink(link) == str(source):
        continue
    if link.is_symlink():
        link.unlink()
    link.symlink_to(source, target_is_directory=True)
