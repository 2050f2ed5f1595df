# SPDX-License-Identifier: BSL-1.0
# Conan 2 recipe of procpool (header-only): conan create . (from the repository's root).
# The version must equal config.hpp's (scripts/test.sh's version stage compares them).
from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout
import os


class ProcpoolConan(ConanFile):
    name = "procpool"
    version = "0.1.0"
    description = "Header-only C++20 pool of worker processes: Python's multiprocessing.Pool for C++"
    license = "BSL-1.0"
    topics = ("multiprocessing", "process-pool", "ipc", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # Boost.PFR only, as headers; Conan's boost package has it from 1.75.
        self.requires("boost/[>=1.75 <2]", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # The same names as the CMake package and the .pc file procpool installs itself.
        self.cpp_info.set_property("cmake_file_name", "procpool")
        self.cpp_info.set_property("cmake_target_name", "procpool::procpool")
        self.cpp_info.set_property("pkg_config_name", "procpool")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread", "dl"]
