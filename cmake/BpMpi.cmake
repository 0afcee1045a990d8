# Optional MPI component (issue 9): libbackprop_mpi, CMake target backprop::mpi, header
# backprop_mpi.h, pkg-config module backprop-mpi (installed by BpInstall.cmake, in its own
# export set and install component, for find_package(backprop COMPONENTS mpi)). Built when
# MPI is found; libbackprop itself never links MPI. Included from the top-level
# CMakeLists.txt after the backprop target and before BpInstall.
find_package(MPI QUIET COMPONENTS C)
option(BP_WITH_MPI "Build libbackprop_mpi, data-parallel training over MPI (needs MPI)"
       ${MPI_C_FOUND})
if(NOT BP_WITH_MPI)
  message(STATUS "backprop: MPI component off (BP_WITH_MPI=OFF or no MPI found)")
  return()
endif()
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "BP_WITH_MPI is ON but no MPI was found: install it with "
                      "'apt-get install libopenmpi-dev openmpi-bin' (or -DBP_WITH_MPI=OFF)")
endif()
message(STATUS "backprop: MPI component on (MPI ${MPI_C_VERSION}, ${MPIEXEC_EXECUTABLE})")

add_library(backprop_mpi src/mpi/backprop_mpi.c)
add_library(backprop::mpi ALIAS backprop_mpi)
target_include_directories(backprop_mpi PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# Public: backprop_mpi.h includes mpi.h and backprop.h. Only the public API of libbackprop
# is used (the shared library exports nothing else).
target_link_libraries(backprop_mpi PUBLIC backprop MPI::MPI_C PRIVATE m)
target_compile_definitions(backprop_mpi PRIVATE BP_MPI_BUILDING_SHARED)
set_target_properties(backprop_mpi PROPERTIES
  EXPORT_NAME mpi
  C_STANDARD 11
  C_STANDARD_REQUIRED ON
  C_EXTENSIONS OFF
  C_VISIBILITY_PRESET hidden
  POSITION_INDEPENDENT_CODE ON
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR})
bp_target_warnings(backprop_mpi)
bp_target_sanitize(backprop_mpi)

# How tests and benchmarks launch N ranks. Open MPI refuses to run as root (CI does) and to
# start more ranks than cores (the CI machine has 2) unless told to.
execute_process(COMMAND "${MPIEXEC_EXECUTABLE}" --version OUTPUT_VARIABLE _bp_mpiexec_version
                ERROR_QUIET)
set(BP_MPIEXEC_FLAGS "")
if(_bp_mpiexec_version MATCHES "Open MPI|OpenRTE")
  set(BP_MPIEXEC_FLAGS --oversubscribe --allow-run-as-root)
endif()
set(BP_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OPENBLAS_NUM_THREADS=1)

if(BP_BUILD_TESTS AND BUILD_TESTING)
  add_subdirectory(tests/mpi)
endif()
