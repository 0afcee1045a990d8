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

if(BP_BUILD_TESTS AND BUILD_TESTING)
  pkg_check_modules(CMOCKA QUIET IMPORTED_TARGET cmocka)
  if(NOT CMOCKA_FOUND)
    message(FATAL_ERROR "cmocka not found: install it with 'apt-get install libcmocka-dev' "
                        "(or configure with -DBP_BUILD_TESTS=OFF)")
  endif()
endif()
