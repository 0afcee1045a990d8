# Installation and packaging: headers, library, pkg-config file, CMake package (installed
# and build-tree). Included from the top-level CMakeLists.txt after the backprop target.
include(CMakePackageConfigHelpers)

set(BP_CMAKE_PACKAGE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/backprop")

install(TARGETS backprop EXPORT backpropTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES include/backprop.h include/backprop.hpp DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

# --- CMake package ----------------------------------------------------------------------
get_target_property(_bp_type backprop TYPE)
if(_bp_type STREQUAL "STATIC_LIBRARY")
  set(BP_CONFIG_STATIC ON)
else()
  set(BP_CONFIG_STATIC OFF)
endif()

install(EXPORT backpropTargets NAMESPACE backprop:: DESTINATION "${BP_CMAKE_PACKAGE_DIR}")
# The build tree is a usable package too: -Dbackprop_DIR=<build dir>.
export(EXPORT backpropTargets NAMESPACE backprop::
       FILE "${PROJECT_BINARY_DIR}/backpropTargets.cmake")

configure_package_config_file(cmake/backpropConfig.cmake.in
  "${PROJECT_BINARY_DIR}/cmake/backpropConfig.cmake"
  INSTALL_DESTINATION "${BP_CMAKE_PACKAGE_DIR}")
configure_package_config_file(cmake/backpropConfig.cmake.in
  "${PROJECT_BINARY_DIR}/backpropConfig.cmake"
  INSTALL_DESTINATION "${PROJECT_BINARY_DIR}"
  INSTALL_PREFIX "${PROJECT_BINARY_DIR}")
# 0.x: a minor release may break the ABI. find_package(backprop 0) accepts any 0.x,
# find_package(backprop 0.1) only 0.1.z (rules in the template).
configure_file(cmake/backpropConfigVersion.cmake.in
               "${PROJECT_BINARY_DIR}/backpropConfigVersion.cmake" @ONLY)
install(FILES
  "${PROJECT_BINARY_DIR}/cmake/backpropConfig.cmake"
  "${PROJECT_BINARY_DIR}/backpropConfigVersion.cmake"
  DESTINATION "${BP_CMAKE_PACKAGE_DIR}")

# --- pkg-config -----------------------------------------------------------------------------
# The prefix is substituted at install time, so `cmake --install --prefix P` yields a .pc
# file that points at P. libdir/includedir stay correct when CMAKE_INSTALL_* are absolute.
foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(BP_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(BP_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
# Libs.private, not Requires.private: pkg-config resolves Requires.private for every query,
# shared ones too, and fails where openblas.pc or zlib.pc is absent (systems that ship the
# libraries without them). A static consumer needs only the flags, which are those
# pkg-config gave here at configure time (--static: OpenBLAS's own dependencies included).
set(_bp_pc_private ${OPENBLAS_STATIC_LDFLAGS})
if(BP_WITH_ZLIB)
  list(APPEND _bp_pc_private ${ZLIB_PC_STATIC_LDFLAGS})
endif()
list(APPEND _bp_pc_private -lm -lpthread)
list(REMOVE_DUPLICATES _bp_pc_private)
list(JOIN _bp_pc_private " " BP_PC_LIBS_PRIVATE)
set(BP_PC_PREFIX "@CMAKE_INSTALL_PREFIX@") # left for the install-time pass below
configure_file(pkgconfig/backprop.pc.in "${PROJECT_BINARY_DIR}/pkgconfig/backprop.pc.stage"
               @ONLY)
install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/pkgconfig/backprop.pc.stage\"
                             \"${PROJECT_BINARY_DIR}/pkgconfig/backprop.pc\" @ONLY)")
install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/backprop.pc"
        DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# --- Optional MPI component (cmake/BpMpi.cmake): library, header, backprop-mpi.pc --------
# Its own export set and targets file (backpropMpiTargets.cmake), loaded only by
# find_package(backprop COMPONENTS mpi), and its own install component `mpi`
# (cmake --install build --component mpi): a distribution can ship it in a separate package,
# and a plain find_package(backprop) neither needs these files nor looks for MPI.
if(BP_WITH_MPI)
  install(TARGETS backprop_mpi EXPORT backpropMpiTargets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT mpi
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT mpi
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT mpi
    INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(FILES include/backprop_mpi.h DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
          COMPONENT mpi)
  install(EXPORT backpropMpiTargets NAMESPACE backprop:: DESTINATION "${BP_CMAKE_PACKAGE_DIR}"
          COMPONENT mpi)
  export(EXPORT backpropMpiTargets NAMESPACE backprop::
         FILE "${PROJECT_BINARY_DIR}/backpropMpiTargets.cmake")
  # MPI's own pkg-config module when there is one (Debian: mpi-c for Open MPI and MPICH),
  # else the flags CMake's FindMPI found.
  pkg_check_modules(MPI_PC QUIET mpi-c)
  if(NOT MPI_PC_FOUND)
    pkg_check_modules(MPI_PC QUIET ompi-c)
  endif()
  if(NOT MPI_PC_FOUND)
    pkg_check_modules(MPI_PC QUIET mpich)
  endif()
  set(BP_MPI_PC_REQUIRES "")
  set(BP_MPI_PC_CFLAGS "")
  set(BP_MPI_PC_LIBS "")
  if(MPI_PC_FOUND)
    set(BP_MPI_PC_REQUIRES ", ${MPI_PC_MODULE_NAME}")
  else()
    foreach(_dir IN LISTS MPI_C_INCLUDE_DIRS)
      string(APPEND BP_MPI_PC_CFLAGS " -I${_dir}")
    endforeach()
    foreach(_lib IN LISTS MPI_C_LIBRARIES)
      string(APPEND BP_MPI_PC_LIBS " ${_lib}")
    endforeach()
  endif()
  configure_file(pkgconfig/backprop-mpi.pc.in
                 "${PROJECT_BINARY_DIR}/pkgconfig/backprop-mpi.pc.stage" @ONLY)
  install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/pkgconfig/backprop-mpi.pc.stage\"
                               \"${PROJECT_BINARY_DIR}/pkgconfig/backprop-mpi.pc\" @ONLY)"
          COMPONENT mpi)
  install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/backprop-mpi.pc"
          DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig" COMPONENT mpi)
endif()
