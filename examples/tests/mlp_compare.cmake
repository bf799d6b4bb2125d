# SPDX-License-Identifier: Apache-2.0
# Smoke tests of examples/mlp_compare.cpp, included by examples/CMakeLists.txt when tests
# are on. This file is also the script of the weights round-trip test (cmake -P): the
# part below runs only in script mode.
#
#   example.mlp_compare.table              a small run (few repetitions, small timing batch,
#                                          no MSE search: fast in Debug): every row of the
#                                          table, the internal checks and --verify-roundtrip
#   example.mlp_compare.weights_roundtrip  --save-weights, then --weights (.safetensors and
#                                          a .npy directory) print the same FP32 checksum;
#                                          missing, malformed and mis-shaped weights fail
#                                          with exit status 2 and a message naming them
if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -DMLP_COMPARE=<exe> -DWORK_DIR=<dir> -P mlp_compare.cmake
  if(NOT MLP_COMPARE OR NOT WORK_DIR)
    message(FATAL_ERROR "usage: cmake -DMLP_COMPARE=<exe> -DWORK_DIR=<dir> -P ${CMAKE_SCRIPT_MODE_FILE}")
  endif()
  file(REMOVE_RECURSE "${WORK_DIR}")
  file(MAKE_DIRECTORY "${WORK_DIR}")
  # Only the FP32 row (its checksum is what is compared), one timed run per cell.
  set(_common --rows fp32 --reps 1 --timing-batch 4 --seed 11 --out "${WORK_DIR}/out")

  # _mlp_run(<expected exit status> <output variable> args...)
  function(_mlp_run expect out_var)
    execute_process(COMMAND "${MLP_COMPARE}" ${ARGN}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT "${rc}" STREQUAL "${expect}")
      message(FATAL_ERROR "mlp_compare ${ARGN}\nexited with '${rc}', expected ${expect}\n"
                          "stdout:\n${out}\nstderr:\n${err}")
    endif()
    set(${out_var} "${out}${err}" PARENT_SCOPE)
  endfunction()
  function(_mlp_checksum text out_var)
    string(REGEX MATCH "fp32 output checksum: [^\n]*" c "${text}")
    if(NOT c)
      message(FATAL_ERROR "no 'fp32 output checksum:' line in:\n${text}")
    endif()
    set(${out_var} "${c}" PARENT_SCOPE)
  endfunction()
  function(_mlp_expect text regex)
    if(NOT "${text}" MATCHES "${regex}")
      message(FATAL_ERROR "expected /${regex}/ in:\n${text}")
    endif()
  endfunction()

  # 1. Seeded weights, saved as .safetensors.
  _mlp_run(0 out1 ${_common} --save-weights "${WORK_DIR}/mlp.safetensors")
  _mlp_checksum("${out1}" sum1)
  # 2. The same weights read back (and saved again as a directory of .npy files).
  _mlp_run(0 out2 ${_common} --weights "${WORK_DIR}/mlp.safetensors"
           --save-weights "${WORK_DIR}/npy")
  _mlp_expect("${out2}" "weights: '[^\n]*mlp.safetensors' \\(safetensors")
  _mlp_checksum("${out2}" sum2)
  # 3. Read back from the .npy files.
  _mlp_run(0 out3 ${_common} --weights "${WORK_DIR}/npy")
  _mlp_expect("${out3}" "weights: '[^\n]*npy' \\(.npy files")
  _mlp_checksum("${out3}" sum3)
  if(NOT sum1 STREQUAL sum2 OR NOT sum1 STREQUAL sum3)
    message(FATAL_ERROR "FP32 outputs differ after the weights round trip:\n"
                        "  seeded:       ${sum1}\n  .safetensors: ${sum2}\n  .npy:         ${sum3}")
  endif()
  message(STATUS "same FP32 outputs from seeded, .safetensors and .npy weights: ${sum1}")

  # 4. Bad weights: exit status 2 and a message naming the problem.
  _mlp_run(2 bad1 --weights "${WORK_DIR}/does-not-exist.safetensors")
  _mlp_expect("${bad1}" "mlp_compare: error: --weights '[^\n]*does-not-exist.safetensors': no such")
  file(WRITE "${WORK_DIR}/garbage.safetensors" "this is not a safetensors file")
  _mlp_run(2 bad2 --weights "${WORK_DIR}/garbage.safetensors")
  _mlp_expect("${bad2}" "mlp_compare: error: safetensors_file: '[^\n]*garbage.safetensors'")
  configure_file("${WORK_DIR}/npy/0.weight.npy" "${WORK_DIR}/npy/4.bias.npy" COPYONLY)
  _mlp_run(2 bad3 --weights "${WORK_DIR}/npy")
  _mlp_expect("${bad3}" "tensor '4.bias' has shape \\[512, 768\\], expected \\[128\\]")
  file(REMOVE "${WORK_DIR}/npy/4.bias.npy")
  _mlp_run(2 bad4 --weights "${WORK_DIR}/npy")
  _mlp_expect("${bad4}" "missing 4.bias.npy")
  message(STATUS "malformed weights rejected with clear messages")
  return()
endif()

set(_mlp_dir "${CMAKE_CURRENT_BINARY_DIR}/mlp_compare_smoke")

add_test(NAME example.mlp_compare.table
         COMMAND mlp_compare --reps 3 --timing-batch 16 --calib-batches 2 --no-mse
                 --verify-roundtrip --out "${_mlp_dir}/table")
# PASS_REGULAR_EXPRESSION ignores the exit status, so the result line is part of it.
set_tests_properties(example.mlp_compare.table PROPERTIES
  PASS_REGULAR_EXPRESSION
  "\\| FP32 +\\|.*\\| dynamic INT8 +\\|.*\\| dynamic INT8 \\(PyTorch-compatible\\) +\\|.*\\| static INT8 \\(min-max\\) +\\|.*\\| static INT8 \\(histogram\\) +\\|.*\\| W4A8 g128 +\\|.*\\| weight-only INT4 g128 +\\|.*weights round trip: identical.*result: all checks passed"
  TIMEOUT 120)

add_test(NAME example.mlp_compare.weights_roundtrip
         COMMAND "${CMAKE_COMMAND}" "-DMLP_COMPARE=$<TARGET_FILE:mlp_compare>"
                 "-DWORK_DIR=${_mlp_dir}/roundtrip" -P "${CMAKE_CURRENT_LIST_FILE}")
set_tests_properties(example.mlp_compare.weights_roundtrip PROPERTIES TIMEOUT 120)
