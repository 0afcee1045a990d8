# ctest onnx_torch_fresh: export the test models with the installed PyTorch into OUT, then
# run test_onnx on them (BP_ONNX_MODELS=OUT). Prints "skipped: PyTorch ..." when torch is
# missing (the test's SKIP_REGULAR_EXPRESSION).
execute_process(COMMAND "${PYTHON}" "${SCRIPT}" "${OUT}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 77)
  message("${out}")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make_models.py failed (${rc}):\n${out}\n${err}")
endif()
message("${out}")
set(ENV{BP_ONNX_MODELS} "${OUT}")
execute_process(COMMAND "${TEST}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "test_onnx on fresh PyTorch exports failed (${rc})")
endif()
