# Warnings (STYLE.md §12) and sanitizers, applied per target, never globally.
function(bp_target_warnings target)
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
      -Wcast-qual -Wwrite-strings -Wdouble-promotion -Wformat=2 -Wvla -Wundef)
    if(BP_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

function(bp_target_sanitize target)
  if(BP_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${BP_SANITIZE} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${BP_SANITIZE})
    if(BP_SANITIZE MATCHES "thread")
      # ThreadSanitizer instruments the ifunc resolvers of the multi-versioned kernels, which
      # the dynamic loader runs before the TSan runtime is initialised (a crash at startup):
      # build the portable versions only.
      target_compile_definitions(${target} PRIVATE BP_NO_CLONES)
    endif()
  endif()
endfunction()
