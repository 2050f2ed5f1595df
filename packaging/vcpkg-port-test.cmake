# SPDX-License-Identifier: BSL-1.0
# Runs ports/procpool/portfile.cmake without vcpkg (which cannot be installed here): the vcpkg helpers it calls are
# defined below to do what vcpkg's do for this port (the source is this checkout, not a GitHub download), so the
# portfile's configure, install and fixup steps run for real and leave the layout vcpkg would package.
#   cmake -DPROCPOOL_SOURCE=<repo> -DWORK=<empty dir> -P packaging/vcpkg-port-test.cmake
# Not covered: vcpkg_from_github's download and SHA512, the dependency ports, vcpkg's post-build checks.
cmake_minimum_required(VERSION 3.25)
foreach(_v IN ITEMS PROCPOOL_SOURCE WORK)
    if(NOT DEFINED ${_v})
        message(FATAL_ERROR "vcpkg-port-test: pass -D${_v}=...")
    endif()
endforeach()

file(READ "${PROCPOOL_SOURCE}/ports/procpool/vcpkg.json" _manifest)
string(JSON VERSION GET "${_manifest}" version)
string(JSON PORT GET "${_manifest}" name)
set(CURRENT_PACKAGES_DIR "${WORK}/packages/${PORT}_x64-linux")
set(_build "${WORK}/buildtrees/${PORT}")
file(REMOVE_RECURSE "${WORK}/packages" "${WORK}/buildtrees")

function(_run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "vcpkg-port-test: failed (${_rc}): ${ARGN}")
    endif()
endfunction()

function(vcpkg_from_github)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "OUT_SOURCE_PATH;REPO;REF;SHA512;HEAD_REF" "")
    message(STATUS "vcpkg_from_github: ${arg_REPO}@${arg_REF} -> this checkout (${PROCPOOL_SOURCE})")
    set(${arg_OUT_SOURCE_PATH} "${PROCPOOL_SOURCE}" PARENT_SCOPE)
endfunction()

function(vcpkg_cmake_configure)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "SOURCE_PATH" "OPTIONS")
    _run("${CMAKE_COMMAND}" -S "${arg_SOURCE_PATH}" -B "${_build}" -G Ninja -DCMAKE_BUILD_TYPE=Release
         "-DCMAKE_INSTALL_PREFIX=${CURRENT_PACKAGES_DIR}" ${arg_OPTIONS})
endfunction()

function(vcpkg_cmake_install)
    _run("${CMAKE_COMMAND}" --build "${_build}")
    _run("${CMAKE_COMMAND}" --install "${_build}")
endfunction()

# vcpkg moves the CMake package to share/<port> and removes the folder it came from (and rewrites the prefix the
# targets file computes; this stand-in cannot, so it refuses a move: the portfile installs to share/<port> directly).
function(vcpkg_cmake_config_fixup)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "CONFIG_PATH" "")
    set(_from "${CURRENT_PACKAGES_DIR}/${arg_CONFIG_PATH}")
    set(_to "${CURRENT_PACKAGES_DIR}/share/${PORT}")
    if(NOT EXISTS "${_from}/${PORT}Config.cmake")
        message(FATAL_ERROR "vcpkg-port-test: no ${PORT}Config.cmake in ${_from}")
    endif()
    if(NOT _from STREQUAL _to)
        message(FATAL_ERROR "vcpkg-port-test: CONFIG_PATH ${arg_CONFIG_PATH} is not share/${PORT}")
    endif()
endfunction()

# vcpkg checks the .pc files it finds (lib/pkgconfig, share/pkgconfig); here: there must be one.
function(vcpkg_fixup_pkgconfig)
    if(NOT EXISTS "${CURRENT_PACKAGES_DIR}/share/pkgconfig/${PORT}.pc")
        message(FATAL_ERROR "vcpkg-port-test: no share/pkgconfig/${PORT}.pc")
    endif()
endfunction()

function(vcpkg_install_copyright)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "" "FILE_LIST")
    file(INSTALL ${arg_FILE_LIST} DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
    list(GET arg_FILE_LIST 0 _first)
    get_filename_component(_name "${_first}" NAME)
    file(RENAME "${CURRENT_PACKAGES_DIR}/share/${PORT}/${_name}" "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright")
endfunction()

include("${PROCPOOL_SOURCE}/ports/procpool/portfile.cmake")

foreach(_f IN ITEMS include/procpool/procpool.hpp share/${PORT}/${PORT}Config.cmake share/${PORT}/${PORT}Targets.cmake
                    share/${PORT}/copyright share/${PORT}/usage share/pkgconfig/${PORT}.pc)
    if(NOT EXISTS "${CURRENT_PACKAGES_DIR}/${_f}")
        message(FATAL_ERROR "vcpkg-port-test: the port did not install ${_f}")
    endif()
endforeach()
foreach(_d IN ITEMS debug lib share/doc share/cmake)
    if(EXISTS "${CURRENT_PACKAGES_DIR}/${_d}")
        message(FATAL_ERROR "vcpkg-port-test: ${_d} is left in the package (vcpkg's post-build checks refuse it)")
    endif()
endforeach()
message(STATUS "vcpkg-port-test: procpool ${VERSION} installed as vcpkg would package it: ${CURRENT_PACKAGES_DIR}")
