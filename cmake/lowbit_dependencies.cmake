# SPDX-License-Identifier: Apache-2.0
# lowbit's dependencies (public: they appear in lowbit's headers). The core target
# needs Eigen and xsimd; lowbit::io also needs nlohmann-json.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xsimd 8.1 REQUIRED)
find_package(nlohmann_json 3 REQUIRED)  # lowbit::io: io/safetensors.hpp header parsing
include("${CMAKE_CURRENT_LIST_DIR}/lowbit_xsimd_workaround.cmake")
# xsimd 8.1 exports the plain target `xsimd`; newer releases add `xsimd::xsimd`.
if(TARGET xsimd::xsimd)
  set(LOWBIT_XSIMD_TARGET xsimd::xsimd)
else()
  set(LOWBIT_XSIMD_TARGET xsimd)
endif()
