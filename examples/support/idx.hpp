// SPDX-License-Identifier: Apache-2.0
// examples/support/idx.hpp: a reader for the IDX files of MNIST / Fashion-MNIST
// (yann.lecun.com/exdb/mnist), gzip-compressed or not (zlib's gzread reads both).
// Example code, not part of the library.
//
// Format: big-endian uint32 magic 0x00000803 (2051: unsigned bytes, 3 dimensions) for
// images, then count, rows, cols, then count * rows * cols pixels; magic 0x00000801
// (2049: unsigned bytes, 1 dimension) for labels, then count, then count bytes.
// Every problem (missing file, not gzip/IDX, wrong magic, wrong dimensions, truncated
// data, corrupt gzip stream, label out of range) throws std::runtime_error naming the file.
#ifndef LOWBIT_EXAMPLES_SUPPORT_IDX_HPP_
#define LOWBIT_EXAMPLES_SUPPORT_IDX_HPP_

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace example {
namespace idx {

/// count images of rows x cols unsigned bytes, row-major, image after image.
struct images {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
  const std::uint8_t* image(std::int64_t i) const { return pixels.data() + i * rows * cols; }
};

namespace detail {

/// zlib's message without the "<path>: " prefix gzerror() puts in front of it.
inline std::string zlib_message(const char* msg, const std::string& path) {
  std::string m = msg ? msg : "zlib error";
  if (m.rfind(path + ": ", 0) == 0) m = m.substr(path.size() + 2);
  return m;
}

class gz_file {
 public:
  explicit gz_file(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw std::runtime_error(path + ": file not found");
    if (!std::filesystem::is_regular_file(path, ec))
      throw std::runtime_error(path + ": not a regular file");
    f_ = gzopen(path.c_str(), "rb");
    if (f_ == nullptr) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    gzbuffer(f_, 1 << 17);
  }
  ~gz_file() {
    if (f_ != nullptr) gzclose(f_);
  }
  gz_file(const gz_file&) = delete;
  gz_file& operator=(const gz_file&) = delete;

  /// Reads exactly n bytes; `what` names them in the error message.
  void read(void* dst, std::size_t n, const std::string& what) {
    auto* p = static_cast<unsigned char*>(dst);
    std::size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(f_, p + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        throw std::runtime_error(path_ + ": corrupt gzip data while reading " + what + " (" +
                                 zlib_message(msg, path_) + ")");
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got != n) {
      int err = 0;
      const char* msg = gzerror(f_, &err);
      throw std::runtime_error(path_ + ": truncated file: expected " + std::to_string(n) +
                               " bytes of " + what + ", got " + std::to_string(got) +
                               (err != Z_OK ? " (" + zlib_message(msg, path_) + ")" : ""));
    }
    offset_ += n;
  }
  std::uint32_t read_be32(const std::string& what) {
    unsigned char b[4];
    read(b, 4, what);
    return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) |
           std::uint32_t(b[3]);
  }
  /// True when the stream has at least one more byte (trailing data).
  bool has_more() {
    unsigned char b;
    return gzread(f_, &b, 1) == 1;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
  std::size_t offset_ = 0;
};

inline std::string hex(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

}  // namespace detail

/// Reads the first `limit` images (all when limit <= 0) of an IDX3 image file and checks
/// that they are rows x cols (expect_rows/expect_cols; 0 accepts any size).
inline images read_images(const std::string& path, std::int64_t limit = 0,
                          std::int64_t expect_rows = 28, std::int64_t expect_cols = 28) {
  detail::gz_file f(path);
  const std::uint32_t magic = f.read_be32("the header (magic number)");
  if (magic != 2051)
    throw std::runtime_error(path + ": not an IDX image file: magic number " + detail::hex(magic) +
                             " (" + std::to_string(magic) + "), expected 0x00000803 (2051)");
  images im;
  im.count = f.read_be32("the header (image count)");
  im.rows = f.read_be32("the header (rows)");
  im.cols = f.read_be32("the header (columns)");
  if ((expect_rows && im.rows != expect_rows) || (expect_cols && im.cols != expect_cols))
    throw std::runtime_error(path + ": images are " + std::to_string(im.rows) + "x" +
                             std::to_string(im.cols) + ", expected " + std::to_string(expect_rows) +
                             "x" + std::to_string(expect_cols));
  if (im.count <= 0 || im.count > 100000000 || im.rows <= 0 || im.cols <= 0 ||
      im.rows * im.cols > (1 << 20))
    throw std::runtime_error(path + ": implausible header: " + std::to_string(im.count) +
                             " images of " + std::to_string(im.rows) + "x" +
                             std::to_string(im.cols));
  const bool all = limit <= 0 || limit >= im.count;
  if (!all) im.count = limit;
  im.pixels.resize(static_cast<std::size_t>(im.count * im.rows * im.cols));
  f.read(im.pixels.data(), im.pixels.size(), std::to_string(im.count) + " images");
  if (all && f.has_more())
    throw std::runtime_error(path + ": trailing data after the " + std::to_string(im.count) +
                             " images the header declares");
  return im;
}

/// Reads the first `limit` labels (all when limit <= 0) of an IDX1 label file and checks
/// that each is < num_classes.
inline std::vector<std::uint8_t> read_labels(const std::string& path, std::int64_t limit = 0,
                                             int num_classes = 10) {
  detail::gz_file f(path);
  const std::uint32_t magic = f.read_be32("the header (magic number)");
  if (magic != 2049)
    throw std::runtime_error(path + ": not an IDX label file: magic number " + detail::hex(magic) +
                             " (" + std::to_string(magic) + "), expected 0x00000801 (2049)");
  std::int64_t count = f.read_be32("the header (label count)");
  if (count <= 0 || count > 100000000)
    throw std::runtime_error(path + ": implausible label count " + std::to_string(count));
  const bool all = limit <= 0 || limit >= count;
  if (!all) count = limit;
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(count));
  f.read(labels.data(), labels.size(), std::to_string(count) + " labels");
  if (all && f.has_more())
    throw std::runtime_error(path + ": trailing data after the " + std::to_string(count) +
                             " labels the header declares");
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= num_classes)
      throw std::runtime_error(path + ": label " + std::to_string(i) + " is " +
                               std::to_string(labels[i]) + ", expected 0.." +
                               std::to_string(num_classes - 1));
  return labels;
}

}  // namespace idx
}  // namespace example

#endif  // LOWBIT_EXAMPLES_SUPPORT_IDX_HPP_
