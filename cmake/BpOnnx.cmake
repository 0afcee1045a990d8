# Optional ONNX component (issue 16): libbackprop_onnx, CMake target backprop::onnx, header
# backprop_onnx.h. Needs protobuf-c (libprotobuf-c-dev, protobuf-c-compiler) and the ONNX
# schema (libonnx-dev installs /usr/include/onnx/onnx.proto). The C bindings are generated
# at build time by protoc-c from that schema (no copy of it or of generated code is
# committed). libbackprop itself never links protobuf-c. Included from the top-level
# CMakeLists.txt after the backprop target and before BpInstall.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PROTOBUF_C QUIET IMPORTED_TARGET libprotobuf-c)
endif()
find_program(BP_PROTOC_C NAMES protoc-c)
set(BP_ONNX_PROTO "/usr/include/onnx/onnx.proto" CACHE FILEPATH
    "The ONNX schema (onnx.proto, proto2) the ONNX component is generated from")

set(_bp_onnx_missing "")
if(NOT PROTOBUF_C_FOUND)
  list(APPEND _bp_onnx_missing "libprotobuf-c (apt-get install libprotobuf-c-dev)")
endif()
if(NOT BP_PROTOC_C)
  list(APPEND _bp_onnx_missing "protoc-c (apt-get install protobuf-c-compiler)")
endif()
if(NOT EXISTS "${BP_ONNX_PROTO}")
  list(APPEND _bp_onnx_missing "${BP_ONNX_PROTO} (apt-get install libonnx-dev)")
endif()
if(_bp_onnx_missing)
  set(_bp_onnx_default OFF)
else()
  set(_bp_onnx_default ON)
endif()
option(BP_WITH_ONNX "Build libbackprop_onnx, ONNX import and export (needs protobuf-c and \
onnx.proto)" ${_bp_onnx_default})
if(NOT BP_WITH_ONNX)
  if(_bp_onnx_missing)
    string(JOIN ", " _bp_onnx_why ${_bp_onnx_missing})
    message(STATUS "backprop: ONNX component off: missing ${_bp_onnx_why}; its tests are "
                   "not registered")
  else()
    message(STATUS "backprop: ONNX component off (BP_WITH_ONNX=OFF); its tests are not "
                   "registered")
  endif()
  return()
endif()
if(_bp_onnx_missing)
  string(JOIN ", " _bp_onnx_why ${_bp_onnx_missing})
  message(FATAL_ERROR "BP_WITH_ONNX is ON but these are missing: ${_bp_onnx_why} "
                      "(or configure with -DBP_WITH_ONNX=OFF)")
endif()
message(STATUS "backprop: ONNX component on (protobuf-c ${PROTOBUF_C_VERSION}, "
               "${BP_ONNX_PROTO})")

# protoc-c names its outputs after the .proto's path relative to --proto_path.
get_filename_component(_bp_onnx_proto_dir "${BP_ONNX_PROTO}" DIRECTORY)
set(_bp_onnx_gen "${PROJECT_BINARY_DIR}/onnx-gen")
add_custom_command(
  OUTPUT "${_bp_onnx_gen}/onnx.pb-c.c" "${_bp_onnx_gen}/onnx.pb-c.h"
  COMMAND ${CMAKE_COMMAND} -E make_directory "${_bp_onnx_gen}"
  COMMAND "${BP_PROTOC_C}" "--proto_path=${_bp_onnx_proto_dir}" "--c_out=${_bp_onnx_gen}"
          "${BP_ONNX_PROTO}"
  DEPENDS "${BP_ONNX_PROTO}"
  COMMENT "protoc-c: generating C bindings from ${BP_ONNX_PROTO}"
  VERBATIM)

# The generated code is compiled without our warnings (it is not ours); PIC so it can go
# into the shared library.
add_library(backprop_onnx_pb OBJECT "${_bp_onnx_gen}/onnx.pb-c.c")
target_include_directories(backprop_onnx_pb PUBLIC "${_bp_onnx_gen}")
target_link_libraries(backprop_onnx_pb PUBLIC PkgConfig::PROTOBUF_C)
set_target_properties(backprop_onnx_pb PROPERTIES C_STANDARD 11 C_VISIBILITY_PRESET hidden
                                                  POSITION_INDEPENDENT_CODE ON)
bp_target_sanitize(backprop_onnx_pb)
if(BP_FUZZ)
  target_compile_options(backprop_onnx_pb PRIVATE -fsanitize=fuzzer-no-link)
endif()

set(BP_ONNX_SOURCES
    src/onnx/onnx_common.c
    src/onnx/onnx_import.c
    src/onnx/onnx_import_shape.c
    src/onnx/onnx_import_walk.c
    src/onnx/onnx_import_map.c
    src/onnx/onnx_import_seq.c
    src/onnx/onnx_fold.c
    src/onnx/onnx_fold_ops.c
    src/onnx/onnx_export.c
    src/onnx/onnx_export_layer.c)
add_library(backprop_onnx ${BP_ONNX_SOURCES} $<TARGET_OBJECTS:backprop_onnx_pb>)
add_library(backprop::onnx ALIAS backprop_onnx)
target_include_directories(backprop_onnx PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_include_directories(backprop_onnx PRIVATE "${_bp_onnx_gen}" src/onnx)
# Only the public API of libbackprop is used (the shared library exports nothing else).
target_link_libraries(backprop_onnx PUBLIC backprop PRIVATE PkgConfig::PROTOBUF_C m)
target_compile_definitions(backprop_onnx PRIVATE BP_ONNX_BUILDING_SHARED
                                                 _POSIX_C_SOURCE=200809L)
set_target_properties(backprop_onnx PROPERTIES
  EXPORT_NAME onnx
  C_STANDARD 11
  C_STANDARD_REQUIRED ON
  C_EXTENSIONS OFF
  C_VISIBILITY_PRESET hidden
  POSITION_INDEPENDENT_CODE ON
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR})
bp_target_warnings(backprop_onnx)
bp_target_sanitize(backprop_onnx)
if(BP_FUZZ)
  target_compile_options(backprop_onnx PRIVATE -fsanitize=fuzzer-no-link)
endif()

# Installed in its own export set, so that a distribution may split it from libbackprop:
# include(<prefix>/lib/cmake/backprop/backprop-onnx-targets.cmake) after find_package(backprop).
install(TARGETS backprop_onnx EXPORT backpropOnnxTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES include/backprop_onnx.h DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT backpropOnnxTargets NAMESPACE backprop:: FILE backprop-onnx-targets.cmake
        DESTINATION "${CMAKE_INSTALL_LIBDIR}/cmake/backprop")

if(BP_BUILD_TESTS AND BUILD_TESTING)
  add_subdirectory(tests/onnx)
endif()
# The converter example (docs/examples/onnx_convert.c) is built by docs/examples.
