# SPDX-License-Identifier: Apache-2.0
# Warning flags for lowbit's own tests, benchmarks and examples only (never on the
# interface target: consumers choose their own warnings).
function(lowbit_apply_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /WX)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Werror)
  endif()
endfunction()
