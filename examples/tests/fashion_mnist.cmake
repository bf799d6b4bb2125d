# SPDX-License-Identifier: Apache-2.0
# Smoke tests of examples/fashion_mnist.cpp (included by examples/CMakeLists.txt when tests
# are on). They read the Debian package dataset-fashion-mnist; without it the main test
# fails with the example's message naming the missing directory.
set(_fm_dir "${CMAKE_CURRENT_BINARY_DIR}/fashion_mnist_smoke")

# Tiny settings (well under 30 s in a Debug build): 200 training images, 1 epoch of batch
# 16, 500 test images, 100 calibration images, latency from 1 run at batch 1 and 3 at
# batch 16; trains afresh (--retrain) into a cache inside the build tree.
add_test(NAME example.fashion_mnist
  COMMAND fashion_mnist --train-limit 200 --test-limit 500 --epochs 1 --batch 16 --calib 100
          --reps 1 --latency-batch 16 --retrain --out "${_fm_dir}/out" --cache "${_fm_dir}/cache")
# Every row of the table, in order, then the final sanity lines (printed only when the
# FP32 accuracy is above chance and no INT8 row but entropy-KL, which clips by design, is
# more than 10 pp below FP32).
set_tests_properties(example.fashion_mnist PROPERTIES
  PASS_REGULAR_EXPRESSION
  "\\| model +\\| test accuracy +\\| drop vs FP32 \\(pp\\) +\\| target \\(drop\\) +\\| model bytes +\\| latency b=1 \\(us\\) +\\| latency b=16 \\(ms\\) +\\|.*\\| FP32 +\\| [0-9.]+ % .*\\| INT8 dynamic +\\| [0-9.]+ % .*\\| INT8 static min-max +\\| .*\\| INT8 static percentile +\\| .*\\| INT8 static histogram-L2 +\\| .*\\| INT8 static entropy-KL +\\| .*\\| INT4 weight-only g128 +\\| .*\\| INT4 weight-only g128 MSE +\\| .*\\| W4A8 g128 +\\| .*\\| W4A8 g128 MSE +\\| .*\\| QAT INT4 weight-only g128 +\\| .*\\| QAT W4A8 g128 +\\| .*fashion_mnist: fp32 accuracy 0\\.[0-9]+ \\(above chance: yes\\).*fashion_mnist: sanity checks passed"
  FAIL_REGULAR_EXPRESSION "sanity check FAILED;fashion_mnist: error"
  FIXTURES_SETUP fashion_mnist_cache
  TIMEOUT 120)

# A second run reuses both cached models (no training) and must say so.
add_test(NAME example.fashion_mnist.cached
  COMMAND fashion_mnist --train-limit 200 --test-limit 500 --epochs 1 --batch 16 --calib 100
          --reps 1 --latency-batch 16 --out "${_fm_dir}/out" --cache "${_fm_dir}/cache")
set_tests_properties(example.fashion_mnist.cached PROPERTIES
  FIXTURES_REQUIRED fashion_mnist_cache
  PASS_REGULAR_EXPRESSION "fp32 model: cached .*qat model: cached .*fashion_mnist: sanity checks passed"
  FAIL_REGULAR_EXPRESSION "fp32 model: training|qat model: fine-tuning|sanity check FAILED;fashion_mnist: error"
  TIMEOUT 120)

# Missing data: a clear message naming the directory and the package.
add_test(NAME example.fashion_mnist.missing_data
  COMMAND fashion_mnist --data "${_fm_dir}/no-such-dir" --out "${_fm_dir}/out-missing")
set_tests_properties(example.fashion_mnist.missing_data PROPERTIES
  PASS_REGULAR_EXPRESSION "fashion_mnist: error: data directory '[^']*no-such-dir' not found: install the Debian package dataset-fashion-mnist")

# Malformed data: a file that is not IDX is rejected with its name and the magic number.
file(MAKE_DIRECTORY "${_fm_dir}/bad-data")
foreach(_f t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz train-images-idx3-ubyte.gz
           train-labels-idx1-ubyte.gz)
  file(WRITE "${_fm_dir}/bad-data/${_f}" "this is not an IDX file\n")
endforeach()
add_test(NAME example.fashion_mnist.malformed_data
  COMMAND fashion_mnist --data "${_fm_dir}/bad-data" --out "${_fm_dir}/out-bad")
set_tests_properties(example.fashion_mnist.malformed_data PROPERTIES
  PASS_REGULAR_EXPRESSION "fashion_mnist: error: .*bad-data/t10k-images-idx3-ubyte.gz: not an IDX image file: magic number 0x74686973")
