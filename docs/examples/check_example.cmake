# check_example.cmake -- run an example (ctest, label "example"): it must exit 0 and its last
# line must be "result: key=value ...". Exit code 2 means its data package is missing: the
# test is then reported as skipped (SKIP_REGULAR_EXPRESSION).
#   cmake -DEXAMPLE=path/to/example -DARGS="--epochs|1" -P check_example.cmake
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND ${EXAMPLE} ${_args} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out
                ERROR_VARIABLE _err)
message("${_out}${_err}")
if(_rc EQUAL 2)
  message("example skipped: data package missing")
  return()
endif()
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${EXAMPLE} exited with ${_rc}")
endif()
string(STRIP "${_out}" _out)
string(REGEX REPLACE "^.*\n" "" _last "${_out}")
if(NOT _last MATCHES "^result:( [a-z_]+=[-+0-9.eE]+)+$")
  message(FATAL_ERROR "the last line is not a result line: '${_last}'")
endif()
message("ok: ${_last}")
