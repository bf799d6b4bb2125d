# SPDX-License-Identifier: Apache-2.0
# OpenBLAS (Debian libopenblas-dev, cmake/install_deps.sh --peers): the optional fp32
# peer of lowbit_bench and FP32 baseline of the examples; lowbit itself never links a
# BLAS. Sets LOWBIT_OPENBLAS_FOUND and, when found, the imported target
# lowbit_openblas (OpenBLAS's include folder and library).
# Debian puts OpenBLAS's cblas.h (the one with openblas_set_num_threads) in a folder per
# threading flavour; /usr/include/<arch>/cblas.h may be netlib's, so only those folders
# are searched.
find_library(LOWBIT_OPENBLAS_LIBRARY NAMES openblas
             PATH_SUFFIXES openblas-pthread openblas-openmp openblas-serial)
find_path(LOWBIT_OPENBLAS_INCLUDE_DIR NAMES cblas.h
          PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}
          PATH_SUFFIXES openblas-pthread openblas-openmp openblas-serial openblas
          NO_DEFAULT_PATH)
if(LOWBIT_OPENBLAS_LIBRARY AND LOWBIT_OPENBLAS_INCLUDE_DIR)
  set(LOWBIT_OPENBLAS_FOUND TRUE)
  if(NOT TARGET lowbit_openblas)
    add_library(lowbit_openblas UNKNOWN IMPORTED GLOBAL)
    set_target_properties(lowbit_openblas PROPERTIES
      IMPORTED_LOCATION "${LOWBIT_OPENBLAS_LIBRARY}"
      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${LOWBIT_OPENBLAS_INCLUDE_DIR}"
      INTERFACE_INCLUDE_DIRECTORIES "${LOWBIT_OPENBLAS_INCLUDE_DIR}")
  endif()
else()
  set(LOWBIT_OPENBLAS_FOUND FALSE)
endif()
