# SPDX-License-Identifier: BSL-1.0
# vcpkg port of procpool (header-only). For an overlay: vcpkg install procpool --overlay-ports=<repo>/ports.
# REPO and SHA512 name the release archive of tag v${VERSION}: fill them in when the tag is published
# (vcpkg prints the SHA512 on the first install). packaging/vcpkg-port-test.cmake runs these steps with plain CMake.
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO procpool/procpool
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
)

set(VCPKG_BUILD_TYPE release) # header-only: one configuration is enough

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DPROCPOOL_BUILD_TESTS=OFF
        -DPROCPOOL_BUILD_EXAMPLES=OFF
        -DPROCPOOL_BUILD_BENCH=OFF
        -DPROCPOOL_INSTALL=ON
        -DPROCPOOL_INSTALL_CMAKEDIR=share/procpool  # where vcpkg wants it: the fixup has nothing to move
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/procpool)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib" "${CURRENT_PACKAGES_DIR}/share/doc")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
