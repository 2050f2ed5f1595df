# SPDX-License-Identifier: BSL-1.0
# CPack: a Debian package of the installed files (headers, CMake package, procpool.pc, LICENSE).
#   cmake -S . -B build/package -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF
#   cpack --config build/package/CPackConfig.cmake -G DEB -B build/package/deb     (scripts/test.sh package)
# Installed to /usr: /usr/include/procpool, /usr/share/cmake/procpool, /usr/share/pkgconfig/procpool.pc.
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DOCDIR}")   # share/doc/procpool

set(CPACK_PACKAGE_NAME "libprocpool-dev")           # Debian's name for headers of library "procpool"
set(CPACK_PACKAGE_VENDOR "procpool")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "procpool maintainers <procpool@localhost>")
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_GENERATOR "DEB")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)            # libprocpool-dev_<version>_all.deb
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE "all")       # header-only: no machine code
set(CPACK_DEBIAN_PACKAGE_SECTION "libdevel")
# Boost >= 1.75 headers: Debian's libboost-dev, or a versioned libboost1.XX-dev as on Debian 12 (1.81).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libboost-dev (>= 1.75) | libboost1.81-dev | libboost1.83-dev")
include(CPack)
