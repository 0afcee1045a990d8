# API reference: `cmake --build <build> --target docs` runs Doxygen on include/backprop.h and
# include/backprop_mpi.h (docs/Doxyfile.in) into <build>/docs/api: HTML (html/index.html) and
# manual pages (man/man3: backprop.h.3, one page per function such as bp_net_fit.3, and
# backprop.3 for `man 3 backprop`). Any Doxygen warning fails the target: an undocumented
# public function, parameter or return value is a build error. (include/backprop.hpp is not
# in the reference yet: its members are not all documented.)
#
# `cmake --install` installs the reference when it has been built: HTML to
# <docdir>/html, the pages to <mandir>/man3. BP_BUILD_DOCS=ON builds it with the default
# target, so that a plain build-and-install includes it.
#
# Top level only: a parent project that adds backprop with add_subdirectory() may have its own
# `docs` target.
if(NOT PROJECT_IS_TOP_LEVEL)
  return()
endif()
find_package(Doxygen QUIET)
option(BP_BUILD_DOCS "Build the API reference (Doxygen) with the default target" OFF)
set(BP_DOCS_OUTPUT "${PROJECT_BINARY_DIR}/docs/api")
if(DOXYGEN_EXECUTABLE)
  configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${BP_DOCS_OUTPUT}/Doxyfile" @ONLY)
  if(BP_BUILD_DOCS)
    set(_bp_docs_all ALL)
  endif()
  add_custom_target(docs ${_bp_docs_all}
    COMMAND ${CMAKE_COMMAND} -E remove -f "${BP_DOCS_OUTPUT}/warnings.log"
    COMMAND ${CMAKE_COMMAND} -E remove_directory "${BP_DOCS_OUTPUT}/man"
    COMMAND ${DOXYGEN_EXECUTABLE} "${BP_DOCS_OUTPUT}/Doxyfile"
    # `man 3 backprop`: the page of the header under the library's name.
    COMMAND ${CMAKE_COMMAND} -E echo ".so man3/backprop.h.3" > "${BP_DOCS_OUTPUT}/man/man3/backprop.3"
    COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${BP_DOCS_OUTPUT}/html/index.html, ${BP_DOCS_OUTPUT}/man/man3"
    WORKING_DIRECTORY "${BP_DOCS_OUTPUT}"
    DEPENDS "${PROJECT_SOURCE_DIR}/include/backprop.h" "${PROJECT_SOURCE_DIR}/include/backprop_mpi.h"
            "${PROJECT_SOURCE_DIR}/docs/mainpage.dox" "${BP_DOCS_OUTPUT}/Doxyfile"
    COMMENT "Doxygen: API reference (fails on any undocumented item)")
  install(DIRECTORY "${BP_DOCS_OUTPUT}/html" DESTINATION "${CMAKE_INSTALL_DOCDIR}" OPTIONAL)
  install(DIRECTORY "${BP_DOCS_OUTPUT}/man/man3" DESTINATION "${CMAKE_INSTALL_MANDIR}" OPTIONAL)
else()
  if(BP_BUILD_DOCS)
    message(FATAL_ERROR "BP_BUILD_DOCS needs Doxygen (Debian: apt-get install doxygen)")
  endif()
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E echo "docs: doxygen not found (Debian: apt-get install doxygen)"
    COMMAND ${CMAKE_COMMAND} -E false
    VERBATIM)
endif()
