# SPDX-License-Identifier: Apache-2.0
# Smoke tests of examples/gpt2_generate.cpp. examples/CMakeLists.txt includes this file to
# declare the tests; each test runs this same file again as a script (cmake -P) that runs
# the example, checks its exit status, its output and the files it writes.
#
#   example.gpt2_generate.tokenizer  --encode "Once upon a time" must give 7454 2402 257 640
#                                    (and a harder string its reference ids), decoding back
#                                    to the input. Skipped when the tokenizer files are
#                                    missing, except under CI=true (the example fails then).
#   example.gpt2_generate.smoke      a 2-layer GPT-2 with a 512-token vocabulary written as
#                                    a synthetic HF-layout safetensors file, then FP32 / INT8
#                                    / INT4 generation of 8 tokens from it: table rows, the
#                                    checksum verification, the sanity checks, the files.
#   example.gpt2_generate.bad_input  missing and malformed weight files, out-of-vocabulary
#                                    prompt ids and unknown options fail with a message.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  set(_gpt2_script "${CMAKE_CURRENT_LIST_FILE}")
  set(_gpt2_dir "${CMAKE_CURRENT_BINARY_DIR}/gpt2_generate_test")
  foreach(_mode tokenizer smoke bad_input)
    add_test(NAME example.gpt2_generate.${_mode}
             COMMAND ${CMAKE_COMMAND} -DMODE=${_mode} -DEXE=$<TARGET_FILE:gpt2_generate>
                     -DDIR=${_gpt2_dir}/${_mode} -P ${_gpt2_script})
  endforeach()
  set_tests_properties(example.gpt2_generate.tokenizer PROPERTIES
    SKIP_REGULAR_EXPRESSION "gpt2_generate: SKIP:")
  set_tests_properties(example.gpt2_generate.smoke PROPERTIES TIMEOUT 300)
  return()
endif()

# ---- script mode: cmake -DMODE=... -DEXE=... -DDIR=... -P gpt2_generate.cmake ----------------

function(run_example)
  execute_process(COMMAND "${EXE}" ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  set(rc "${rc}" PARENT_SCOPE)
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

function(expect what text regex)
  if(NOT text MATCHES "${regex}")
    message(FATAL_ERROR "gpt2_generate test: ${what}: no match for '${regex}' in:\n${text}")
  endif()
endfunction()

file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")

if(MODE STREQUAL "tokenizer")
  run_example(--encode "Once upon a time")
  if(rc EQUAL 77)
    message("${err}")  # "gpt2_generate: SKIP: ..." marks the test skipped
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate --encode failed (${rc}):\n${out}\n${err}")
  endif()
  expect("GPT-2 ids of 'Once upon a time'" "${out}" "ids: 7454 2402 257 640\n")
  expect("decode round trip" "${out}" "decoded: \"Once upon a time\" \\(round trip ok\\)")
  # Reference ids from OpenAI's encoder.py algorithm (Python regex module) on the same files.
  run_example(--encode "Hello, world! It's 2024... isn't it?")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate --encode failed (${rc}):\n${out}\n${err}")
  endif()
  expect("GPT-2 ids of a harder string" "${out}"
         "ids: 15496 11 995 0 632 338 48609 986 2125 470 340 30\n")
  expect("decode round trip" "${out}" "\\(round trip ok\\)")
  message(STATUS "gpt2_generate tokenizer: ok")

elseif(MODE STREQUAL "smoke")
  set(model "${DIR}/gpt2_tiny.safetensors")
  run_example(--write-synthetic "${model}" --layers 2 --vocab 512)
  if(NOT rc EQUAL 0 OR NOT EXISTS "${model}")
    message(FATAL_ERROR "gpt2_generate --write-synthetic failed (${rc}):\n${out}\n${err}")
  endif()
  expect("synthetic file" "${out}" "wrote .*gpt2_tiny.safetensors: GPT-2 layout, 28 tensors")
  run_example(--model "${model}" --prompt-ids 1,2,3 --tokens 8 --out "${DIR}/results")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate failed (${rc}):\n${out}\n${err}")
  endif()
  expect("configuration" "${out}" "ISA: [a-z0-9_]+ \\(GEMM kernels\\), threads: 1")
  expect("configuration" "${out}" "2 layers, 12 heads, width 768, vocab 512")
  expect("synthetic label" "${out}" "SYNTHETIC weights")
  expect("checksum" "${out}" "weights verified \\(checksum [0-9a-f]+\\)")
  expect("table header" "${out}" "\\| variant +\\| weight MB +\\| peak RSS MB +\\|")
  # variant | weight MB | peak RSS MB | load s | ms/token | total s | CPU s | tokens/s |
  # weight GB/s | vs FP32
  set(num "[0-9]+\\.[0-9]+")
  set(cols8 "")  # CMake regexes have no {n}
  foreach(_i RANGE 1 8)
    string(APPEND cols8 "\\| ${num} +")
  endforeach()
  expect("FP32 row" "${out}" "\\| lowbit FP32[^|]*${cols8}\\| 1\\.00x")
  expect("INT8 row" "${out}"
         "\\| lowbit INT8[^|]*${cols8}\\| ${num}x +\\| (none|token [1-5] of 5) +\\| ${num}% +\\| ${num}")
  expect("INT4 row" "${out}"
         "\\| lowbit INT4[^|]*${cols8}\\| ${num}x +\\| (none|token [1-5] of 5) +\\| ${num}% +\\| ${num}")
  expect("reference rows" "${out}" "\\| ref: ggml gpt-2 q8_0, 1 thread +\\| - +\\| 151 ")
  expect("reference rows" "${out}" "\\| ref: article, GPU, bitsandbytes INT4 +\\| 149 ")
  expect("targets" "${out}" "targets apply to the full 124M model")
  expect("profile" "${out}" "\\| lm head +\\|")
  expect("sanity checks" "${out}" "sanity checks passed")
  foreach(f gpt2_generate.md gpt2_time.svg gpt2_memory.svg)
    if(NOT EXISTS "${DIR}/results/${f}")
      message(FATAL_ERROR "gpt2_generate did not write ${DIR}/results/${f}")
    endif()
  endforeach()
  file(READ "${DIR}/results/gpt2_generate.md" md)
  expect("markdown file" "${md}" "\\| lowbit INT4")
  file(READ "${DIR}/results/gpt2_time.svg" svg)
  expect("time chart" "${svg}" "^<svg .*lowbit INT8.*</svg>")
  message(STATUS "gpt2_generate smoke: ok")

elseif(MODE STREQUAL "bad_input")
  run_example(--model "${DIR}/missing.safetensors" --prompt-ids 1,2 --tokens 4)
  if(rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate accepted a missing model file")
  endif()
  expect("missing model" "${err}" "error: model file '.*missing.safetensors' not found")
  file(WRITE "${DIR}/bad.safetensors" "this is not a safetensors file at all")
  run_example(--model "${DIR}/bad.safetensors" --prompt-ids 1,2 --tokens 4)
  if(rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate accepted a malformed model file")
  endif()
  expect("malformed model" "${err}" "error: safetensors_file: '.*bad.safetensors'")
  run_example(--layers 1 --vocab 64 --prompt-ids 1,200 --tokens 4)
  if(rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate accepted a token id outside the vocabulary")
  endif()
  expect("prompt id check" "${err}" "prompt token 200 is outside the model's vocabulary of 64")
  run_example(--no-such-option)
  if(rc EQUAL 0)
    message(FATAL_ERROR "gpt2_generate accepted an unknown option")
  endif()
  expect("unknown option" "${err}" "unknown option --no-such-option")
  message(STATUS "gpt2_generate bad input: ok")

else()
  message(FATAL_ERROR "gpt2_generate.cmake: unknown MODE '${MODE}'")
endif()
