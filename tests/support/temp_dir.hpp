// SPDX-License-Identifier: Apache-2.0
// support/temp_dir.hpp: a fresh directory under the system temp dir for file tests.
#ifndef LOWBIT_TESTS_SUPPORT_TEMP_DIR_HPP_
#define LOWBIT_TESTS_SUPPORT_TEMP_DIR_HPP_

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace lowbit_test {

/// Created with a random name prefixed by `prefix`, removed with its content at scope exit.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& prefix) {
    std::random_device rd;
    const auto tag = std::to_string(rd()) + "_" + std::to_string(rd());
    path = std::filesystem::temp_directory_path() / (prefix + tag);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace lowbit_test

#endif  // LOWBIT_TESTS_SUPPORT_TEMP_DIR_HPP_
