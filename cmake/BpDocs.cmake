# API reference: `cmake --build <build> --target docs` runs Doxygen on include/backprop.h
# (docs/Doxyfile.in) into <build>/docs/api/html. Any Doxygen warning fails the target: an
# undocumented public function, parameter or return value is a build error. Top level only: a
# parent project that adds backprop with add_subdirectory() may have its own `docs` target.
if(NOT PROJECT_IS_TOP_LEVEL)
  return()
endif()
find_package(Doxygen QUIET)
set(BP_DOCS_OUTPUT "${PROJECT_BINARY_DIR}/docs/api")
if(DOXYGEN_EXECUTABLE)
  configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${BP_DOCS_OUTPUT}/Doxyfile" @ONLY)
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E remove -f "${BP_DOCS_OUTPUT}/warnings.log"
    COMMAND ${DOXYGEN_EXECUTABLE} "${BP_DOCS_OUTPUT}/Doxyfile"
    COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${BP_DOCS_OUTPUT}/html/index.html"
    WORKING_DIRECTORY "${BP_DOCS_OUTPUT}"
    DEPENDS "${PROJECT_SOURCE_DIR}/include/backprop.h" "${PROJECT_SOURCE_DIR}/docs/mainpage.dox"
            "${BP_DOCS_OUTPUT}/Doxyfile"
    COMMENT "Doxygen: API reference (fails on any undocumented item)"
    VERBATIM)
else()
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E echo "docs: doxygen not found (Debian: apt-get install doxygen)"
    COMMAND ${CMAKE_COMMAND} -E false
    VERBATIM)
endif()
