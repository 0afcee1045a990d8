# Debian's OpenBLAS 0.3.21 and cmocka 1.1.5 ship no usable CMake packages: use pkg-config.
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: install it with 'apt-get install pkg-config'")
endif()
find_package(Threads REQUIRED)

pkg_check_modules(OPENBLAS QUIET IMPORTED_TARGET openblas)
if(NOT OPENBLAS_FOUND)
  message(FATAL_ERROR "OpenBLAS not found: install it with 'apt-get install libopenblas-dev'")
endif()

# zlib is optional: it lets the data set loaders read gzip-compressed files (MNIST .gz).
pkg_check_modules(ZLIB_PC QUIET IMPORTED_TARGET zlib)
option(BP_WITH_ZLIB "Read gzip-compressed data files (needs zlib)" ${ZLIB_PC_FOUND})
if(BP_WITH_ZLIB AND NOT ZLIB_PC_FOUND)
  message(FATAL_ERROR "BP_WITH_ZLIB is ON but zlib was not found: install it with "
                      "'apt-get install zlib1g-dev' (or configure with -DBP_WITH_ZLIB=OFF)")
endif()

if(BP_BUILD_TESTS AND BUILD_TESTING)
  pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
  if(NOT CMOCKA_FOUND)
    message(FATAL_ERROR "cmocka not found: install it with 'apt-get install libcmocka-dev' "
                        "(or configure with -DBP_BUILD_TESTS=OFF)")
  endif()
endif()
