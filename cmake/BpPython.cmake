# The Python package `backprop` (src/python, a ctypes binding: nothing to compile).
# `cmake --install` copies it to <prefix>/share/backprop/python with that installation's
# library directory recorded in backprop/_config.py, so that `pip install
# <prefix>/share/backprop/python` finds exactly that library. Shared builds only (ctypes
# loads the shared library). Tests in tests/python, against the installed package.
get_target_property(_bp_py_type backprop TYPE)
if(NOT _bp_py_type STREQUAL "SHARED_LIBRARY")
  return()
endif()
option(BP_INSTALL_PYTHON "Install the Python package's sources to share/backprop/python"
       ${PROJECT_IS_TOP_LEVEL})
if(BP_INSTALL_PYTHON)
  set(BP_PYTHON_DEST "${CMAKE_INSTALL_DATADIR}/backprop/python")
  install(DIRECTORY src/python/ DESTINATION "${BP_PYTHON_DEST}"
          PATTERN "__pycache__" EXCLUDE PATTERN "build" EXCLUDE PATTERN "*.egg-info" EXCLUDE)
  # The prefix is known only at install time (cmake --install --prefix P).
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(_bp_py_libdir "${CMAKE_INSTALL_LIBDIR}")
  else()
    set(_bp_py_libdir "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}")
  endif()
  install(CODE "
    set(_bp_cfg \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${BP_PYTHON_DEST}/backprop/_config.py\")
    file(READ \"\${_bp_cfg}\" _bp_text)
    string(REPLACE \"\\nLIBDIR = None\\n\" \"\\nLIBDIR = \\\"${_bp_py_libdir}\\\"\\n\" _bp_text \"\${_bp_text}\")
    file(WRITE \"\${_bp_cfg}\" \"\${_bp_text}\")")
endif()

if(BP_BUILD_TESTS AND BUILD_TESTING AND BP_INSTALL_PYTHON)
  add_subdirectory(tests/python)
endif()
