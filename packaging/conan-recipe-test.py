#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Checks conanfile.py without Conan (which cannot be installed here): parses it, then loads it with a small stand-in
for the `conan` modules it imports and runs its package() and package_info() into a temporary folder, checking the
packaged files and the names it declares. Not covered: Conan itself (requirements resolution, the boost package,
layout(), validate() against real settings, `conan create`).
Usage: conan-recipe-test.py <repo> <work dir>; prints the recipe's version on success."""
import ast
import fnmatch
import os
import pathlib
import shutil
import sys
import types

repo, work = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
source = (repo / "conanfile.py").read_text(encoding="utf-8")
ast.parse(source)


def copy(conanfile, pattern, src, dst):  # as conan.tools.files.copy: the pattern matches the path relative to src
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d not in (".git", "build")]
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), src)
            if fnmatch.fnmatch(rel, pattern):
                os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(os.path.join(root, f), os.path.join(dst, rel))


class CppInfo:
    def __init__(self):
        self.properties, self.system_libs, self.bindirs, self.libdirs = {}, [], ["bin"], ["lib"]

    def set_property(self, k, v):
        self.properties[k] = v


class ConanFile:
    pass


stub = {"conan": types.ModuleType("conan"), "conan.tools": types.ModuleType("conan.tools"),
        "conan.tools.build": types.ModuleType("conan.tools.build"),
        "conan.tools.files": types.ModuleType("conan.tools.files"),
        "conan.tools.layout": types.ModuleType("conan.tools.layout")}
stub["conan"].ConanFile = ConanFile
stub["conan.tools.build"].check_min_cppstd = lambda *a: None
stub["conan.tools.files"].copy = copy
stub["conan.tools.layout"].basic_layout = lambda *a, **k: None
sys.modules.update(stub)

ns = {}
exec(compile(source, "conanfile.py", "exec"), ns)
recipe = next(v for v in ns.values() if isinstance(v, type) and issubclass(v, ConanFile) and v is not ConanFile)
r = recipe()
r.source_folder, r.package_folder = str(repo), str(work / "package")
r.settings = types.SimpleNamespace(os="Linux")
r.cpp_info = CppInfo()
shutil.rmtree(work, ignore_errors=True)
r.package()
r.package_info()

pkg = work / "package"
need = ["licenses/LICENSE", "include/procpool/procpool.hpp", "include/procpool/detail/process_engine.hpp",
        "include/procpool/platform/posix.hpp"]
missing = [n for n in need if not (pkg / n).is_file()]
headers = sorted(p.relative_to(repo / "include") for p in (repo / "include").rglob("*.hpp"))
packaged = sorted(p.relative_to(pkg / "include") for p in (pkg / "include").rglob("*.hpp"))
props = r.cpp_info.properties
errors = []
if missing: errors.append(f"not packaged: {missing}")
if headers != packaged: errors.append("the packaged headers differ from include/")
if props.get("cmake_target_name") != "procpool::procpool": errors.append("cmake_target_name is not procpool::procpool")
if props.get("pkg_config_name") != "procpool": errors.append("pkg_config_name is not procpool")
if r.package_type != "header-library" or r.cpp_info.libdirs or r.cpp_info.bindirs: errors.append("not header-only")
for e in errors: print("conan-recipe-test:", e)
if errors: sys.exit(1)
print(f"conan-recipe-test: procpool {r.version}: {len(packaged)} headers and the licence packaged, "
      f"target {props['cmake_target_name']}, pkg-config {props['pkg_config_name']}")
