# Code style (STYLE.md, .clang-format): the `format` target rewrites the C and C++ sources of
# src/ include/ tests/ bench/ docs/examples/ with clang-format -i; the ctest test `format`
# (tests/format) checks them. Both run tests/format/format.cmake, which lists the files when it
# runs (git ls-files), not at configure time. clang-format 14 (Debian 12's `clang-format`) is
# the reference: another version may lay some constructs out differently. Top level only: a
# parent project has its own `format` target, if any.
if(NOT PROJECT_IS_TOP_LEVEL)
  return()
endif()
find_program(BP_CLANG_FORMAT NAMES clang-format-14 clang-format
             DOC "clang-format for the format target and test (version 14)")
find_package(Git QUIET)
if(BP_CLANG_FORMAT)
  execute_process(COMMAND "${BP_CLANG_FORMAT}" --version OUTPUT_VARIABLE _bp_cf_version
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  message(STATUS "backprop: ${BP_CLANG_FORMAT}: ${_bp_cf_version}")
  add_custom_target(format
    COMMAND "${CMAKE_COMMAND}" "-DCLANG_FORMAT=${BP_CLANG_FORMAT}" "-DSRC=${PROJECT_SOURCE_DIR}"
            "-DGIT=${GIT_EXECUTABLE}" -DMODE=fix -P "${PROJECT_SOURCE_DIR}/tests/format/format.cmake"
    COMMENT "clang-format -i on src/ include/ tests/ bench/ docs/examples/"
    VERBATIM)
else()
  add_custom_target(format
    COMMAND "${CMAKE_COMMAND}" -E echo "format: clang-format not found (Debian: apt-get install clang-format)"
    COMMAND "${CMAKE_COMMAND}" -E false
    VERBATIM)
endif()
