// SPDX-License-Identifier: Apache-2.0
// io/npy.hpp: a strict, hostile-input-safe reader and a writer for NumPy .npy files.
//
// Format (numpy/lib/format.py, NEP 1)
// -----------------------------------
//   bytes 0..5   magic "\x93NUMPY"
//   byte  6, 7   major, minor version: 1.0, 2.0 or 3.0 (3.0 = 2.0 with a UTF-8 header)
//   then         header length, little-endian uint16 (1.0) or uint32 (2.0, 3.0)
//   then         the header: a Python dict literal, padded with spaces and ended by '\n'
//                  {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   then         the raw array data, C order.
//
// What is read
// ------------
// Plain little-endian dtypes only:
//   '<f4' float  '<f8' double  '|u1' uint8  '|i1' int8  '|b1' bool (bytes 0/1)
//   '<i2' int16  '<u2' uint16  '<i4' int32  '<u4' uint32  '<i8' int64  '<u8' uint64
//   '<f2' half, kept as raw uint16 bit patterns (as<std::uint16_t>() reads it).
// One-byte types accept any byte-order character ('<', '>', '=', '|') and are stored
// as '|'; multi-byte types accept '<' and '=' (lowbit requires a little-endian host)
// and are stored as '<'. A big-endian descr ('>f4'), a structured dtype (a list) or
// any other type is an error. fortran_order True is accepted only for 0-D and 1-D
// arrays, whose bytes are the same in either order.
//
// Hostile input
// -------------
// Every malformed file gives a lowbit::error naming the file (or the caller's label)
// and the byte offset of the problem, never a crash or an allocation larger than the
// file: the header length, the header dict (parsed by a small strict parser of the
// Python literal, not evaluated), the dims (non-negative decimal integers, at most
// 64 of them, whose product times the item size must not overflow) and the data
// size (compared with what the file really holds BEFORE allocating) are all checked.
// Header keys must be exactly 'descr', 'fortran_order' and 'shape', as numpy demands.
//
// Trailing bytes after the data are an ERROR by default: a file written by np.save
// or lowbit for one array never has them, and they usually mean the header's shape
// or dtype does not describe the data (a silent truncation otherwise). Set
// npy_read_options::allow_trailing_bytes to read the first array of a stream that
// holds several (np.save called repeatedly on one file object).
//
// Writing produces exactly what numpy 1.24's np.save writes: version 1.0 (2.0 when
// the header exceeds 65535 bytes), the dict above, padding so the data starts at a
// multiple of 64 bytes.
#ifndef LOWBIT_IO_NPY_HPP_
#define LOWBIT_IO_NPY_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/view.hpp"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lowbit/io/npy.hpp supports little-endian hosts only"
#endif

LOWBIT_BEGIN_NAMESPACE
namespace io {

/// The descr string numpy uses for T (canonical form, as stored in npy_array::descr).
template <class T>
constexpr const char* npy_descr_of() noexcept {
  using U = std::remove_cv_t<T>;
  static_assert(!std::is_same_v<U, char>, "plain char has no fixed signedness: use int8_t/uint8_t");
  static_assert(std::is_arithmetic_v<U>, "npy: T must be bool, an integer or float/double");
  if constexpr (std::is_same_v<U, bool>) {
    static_assert(sizeof(bool) == 1, "npy: bool must be one byte");
    return "|b1";
  } else if constexpr (std::is_floating_point_v<U>) {
    static_assert(std::is_same_v<U, float> || std::is_same_v<U, double>,
                  "npy: only float and double (use uint16_t for raw '<f2' half)");
    return std::is_same_v<U, float> ? "<f4" : "<f8";
  } else {
    static_assert(sizeof(U) == 1 || sizeof(U) == 2 || sizeof(U) == 4 || sizeof(U) == 8,
                  "npy: unsupported integer size");
    constexpr bool s = std::is_signed_v<U>;
    switch (sizeof(U)) {
      case 1:
        return s ? "|i1" : "|u1";
      case 2:
        return s ? "<i2" : "<u2";
      case 4:
        return s ? "<i4" : "<u4";
      default:
        return s ? "<i8" : "<u8";
    }
  }
}

/// Options of parse_npy / read_npy.
struct npy_read_options {
  /// Accept bytes after the array data (they are ignored). Default: error.
  bool allow_trailing_bytes = false;
  /// Largest header accepted, in bytes (numpy's own loader defaults to 10000).
  std::size_t max_header_bytes = 65536;
};

/// One array read from (or to be written to) a .npy file. Data is C order.
struct npy_array {
  std::string descr;                 ///< canonical descr, e.g. "<f4", "|u1"
  std::vector<std::int64_t> shape;   ///< empty for a 0-D scalar
  std::vector<unsigned char> bytes;  ///< numel() * item_size() bytes

  /// Number of elements: the product of shape (1 for a 0-D array).
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  /// Bytes per element of descr (the digits after the type letter).
  std::size_t item_size() const;

  /// True if descr is T's descr (uint16_t also matches raw half '<f2').
  template <class T>
  bool holds() const noexcept {
    const char* want = npy_descr_of<T>();
    if (descr == want) return true;
    return std::is_same_v<std::remove_cv_t<T>, std::uint16_t> && descr == "<f2";
  }
  /// The data as T; throws if descr is not T's or bytes do not match the shape.
  /// (`bytes` comes from operator new, aligned for every supported T.)
  template <class T>
  const T* as() const {
    check_access(npy_descr_of<T>(), holds<T>(), sizeof(T));
    return reinterpret_cast<const T*>(bytes.data());
  }
  template <class T>
  T* as() {
    check_access(npy_descr_of<T>(), holds<T>(), sizeof(T));
    return reinterpret_cast<T*>(bytes.data());
  }
  /// A copy of the data as std::vector<T> (same type checks as as<T>()).
  template <class T>
  std::vector<T> to_vector() const {
    const T* p = as<T>();
    return std::vector<T>(p, p + numel());
  }
  /// A contiguous row-major view of the data with this array's shape.
  template <class T>
  tensor_view<const T> view() const {
    return tensor_view<const T>(as<T>(), shape);
  }

 private:
  inline void check_access(const char* want, bool ok, std::size_t size) const;
};

namespace npy_detail {

struct dtype_entry {
  const char* kind_size;  // descr without the byte-order character
  std::size_t size;
};

inline const dtype_entry* find_dtype(const std::string& kind_size) noexcept {
  static const dtype_entry table[] = {{"f4", 4}, {"f8", 8}, {"f2", 2}, {"u1", 1},
                                      {"i1", 1}, {"b1", 1}, {"i2", 2}, {"u2", 2},
                                      {"i4", 4}, {"u4", 4}, {"i8", 8}, {"u8", 8}};
  for (const auto& e : table)
    if (kind_size == e.kind_size) return &e;
  return nullptr;
}

inline const char* supported_list() noexcept {
  return "'<f4' '<f8' '<f2' '|u1' '|i1' '|b1' '<i2' '<u2' '<i4' '<u4' '<i8' '<u8'";
}

/// Canonical form of `descr`, or "" with `why` set when it is not supported.
inline std::string canonical_descr(const std::string& descr, std::string& why) {
  if (descr.size() < 3) {
    why = "unsupported dtype descr '" + descr + "' (supported: " + supported_list() + ")";
    return {};
  }
  const char order = descr[0];
  const dtype_entry* e = find_dtype(descr.substr(1));
  if (e == nullptr || (order != '<' && order != '>' && order != '|' && order != '=')) {
    why = "unsupported dtype descr '" + descr + "' (supported: " + supported_list() + ")";
    return {};
  }
  if (e->size == 1) return std::string("|") + e->kind_size;
  if (order == '>') {
    why = "big-endian dtype descr '" + descr +
          "' is not supported: lowbit reads and writes little-endian .npy files only";
    return {};
  }
  if (order == '|') {
    why = "dtype descr '" + descr + "' has no byte order ('|') but is a multi-byte type";
    return {};
  }
  return std::string("<") + e->kind_size;
}

inline std::string shape_repr(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

/// Element count and byte size of (shape, item size); false on overflow of int64.
/// Zero dims are skipped for the overflow test, so the result does not depend on
/// the order of the dims.
inline bool checked_sizes(const std::vector<std::int64_t>& shape, std::size_t item,
                          std::int64_t& numel, std::uint64_t& nbytes) noexcept {
  constexpr std::uint64_t kMax =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t nonzero_product = 1;
  bool any_zero = false;
  for (auto d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      any_zero = true;
      continue;
    }
    const auto ud = static_cast<std::uint64_t>(d);
    if (nonzero_product > kMax / ud) return false;
    nonzero_product *= ud;
  }
  if (nonzero_product > kMax / item) return false;
  numel = any_zero ? 0 : static_cast<std::int64_t>(nonzero_product);
  nbytes = static_cast<std::uint64_t>(numel) * item;
  return true;
}

/// What the preamble and the header dict say.
struct header_info {
  std::string descr;  // canonical
  std::size_t item_size = 0;
  std::vector<std::int64_t> shape;
  std::int64_t numel = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t data_bytes = 0;
};

/// A strict parser of numpy's header dict (a Python literal; never evaluated).
class header_parser {
 public:
  header_parser(const char* text, std::size_t size, std::uint64_t base, const std::string& what)
      : s_(text), n_(size), base_(base), what_(what) {}

  void parse(header_info& out) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    bool fortran = false;
    std::size_t descr_pos = 0, fortran_pos = 0;
    skip_ws();
    expect('{', "the header must start with '{'");
    skip_ws();
    while (!peek_is('}')) {
      const std::size_t key_pos = pos_;
      const std::string key = parse_string("a key string");
      skip_ws();
      expect(':', "expected ':' after the key");
      skip_ws();
      if (key == "descr") {
        if (have_descr) fail_at(key_pos, "duplicate key 'descr'");
        have_descr = true;
        descr_pos = pos_;
        if (peek_is('[')) fail_at(pos_, "structured dtype descr (a list) is not supported");
        const std::string raw = parse_string("a dtype string for 'descr'");
        std::string why;
        out.descr = canonical_descr(raw, why);
        if (out.descr.empty()) fail_at(descr_pos, why);
        out.item_size = find_dtype(out.descr.substr(1))->size;
      } else if (key == "fortran_order") {
        if (have_fortran) fail_at(key_pos, "duplicate key 'fortran_order'");
        have_fortran = true;
        fortran_pos = pos_;
        const std::string tok = token();
        if (tok == "True") {
          fortran = true;
        } else if (tok == "False") {
          fortran = false;
        } else {
          fail_at(fortran_pos, "'fortran_order' must be True or False, got '" + tok + "'");
        }
      } else if (key == "shape") {
        if (have_shape) fail_at(key_pos, "duplicate key 'shape'");
        have_shape = true;
        parse_shape(out.shape);
      } else {
        fail_at(key_pos, "unexpected key '" + key +
                             "' (a .npy header has exactly 'descr', 'fortran_order', 'shape')");
      }
      skip_ws();
      if (peek_is(',')) {
        ++pos_;
        skip_ws();
      } else if (!peek_is('}')) {
        fail_at(pos_, "expected ',' or '}' after the value of '" + key + "'");
      }
    }
    ++pos_;  // '}'
    for (; pos_ < n_; ++pos_) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
        fail_at(pos_, "unexpected character after the closing '}' of the header dict");
    }
    if (!have_descr) fail_at(n_, "missing key 'descr'");
    if (!have_fortran) fail_at(n_, "missing key 'fortran_order'");
    if (!have_shape) fail_at(n_, "missing key 'shape'");
    if (fortran && out.shape.size() > 1)
      fail_at(fortran_pos,
              "fortran_order True is supported for 0-D and 1-D arrays only, got shape " +
                  shape_repr(out.shape));
    if (!checked_sizes(out.shape, out.item_size, out.numel, out.data_bytes))
      fail_at(shape_pos_, "shape " + shape_repr(out.shape) + " of '" + out.descr +
                              "' overflows: the byte count exceeds 2^63 - 1");
  }

 private:
  [[noreturn]] void fail_at(std::size_t p, const std::string& msg) const {
    lowbit::detail::fail(what_, ": bad header at byte offset ", base_ + p, ": ", msg);
  }
  bool peek_is(char c) const noexcept { return pos_ < n_ && s_[pos_] == c; }
  void skip_ws() noexcept {
    while (pos_ < n_ &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c, const char* msg) {
    if (pos_ >= n_) fail_at(pos_, std::string(msg) + " (the header ends here)");
    if (s_[pos_] != c) fail_at(pos_, std::string(msg) + ", got " + describe(s_[pos_]));
    ++pos_;
  }
  static std::string describe(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
    static const char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
  }
  std::string parse_string(const char* what) {
    if (pos_ >= n_) fail_at(pos_, std::string("expected ") + what + " (the header ends here)");
    const char q = s_[pos_];
    if (q != '\'' && q != '"')
      fail_at(pos_, std::string("expected ") + what + ", got " + describe(q));
    const std::size_t start = ++pos_;
    while (pos_ < n_ && s_[pos_] != q) {
      if (s_[pos_] == '\\') fail_at(pos_, "escape sequences in header strings are not supported");
      if (s_[pos_] == '\n') break;
      ++pos_;
    }
    if (pos_ >= n_ || s_[pos_] != q) fail_at(start - 1, "unterminated string");
    return std::string(s_ + start, s_ + pos_++);
  }
  /// A run of identifier/number characters (possibly empty).
  std::string token() {
    const std::size_t start = pos_;
    while (pos_ < n_) {
      const char c = s_[pos_];
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      c == '_' || c == '.' || c == '+' || c == '-';
      if (!ok) break;
      ++pos_;
    }
    return std::string(s_ + start, s_ + pos_);
  }
  std::int64_t parse_dim() {
    const std::size_t start = pos_;
    const std::string tok = token();
    if (tok.empty())
      fail_at(start, std::string("expected a dimension in 'shape', got ") +
                         (pos_ < n_ ? describe(s_[pos_]) : std::string("the end of the header")));
    std::size_t i = 0;
    const bool negative = tok[0] == '-';
    if (negative) i = 1;
    std::size_t end = tok.size();
    if (end > i + 1 && (tok[end - 1] == 'L' || tok[end - 1] == 'l')) --end;  // Python 2 long
    if (i == end) fail_at(start, "dimension '" + tok + "' is not an integer");
    std::uint64_t v = 0;
    bool too_large = false;
    for (std::size_t k = i; k < end; ++k) {
      const char c = tok[k];
      if (c < '0' || c > '9') fail_at(start, "dimension '" + tok + "' is not an integer");
      const auto digit = static_cast<std::uint64_t>(c - '0');
      if (v > (static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - digit) / 10)
        too_large = true;
      else
        v = v * 10 + digit;
    }
    if (negative && (v != 0 || too_large)) fail_at(start, "negative dimension " + tok);
    if (too_large) fail_at(start, "dimension " + tok + " does not fit in int64");
    return static_cast<std::int64_t>(v);
  }
  void parse_shape(std::vector<std::int64_t>& shape) {
    constexpr std::size_t kMaxDims = 64;
    shape_pos_ = pos_;
    if (peek_is('[')) fail_at(pos_, "'shape' must be a tuple, got a list");
    expect('(', "'shape' must be a tuple");
    skip_ws();
    bool trailing_comma = false;
    while (!peek_is(')')) {
      if (shape.size() == kMaxDims) fail_at(pos_, "more than 64 dimensions in 'shape'");
      shape.push_back(parse_dim());
      skip_ws();
      trailing_comma = false;
      if (peek_is(',')) {
        ++pos_;
        trailing_comma = true;
        skip_ws();
      } else if (!peek_is(')')) {
        if (pos_ >= n_) fail_at(pos_, "unterminated 'shape' tuple");
        fail_at(pos_, "expected ',' or ')' in 'shape', got " + describe(s_[pos_]));
      }
    }
    ++pos_;  // ')'
    if (shape.size() == 1 && !trailing_comma)
      fail_at(shape_pos_, "'shape' (" + std::to_string(shape[0]) +
                              ") is not a tuple (a 1-tuple needs a trailing comma)");
  }

  const char* s_;
  std::size_t n_;
  std::uint64_t base_;
  const std::string& what_;
  std::size_t pos_ = 0;
  std::size_t shape_pos_ = 0;
};

inline std::uint32_t read_le(const unsigned char* p, int n) noexcept {
  std::uint32_t v = 0;
  for (int i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

/// Parses the preamble and header from `prefix` (the first `prefix_size` bytes of a
/// file of `total_size` bytes; prefix_size == min(total_size, what is needed) is
/// enough) and checks the data size against the file.
inline header_info parse_header(const unsigned char* prefix, std::size_t prefix_size,
                                std::uint64_t total_size, const std::string& what,
                                const npy_read_options& opts) {
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  const std::size_t m = prefix_size < 6 ? prefix_size : 6;
  bool magic_ok = true;  // (no memcmp: prefix may be null when prefix_size is 0)
  for (std::size_t i = 0; i < m; ++i) magic_ok = magic_ok && prefix[i] == magic[i];
  if (!magic_ok) {
    std::string got;
    static const char hex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < m; ++i) {
      if (i) got += ' ';
      got += hex[prefix[i] >> 4];
      got += hex[prefix[i] & 15];
    }
    lowbit::detail::fail(what,
                         ": not a .npy file: bad magic string at byte offset 0 (expected "
                         "93 4e 55 4d 50 59 = \"\\x93NUMPY\", got ",
                         got, ")");
  }
  if (total_size < 8)
    lowbit::detail::fail(what, ": truncated preamble: the file has ", total_size,
                         " bytes, the magic string and version need 8");
  const int major = prefix[6], minor = prefix[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    lowbit::detail::fail(what, ": unsupported .npy format version ", major, ".", minor,
                         " at byte offset 6 (supported: 1.0, 2.0, 3.0)");
  const int len_bytes = major == 1 ? 2 : 4;
  const std::size_t preamble = 8 + static_cast<std::size_t>(len_bytes);
  if (total_size < preamble)
    lowbit::detail::fail(what,
                         ": truncated preamble: the header length field at byte offset 8 "
                         "needs ",
                         len_bytes, " bytes, the file has ", total_size, " bytes in all");
  const std::uint64_t header_len = read_le(prefix + 8, len_bytes);
  if (header_len > opts.max_header_bytes)
    lowbit::detail::fail(what, ": header length ", header_len,
                         " (at byte offset 8) exceeds the "
                         "limit of ",
                         opts.max_header_bytes, " bytes");
  if (preamble + header_len > total_size)
    lowbit::detail::fail(what, ": header length ", header_len,
                         " at byte offset 8 runs past the "
                         "end of the file (the header would end at byte offset ",
                         preamble + header_len, ", the file has ", total_size, " bytes)");
  if (preamble + header_len > prefix_size)
    lowbit::detail::fail(what, ": internal error: header not fully read");
  header_info h;
  header_parser(reinterpret_cast<const char*>(prefix) + preamble,
                static_cast<std::size_t>(header_len), preamble, what)
      .parse(h);
  h.data_offset = preamble + header_len;
  const std::uint64_t remaining = total_size - h.data_offset;
  if (h.data_bytes > remaining)
    lowbit::detail::fail(what, ": data truncated: shape ", shape_repr(h.shape), " of '", h.descr,
                         "' needs ", h.data_bytes, " bytes at byte offset ", h.data_offset,
                         ", only ", remaining, " remain");
  if (h.data_bytes < remaining && !opts.allow_trailing_bytes)
    lowbit::detail::fail(what, ": ", remaining - h.data_bytes,
                         " trailing bytes after the array data (the data ends at byte offset ",
                         h.data_offset + h.data_bytes, ", the file has ", total_size, " bytes)");
  if (h.data_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::size_t>::max()))
    lowbit::detail::fail(what, ": array of ", h.data_bytes, " bytes does not fit in memory");
  return h;
}

/// Bools must be stored as 0 or 1 (anything else is not a valid C++ bool).
inline void check_bools(const std::vector<unsigned char>& bytes, std::uint64_t data_offset,
                        const std::string& what) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] > 1)
      lowbit::detail::fail(what, ": bool element ", i, " at byte offset ", data_offset + i,
                           " has value ", static_cast<int>(bytes[i]), " (must be 0 or 1)");
}

}  // namespace npy_detail

inline std::size_t npy_array::item_size() const {
  const npy_detail::dtype_entry* e =
      descr.size() >= 3 ? npy_detail::find_dtype(descr.substr(1)) : nullptr;
  if (e == nullptr) lowbit::detail::fail("npy_array: unsupported descr '", descr, "'");
  return e->size;
}

inline void npy_array::check_access(const char* want, bool ok, std::size_t size) const {
  if (!ok) lowbit::detail::fail("npy_array: holds '", descr, "', not '", want, "' as requested");
  std::int64_t n = 0;
  std::uint64_t nbytes = 0;
  if (!npy_detail::checked_sizes(shape, size, n, nbytes) || nbytes != bytes.size())
    lowbit::detail::fail("npy_array: ", bytes.size(), " bytes do not match shape ",
                         npy_detail::shape_repr(shape), " of '", descr, "'");
}

/// Parses a complete .npy image held in memory. `what_for_errors` starts every
/// error message (for example the file name).
inline npy_array parse_npy(const void* data, std::size_t size, const std::string& what_for_errors,
                           const npy_read_options& opts = {}) {
  if (data == nullptr && size != 0) lowbit::detail::fail(what_for_errors, ": null data pointer");
  const auto* p = static_cast<const unsigned char*>(data);
  static const unsigned char empty = 0;
  if (p == nullptr) p = &empty;
  const npy_detail::header_info h = npy_detail::parse_header(p, size, size, what_for_errors, opts);
  npy_array a;
  a.descr = h.descr;
  a.shape = h.shape;
  const auto off = static_cast<std::size_t>(h.data_offset);
  a.bytes.assign(p + off, p + off + static_cast<std::size_t>(h.data_bytes));
  if (a.descr == "|b1") npy_detail::check_bools(a.bytes, h.data_offset, what_for_errors);
  return a;
}

/// parse_npy over a byte vector.
inline npy_array parse_npy(const std::vector<unsigned char>& image,
                           const std::string& what_for_errors, const npy_read_options& opts = {}) {
  return parse_npy(image.data(), image.size(), what_for_errors, opts);
}

/// Reads a .npy file. Errors name the file and the byte offset of the problem.
inline npy_array read_npy(const std::string& path, const npy_read_options& opts = {}) {
  const std::string what = "read_npy: '" + path + "'";
  std::ifstream f(path, std::ios::binary);
  if (!f) lowbit::detail::fail(what, ": cannot open the file");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (!f || end < 0) lowbit::detail::fail(what, ": cannot determine the file size");
  const auto total = static_cast<std::uint64_t>(end);
  f.seekg(0, std::ios::beg);
  // Enough for the preamble and the largest header accepted, never more than the file.
  const std::uint64_t want = 12 + static_cast<std::uint64_t>(opts.max_header_bytes);
  std::vector<unsigned char> prefix(static_cast<std::size_t>(total < want ? total : want));
  if (!prefix.empty() &&
      !f.read(reinterpret_cast<char*>(prefix.data()), static_cast<std::streamsize>(prefix.size())))
    lowbit::detail::fail(what, ": read error in the first ", prefix.size(), " bytes");
  const npy_detail::header_info h =
      npy_detail::parse_header(prefix.data(), prefix.size(), total, what, opts);
  npy_array a;
  a.descr = h.descr;
  a.shape = h.shape;
  a.bytes.resize(static_cast<std::size_t>(h.data_bytes));  // checked against the file size
  f.seekg(static_cast<std::streamoff>(h.data_offset), std::ios::beg);
  if (!a.bytes.empty() && !f.read(reinterpret_cast<char*>(a.bytes.data()),
                                  static_cast<std::streamsize>(a.bytes.size())))
    lowbit::detail::fail(what, ": read error in the data at byte offset ", h.data_offset,
                         " (the file shrank while being read?)");
  if (a.descr == "|b1") npy_detail::check_bools(a.bytes, h.data_offset, what);
  return a;
}

/// The .npy image of `a` (version 1.0, or 2.0 for a header over 65535 bytes),
/// byte-identical to numpy's np.save. Throws if descr is unsupported or the bytes
/// do not match the shape.
inline std::vector<unsigned char> serialize_npy(const npy_array& a) {
  std::string why;
  const std::string descr = npy_detail::canonical_descr(a.descr, why);
  if (descr.empty()) lowbit::detail::fail("write_npy: ", why);
  for (std::size_t i = 0; i < a.shape.size(); ++i)
    if (a.shape[i] < 0)
      lowbit::detail::fail("write_npy: negative dimension ", a.shape[i], " at index ", i);
  if (a.shape.size() > 64) lowbit::detail::fail("write_npy: more than 64 dimensions");
  std::int64_t n = 0;
  std::uint64_t nbytes = 0;
  const std::size_t item = npy_detail::find_dtype(descr.substr(1))->size;
  if (!npy_detail::checked_sizes(a.shape, item, n, nbytes))
    lowbit::detail::fail("write_npy: shape ", npy_detail::shape_repr(a.shape), " overflows");
  if (nbytes != a.bytes.size())
    lowbit::detail::fail("write_npy: shape ", npy_detail::shape_repr(a.shape), " of '", descr,
                         "' needs ", nbytes, " bytes, got ", a.bytes.size());
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + npy_detail::shape_repr(a.shape) +
                       ", }";
  std::size_t preamble = 10;
  std::size_t padded = preamble + header.size() + 1;
  padded += (64 - padded % 64) % 64;
  if (padded - preamble > 65535) {
    preamble = 12;
    padded = preamble + header.size() + 1;
    padded += (64 - padded % 64) % 64;
  }
  header.append(padded - preamble - header.size() - 1, ' ');
  header += '\n';
  // Sized once and filled with memcpy (GCC 12's -Wstringop-overflow misfires on a
  // sequence of insert() calls after reserve() at -O2).
  std::vector<unsigned char> out(padded + a.bytes.size());
  const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  std::memcpy(out.data(), magic, 6);
  out[6] = preamble == 10 ? 1 : 2;
  out[7] = 0;
  const auto hl = static_cast<std::uint32_t>(header.size());
  for (std::size_t i = 0; i < preamble - 8; ++i)
    out[8 + i] = static_cast<unsigned char>(hl >> (8 * i));
  std::memcpy(out.data() + preamble, header.data(), header.size());
  if (!a.bytes.empty()) std::memcpy(out.data() + padded, a.bytes.data(), a.bytes.size());
  return out;
}

/// An npy_array holding a copy of `numel(shape)` elements of `data`.
template <class T>
npy_array make_npy_array(const std::vector<std::int64_t>& shape, const T* data) {
  npy_array a;
  a.descr = npy_descr_of<T>();
  a.shape = shape;
  std::int64_t n = 0;
  std::uint64_t nbytes = 0;
  if (!npy_detail::checked_sizes(shape, sizeof(T), n, nbytes))
    lowbit::detail::fail("write_npy: invalid shape ", npy_detail::shape_repr(shape));
  if (n > 0 && data == nullptr) lowbit::detail::fail("write_npy: null data for ", n, " elements");
  a.bytes.resize(static_cast<std::size_t>(nbytes));
  if (nbytes != 0) std::memcpy(a.bytes.data(), data, static_cast<std::size_t>(nbytes));
  return a;
}

/// Writes `a` to `path` (see serialize_npy).
inline void write_npy(const std::string& path, const npy_array& a) {
  const std::vector<unsigned char> img = serialize_npy(a);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) lowbit::detail::fail("write_npy: '", path, "': cannot open the file for writing");
  f.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  f.close();
  if (!f) lowbit::detail::fail("write_npy: '", path, "': write error");
}

/// Writes `numel(shape)` elements of `data` (C order) with T's descr.
template <class T>
void write_npy(const std::string& path, const std::vector<std::int64_t>& shape, const T* data) {
  write_npy(path, make_npy_array(shape, data));
}

}  // namespace io
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_IO_NPY_HPP_
