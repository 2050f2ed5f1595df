// SPDX-License-Identifier: BSL-1.0
// The one source file of procpool's separate-compilation mode (PROCPOOL_SEPARATE_COMPILATION, defined for every
// file of the program): the CMake target procpool::compiled and Meson's procpool_compiled_dep build it; without
// them, add a .cpp with this line to your program.
#include <procpool/src.hpp>
