# The command-line tool `backprop` (src/cli): an executable built on the public API only,
# linked to the library like any user program, installed to bin/ with its man page.
# Included from the top-level CMakeLists.txt; tests in tests/cli.
option(BP_BUILD_CLI "Build and install the command-line tool backprop (src/cli)"
       ${PROJECT_IS_TOP_LEVEL})
if(NOT BP_BUILD_CLI)
  return()
endif()

add_executable(backprop_cli
  src/cli/cli_main.c
  src/cli/cli_args.c
  src/cli/cli_data.c
  src/cli/cli_model.c
  src/cli/cli_pack.c
  src/cli/cli_train.c)
set_target_properties(backprop_cli PROPERTIES
  OUTPUT_NAME backprop
  C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF
  # Installed next to the library: find it through the relative RPATH $ORIGIN/../lib.
  INSTALL_RPATH "$<$<BOOL:${BUILD_SHARED_LIBS}>:$ORIGIN/../${CMAKE_INSTALL_LIBDIR}>")
target_compile_definitions(backprop_cli PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(backprop_cli PRIVATE backprop::backprop m)
bp_target_warnings(backprop_cli)
bp_target_sanitize(backprop_cli)

install(TARGETS backprop_cli RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
install(FILES docs/man/backprop.1 DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")

if(BP_BUILD_TESTS AND BUILD_TESTING)
  add_subdirectory(tests/cli)
endif()
