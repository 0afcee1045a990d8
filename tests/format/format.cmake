# format.cmake -- clang-format over the tree's C and C++ sources, in CMake script mode:
#
#   cmake -DCLANG_FORMAT=<clang-format> -DSRC=<source dir> -DMODE=check|fix [-DGIT=<git>]
#         -P tests/format/format.cmake
#
# Files: every *.c, *.h, *.cpp and *.hpp under src/ include/ tests/ bench/ docs/examples/,
# listed when the script runs, so that files added or removed since configure are seen: with
# git, `git ls-files` (tracked, plus untracked files that are not ignored); otherwise (a
# tarball) a glob. The style is the committed .clang-format.
#   check  clang-format --dry-run --Werror: fails, naming every file that differs
#   fix    clang-format -i: rewrites the files in place
# Run by the ctest test `format` (check) and the build target `format` (fix).
cmake_minimum_required(VERSION 3.20)

if(NOT CLANG_FORMAT OR NOT EXISTS "${CLANG_FORMAT}")
  message(FATAL_ERROR "format: no clang-format at '${CLANG_FORMAT}'")
endif()
if(NOT IS_DIRECTORY "${SRC}" OR NOT EXISTS "${SRC}/.clang-format")
  message(FATAL_ERROR "format: '${SRC}' is not a source tree with a .clang-format")
endif()
if(NOT MODE MATCHES "^(check|fix)$")
  message(FATAL_ERROR "format: MODE must be check or fix, not '${MODE}'")
endif()

set(_dirs src include tests bench docs/examples)
set(_files "")
set(_listed_by "glob")
if(GIT AND EXISTS "${GIT}")
  execute_process(COMMAND "${GIT}" rev-parse --show-toplevel WORKING_DIRECTORY "${SRC}"
                  OUTPUT_VARIABLE _top OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _rc ERROR_QUIET)
  if(_rc EQUAL 0)
    file(REAL_PATH "${_top}" _top)
    file(REAL_PATH "${SRC}" _src)
  endif()
  # Only when SRC is the top of its own work tree (not, say, a tarball unpacked inside one).
  if(_rc EQUAL 0 AND _top STREQUAL _src)
    set(_patterns "")
    foreach(_dir IN LISTS _dirs)
      foreach(_ext c h cpp hpp)
        list(APPEND _patterns "${_dir}/*.${_ext}")
      endforeach()
    endforeach()
    execute_process(COMMAND "${GIT}" -c core.quotepath=off ls-files --cached --others
                            --exclude-standard -- ${_patterns}
                    WORKING_DIRECTORY "${SRC}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "format: git ls-files failed (${_rc})")
    endif()
    set(_listed_by "git ls-files")
    string(REGEX REPLACE "\n$" "" _out "${_out}")
    string(REPLACE "\n" ";" _files "${_out}")
  endif()
endif()
if(_listed_by STREQUAL "glob")
  foreach(_dir IN LISTS _dirs)
    file(GLOB_RECURSE _found RELATIVE "${SRC}" "${SRC}/${_dir}/*.c" "${SRC}/${_dir}/*.h"
         "${SRC}/${_dir}/*.cpp" "${SRC}/${_dir}/*.hpp")
    list(APPEND _files ${_found})
  endforeach()
endif()
# A file deleted from the work tree but not yet from the index is not checked.
set(_existing "")
foreach(_f IN LISTS _files)
  if(EXISTS "${SRC}/${_f}")
    list(APPEND _existing "${_f}")
  endif()
endforeach()
list(REMOVE_DUPLICATES _existing)
list(SORT _existing)
list(LENGTH _existing _n)
if(_n EQUAL 0)
  message(FATAL_ERROR "format: no source files found under ${SRC} (${_listed_by})")
endif()

execute_process(COMMAND "${CLANG_FORMAT}" --version OUTPUT_VARIABLE _version
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(MODE STREQUAL "fix")
  execute_process(COMMAND "${CLANG_FORMAT}" -i --style=file ${_existing}
                  WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "format: ${CLANG_FORMAT} -i failed (${_rc})")
  endif()
  message(STATUS "format: ${_n} files formatted in place (${_version})")
  return()
endif()

execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror --style=file ${_existing}
                WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE _rc
                OUTPUT_VARIABLE _log ERROR_VARIABLE _log)
if(_rc EQUAL 0)
  message(STATUS "format: ${_n} files follow .clang-format (${_listed_by}; ${_version})")
  return()
endif()
# Each difference is reported as "<file>:<line>:<col>: error: code should be clang-formatted".
set(_bad "")
foreach(_f IN LISTS _existing)
  string(FIND "\n${_log}" "\n${_f}:" _at)
  if(NOT _at EQUAL -1)
    list(APPEND _bad "${_f}")
  endif()
endforeach()
list(LENGTH _bad _nbad)
string(SUBSTRING "${_log}" 0 4000 _head)
list(JOIN _bad "\n  " _bad_lines)
message(FATAL_ERROR "format: ${_nbad} of ${_n} files do not follow .clang-format "
                    "(${_version}):\n  ${_bad_lines}\nFirst differences:\n${_head}\n"
                    "Fix them with `cmake --build <build dir> --target format` "
                    "(clang-format -i on the same files).")
