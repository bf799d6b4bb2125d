# SPDX-License-Identifier: Apache-2.0
# Debian's libxsimd-dev 8.1 exports INTERFACE_LINK_LIBRARIES "xtl" without calling
# find_dependency(xtl): every consumer that links xsimd then gets "-lxtl" and fails to
# link. xtl is only used by xsimd's optional xtl-complex support, which lowbit does not
# enable, so an empty imported target named xtl is a correct stand-in when the real
# one is not installed. Used by lowbit's own build and by the installed lowbitConfig.
if(TARGET xsimd AND NOT TARGET xtl)
  find_package(xtl QUIET CONFIG)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
