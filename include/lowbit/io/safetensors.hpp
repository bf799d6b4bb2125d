// SPDX-License-Identifier: Apache-2.0
// io/safetensors.hpp: a zero-copy, hostile-input-safe reader and a writer for .safetensors files.
//
// Format (github.com/huggingface/safetensors; its Rust crate is the reference)
// ---------------------------------------------------------------------------
//   bytes 0..7     N, the header length: a little-endian uint64
//   bytes 8..8+N   the header: UTF-8 JSON, one object, padded with trailing spaces
//                    {"__metadata__": {"format": "pt"},
//                     "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
//   then           the byte buffer; data_offsets [begin, end) count from its start.
// Tensor data is little-endian, C order. dtypes (bits per element): BOOL U8 I8 F8_E5M2 F8_E4M3
// F8_E8M0 (8), I16 U16 F16 BF16 (16), I32 U32 F32 (32), I64 U64 F64 C64 (64), and the sub-byte
// F4 (4), F6_E2M3 F6_E3M2 (6), whose tensors must still hold a whole number of bytes.
//
// What is validated, and why
// --------------------------
// A .safetensors file is usually downloaded from the internet, so every byte of it is
// hostile until checked. Every problem is a lowbit::error naming the file and, where it has
// one, the byte offset (a tensor's problems give the offset of its key in the header). Only
// the JSON header (at most the real file size) is allocated before the checks, never a size
// the file claims. Checked, in order:
//   - the file has the 8-byte length field; N <= 100'000'000 (the Rust crate's
//     MAX_HEADER_SIZE) and the header fits in the file;
//   - the header is valid JSON (nlohmann's message and byte offset are quoted) with no NUL
//     byte (nlohmann would stop there and ignore the rest) and no byte order mark, nested at most
//     64 deep, without duplicate keys at any level (JSON parsers silently keep one of two
//     duplicates, which would make two readers disagree about a file), and an object;
//   - "__metadata__" is an object of string values (null counts as empty, as in Rust);
//   - each other entry is an object with "dtype" (a known string), "shape" (an array of at
//     most 64 integers in [0, 2^63)) and "data_offsets" ([begin, end], integers,
//     begin <= end <= the buffer size); unknown extra keys are ignored, as in Rust;
//   - numel and the bit count never overflow int64 (zero dims do not hide an overflow of
//     the others), and end - begin == numel * element size exactly;
//   - sorted by offset, the tensors cover the buffer exactly: no overlap, no hole and no
//     trailing byte. The Rust crate rejects holes and trailing bytes too (InvalidOffset,
//     MetadataIncompleteBuffer), and it means no byte of an accepted file escapes the header's
//     description (nothing can be smuggled between tensors).
//
// Zero copy
// ---------
// safetensors_file maps the file read-only (POSIX mmap, MAP_PRIVATE) and hands out views into
// the mapping: bytes() always, view<T>() / view_f32() when the dtype is T's exactly and the
// data is aligned for T in memory (writers that pad the header to 8 bytes and order tensors by
// decreasing alignment, as the Rust crate and safetensors_writer with wide dtypes added first
// do, give aligned data). Otherwise to_f32() converts into a new vector. When mmap fails, or
// on non-POSIX systems, the file is read into memory instead. Views live as long as the
// safetensors_file. As with every mmap reader, another process truncating the file while it
// is mapped can make access fault (SIGBUS); pass safetensors_load::read to copy instead.
//
// Writing produces what the Rust crate writes: compact JSON, "__metadata__" first (when
// set), keys dtype / shape / data_offsets, spaces padding N to a multiple of 8. Tensors are
// laid out in insertion order; save() writes "<path>.tmp" and renames it over <path>.
//
// Endianness: little-endian hosts only (a compile-time error otherwise).
#ifndef LOWBIT_IO_SAFETENSORS_HPP_
#define LOWBIT_IO_SAFETENSORS_HPP_

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/view.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define LOWBIT_SAFETENSORS_POSIX 1
#else
#define LOWBIT_SAFETENSORS_POSIX 0
#endif

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lowbit/io/safetensors.hpp supports little-endian hosts only"
#endif

LOWBIT_BEGIN_NAMESPACE
namespace io {

/// The safetensors dtype of T: BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F32 or F64.
template <class T>
constexpr const char* safetensors_dtype_of() noexcept {
  using U = std::remove_cv_t<T>;
  static_assert(!std::is_same_v<U, char>, "plain char has no fixed signedness: use int8_t/uint8_t");
  static_assert(std::is_arithmetic_v<U>, "safetensors: T must be bool, an integer, float/double");
  if constexpr (std::is_same_v<U, bool>) {
    static_assert(sizeof(bool) == 1, "safetensors: bool must be one byte");
    return "BOOL";
  } else if constexpr (std::is_floating_point_v<U>) {
    static_assert(std::is_same_v<U, float> || std::is_same_v<U, double>,
                  "safetensors: only float and double (add F16/BF16 as raw bytes)");
    return std::is_same_v<U, float> ? "F32" : "F64";
  } else {
    static_assert(sizeof(U) == 1 || sizeof(U) == 2 || sizeof(U) == 4 || sizeof(U) == 8,
                  "safetensors: unsupported integer size");
    constexpr bool s = std::is_signed_v<U>;
    switch (sizeof(U)) {
      case 1:
        return s ? "I8" : "U8";
      case 2:
        return s ? "I16" : "U16";
      case 4:
        return s ? "I32" : "U32";
      default:
        return s ? "I64" : "U64";
    }
  }
}

/// What the header says about one tensor.
struct safetensors_tensor_info {
  std::string name;
  std::string dtype;                ///< as in the file, e.g. "F32", "BF16"
  std::vector<std::int64_t> shape;  ///< empty for a 0-D scalar
  std::uint64_t begin = 0;          ///< data_offsets[0], relative to the byte buffer
  std::uint64_t end = 0;            ///< data_offsets[1], relative to the byte buffer
  std::uint64_t file_offset = 0;    ///< absolute offset of the first byte in the file
  std::int64_t numel = 0;           ///< product of shape (1 for a scalar)
  unsigned bits = 0;                ///< bits per element of dtype

  std::uint64_t nbytes() const noexcept { return end - begin; }
};

/// How safetensors_file gets at the bytes of a file.
enum class safetensors_load {
  mmap,  ///< map the file (POSIX), falling back to `read` when mapping fails
  read   ///< read the whole file into memory
};

namespace safetensors_detail {

inline constexpr std::uint64_t kMaxHeaderBytes = 100000000;  // Rust crate's MAX_HEADER_SIZE
inline constexpr std::size_t kMaxRank = 64;
inline constexpr int kMaxNesting = 64;

enum class code {
  BOOL,
  U8,
  I8,
  E5M2,
  E4M3,
  E8M0,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  I64,
  U64,
  F64,
  C64,
  F4,
  F6_E2M3,
  F6_E3M2
};
struct dtype_desc {
  const char* name;
  unsigned bits;
  code c;
};

inline const dtype_desc* find_dtype(const std::string& s) noexcept {
  static const dtype_desc table[] = {
      {"BOOL", 8, code::BOOL},       {"U8", 8, code::U8},          {"I8", 8, code::I8},
      {"F8_E5M2", 8, code::E5M2},    {"F8_E4M3", 8, code::E4M3},   {"F8_E8M0", 8, code::E8M0},
      {"I16", 16, code::I16},        {"U16", 16, code::U16},       {"F16", 16, code::F16},
      {"BF16", 16, code::BF16},      {"I32", 32, code::I32},       {"U32", 32, code::U32},
      {"F32", 32, code::F32},        {"I64", 64, code::I64},       {"U64", 64, code::U64},
      {"F64", 64, code::F64},        {"C64", 64, code::C64},       {"F4", 4, code::F4},
      {"F6_E2M3", 6, code::F6_E2M3}, {"F6_E3M2", 6, code::F6_E3M2}};
  for (const auto& d : table)
    if (s == d.name) return &d;
  return nullptr;
}

inline const char* supported_dtypes() noexcept {
  return "BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 I64 U64 F64 C64 F4 "
         "F6_E2M3 F6_E3M2";
}

/// numel and bit count of (shape, bits); false when either exceeds 2^63 - 1. Zero dims are
/// skipped for the overflow test, so the answer does not depend on the order of the dims.
inline bool checked_size(const std::vector<std::int64_t>& shape, unsigned bits,
                         std::uint64_t& numel, std::uint64_t& nbits) noexcept {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t product = 1;
  bool any_zero = false;
  for (auto d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      any_zero = true;
      continue;
    }
    const auto ud = static_cast<std::uint64_t>(d);
    if (product > kMax / ud) return false;
    product *= ud;
  }
  if (bits == 0 || product > kMax / bits) return false;
  numel = any_zero ? 0 : product;
  nbits = numel * bits;
  return true;
}

inline std::string shape_repr(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

/// At most `limit` characters of `s` for an error message.
inline std::string clip(const std::string& s, std::size_t limit = 120) {
  return s.size() <= limit ? s : s.substr(0, limit) + "...";
}

inline std::string short_dump(const nlohmann::json& j) {
  return clip(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 60);
}

inline std::string errno_text(int err) { return std::generic_category().message(err); }

inline float bits_to_float(std::uint32_t b) noexcept {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

/// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN payloads).
inline float f16_to_f32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));       // inf, NaN
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));  // 15 -> 127
  if (mant == 0) return bits_to_float(sign);                                      // +-0
  std::uint32_t e = 113;  // subnormal mant * 2^-24: normalise (2^-14 has float exponent 113)
  while (!(mant & 0x400u)) {
    mant <<= 1;
    --e;
  }
  return bits_to_float(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

/// float8 e4m3fn (torch.float8_e4m3fn): bias 7, no infinities, S.1111.111 is NaN.
inline float e4m3_to_f32(std::uint8_t b) noexcept {
  const int e = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (e == 15 && m == 7)
    v = std::numeric_limits<float>::quiet_NaN();
  else if (e == 0)
    v = std::ldexp(static_cast<float>(m), -9);
  else
    v = std::ldexp(static_cast<float>(8 + m), e - 10);
  return (b & 0x80) ? -v : v;
}

template <class U>
U load(const std::uint8_t* p) noexcept {
  U v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Reads what the whole header parse needs: the file's bytes in [p, p + size).
struct parsed {
  std::uint64_t header_len = 0;
  std::vector<safetensors_tensor_info> tensors;  // sorted by offset
  std::map<std::string, std::string> metadata;
};

/// An input iterator over the header that publishes its position, so the parser callback
/// knows where each key ends (nlohmann reports positions only in its exceptions).
struct tracking_iterator {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  const char* p = nullptr;
  const char** track = nullptr;
  reference operator*() const noexcept { return *p; }
  tracking_iterator& operator++() noexcept {
    ++p;
    if (track != nullptr) *track = p;
    return *this;
  }
  tracking_iterator operator++(int) noexcept {
    tracking_iterator old = *this;
    ++*this;
    return old;
  }
  friend bool operator==(const tracking_iterator& a, const tracking_iterator& b) noexcept {
    return a.p == b.p;
  }
  friend bool operator!=(const tracking_iterator& a, const tracking_iterator& b) noexcept {
    return a.p != b.p;
  }
};

/// Parser callback state: nesting depth and the keys (with header offsets) of each open object.
struct key_tracker {
  const char* text;
  std::size_t n;
  const char* cur;
  const std::string& what;
  int depth = 0;
  std::vector<std::unordered_map<std::string, std::size_t>> open;
  std::unordered_map<std::string, std::size_t> top;  // the root object's keys

  std::size_t pos() const noexcept { return static_cast<std::size_t>(cur - text); }
  /// Header offset of the opening quote of the key whose closing quote was just read.
  std::size_t key_start() const noexcept {
    std::size_t q = pos();
    if (q == 0 || q > n) return 0;
    --q;  // the closing quote
    for (std::size_t i = q; i-- > 0;) {
      if (text[i] != '"') continue;
      std::size_t slashes = 0;
      while (slashes < i && text[i - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return i;
    }
    return 0;
  }
  bool on_event(nlohmann::json::parse_event_t ev, nlohmann::json& j) {
    using ev_t = nlohmann::json::parse_event_t;
    switch (ev) {
      case ev_t::object_start:
      case ev_t::array_start:
        if (++depth > kMaxNesting)
          lowbit::detail::fail(what, ": header nests JSON deeper than ", kMaxNesting,
                               " levels at byte offset ", 8 + pos() - 1);
        if (ev == ev_t::object_start) open.emplace_back();
        break;
      case ev_t::object_end:
        --depth;
        if (open.size() == 1) top = std::move(open.back());
        open.pop_back();
        break;
      case ev_t::array_end:
        --depth;
        break;
      case ev_t::key: {
        const std::string& k = j.get_ref<const std::string&>();
        const std::size_t at = key_start();
        const auto ins = open.back().emplace(k, at);
        if (!ins.second)
          lowbit::detail::fail(what, ": duplicate key '", clip(k), "' at byte offset ", 8 + at,
                               " (first at byte offset ", 8 + ins.first->second, ")",
                               open.size() == 1 ? ": tensor names must be unique" : "");
        break;
      }
      case ev_t::value:
        break;
    }
    return true;
  }
};

template <class... A>
[[noreturn]] void entry_fail(const std::string& what, const std::string& name, std::uint64_t at,
                             const A&... a) {
  lowbit::detail::fail(what, ": tensor '", clip(name), "' (header entry at byte offset ", at,
                       "): ", a...);
}

inline bool is_nonnegative_integer(const nlohmann::json& e) {
  return e.is_number_unsigned() || (e.is_number_integer() && e.get<std::int64_t>() >= 0);
}

inline void parse_metadata(const nlohmann::json& m, std::uint64_t at, const std::string& what,
                           std::map<std::string, std::string>& out) {
  if (m.is_null()) return;
  if (!m.is_object())
    lowbit::detail::fail(what, ": __metadata__ (header entry at byte offset ", at,
                         ") must be an object of strings, got ", m.type_name());
  for (auto it = m.cbegin(); it != m.cend(); ++it) {
    if (!it.value().is_string())
      lowbit::detail::fail(what, ": __metadata__ (header entry at byte offset ", at,
                           "): the value of key '", clip(it.key()), "' must be a string, got ",
                           it.value().type_name(), " ", short_dump(it.value()));
    out.emplace(it.key(), it.value().get<std::string>());
  }
}

inline safetensors_tensor_info parse_entry(const std::string& name, const nlohmann::json& v,
                                           std::uint64_t at, std::uint64_t data_start,
                                           std::uint64_t buffer, const std::string& what) {
  safetensors_tensor_info t;
  t.name = name;
  if (!v.is_object())
    entry_fail(what, name, at,
               "the entry must be an object with 'dtype', 'shape' and 'data_offsets', got ",
               v.type_name());
  const auto dt = v.find("dtype");
  if (dt == v.end()) entry_fail(what, name, at, "missing 'dtype'");
  if (!dt->is_string())
    entry_fail(what, name, at, "'dtype' must be a string, got ", dt->type_name(), " ",
               short_dump(*dt));
  t.dtype = dt->get<std::string>();
  const dtype_desc* d = find_dtype(t.dtype);
  if (d == nullptr)
    entry_fail(what, name, at, "unknown dtype '", clip(t.dtype),
               "' (supported: ", supported_dtypes(), ")");
  t.bits = d->bits;

  const auto sh = v.find("shape");
  if (sh == v.end()) entry_fail(what, name, at, "missing 'shape'");
  if (!sh->is_array())
    entry_fail(what, name, at, "'shape' must be an array of non-negative integers, got ",
               sh->type_name(), " ", short_dump(*sh));
  if (sh->size() > kMaxRank)
    entry_fail(what, name, at, "'shape' has ", sh->size(), " dimensions, more than ", kMaxRank);
  for (std::size_t i = 0; i < sh->size(); ++i) {
    const nlohmann::json& e = (*sh)[i];
    if (e.is_number_unsigned()) {
      const auto u = e.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        entry_fail(what, name, at, "dimension ", u, " at index ", i,
                   " of 'shape' exceeds 2^63 - 1");
      t.shape.push_back(static_cast<std::int64_t>(u));
    } else if (e.is_number_integer()) {
      const auto s = e.get<std::int64_t>();
      if (s < 0)
        entry_fail(what, name, at, "negative dimension ", s, " at index ", i, " of 'shape'");
      t.shape.push_back(s);
    } else {
      entry_fail(what, name, at, "dimension ", short_dump(e), " at index ", i,
                 " of 'shape' is not an integer");
    }
  }

  const auto of = v.find("data_offsets");
  if (of == v.end()) entry_fail(what, name, at, "missing 'data_offsets'");
  if (!of->is_array() || of->size() != 2)
    entry_fail(what, name, at, "'data_offsets' must be [begin, end], got ", short_dump(*of));
  if (!is_nonnegative_integer((*of)[0]) || !is_nonnegative_integer((*of)[1]))
    entry_fail(what, name, at, "'data_offsets' must hold two non-negative integers, got ",
               short_dump(*of));
  t.begin = (*of)[0].get<std::uint64_t>();
  t.end = (*of)[1].get<std::uint64_t>();
  if (t.begin > t.end)
    entry_fail(what, name, at, "data_offsets [", t.begin, ", ", t.end, "] has begin > end");
  if (t.end > buffer)
    entry_fail(what, name, at, "data_offsets [", t.begin, ", ", t.end,
               "] run past the end of the byte buffer (", buffer, " bytes from byte offset ",
               data_start, " to the end of the file)");

  std::uint64_t numel = 0, nbits = 0;
  if (!checked_size(t.shape, t.bits, numel, nbits))
    entry_fail(what, name, at, "shape ", shape_repr(t.shape), " of ", t.dtype,
               " overflows: the element or bit count exceeds 2^63 - 1");
  if (nbits % 8 != 0)
    entry_fail(what, name, at, "shape ", shape_repr(t.shape), " of ", t.dtype, " holds ", numel,
               " elements of ", t.bits, " bits, not a whole number of bytes");
  if (nbits / 8 != t.nbytes())
    entry_fail(what, name, at, "shape ", shape_repr(t.shape), " of ", t.dtype, " needs ", nbits / 8,
               " bytes, but data_offsets [", t.begin, ", ", t.end, "] span ", t.nbytes());
  t.numel = static_cast<std::int64_t>(numel);
  t.file_offset = data_start + t.begin;
  return t;
}

/// Validates a whole file image (see the top of this file for what is checked).
inline parsed parse_file(const std::uint8_t* p, std::uint64_t size, const std::string& what) {
  if (size < 8)
    lowbit::detail::fail(what, ": the file has ", size,
                         " bytes, fewer than the 8 of the header length field (not a "
                         "safetensors file)");
  const auto n = load<std::uint64_t>(p);  // little-endian host
  if (n > kMaxHeaderBytes)
    lowbit::detail::fail(what, ": header length ", n, " at byte offset 0 exceeds the limit of ",
                         kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    lowbit::detail::fail(what, ": header length ", n,
                         " at byte offset 0 runs past the end of the file (the header would "
                         "end at byte offset ",
                         8 + n, ", the file has ", size, " bytes)");
  const auto hn = static_cast<std::size_t>(n);
  const char* text = reinterpret_cast<const char*>(p + 8);
  // nlohmann stops at a NUL byte as if the input ended there, which would hide whatever
  // follows; valid JSON has none (not even inside strings), so reject them first.
  if (const void* z = std::memchr(text, 0, hn))
    lowbit::detail::fail(what, ": NUL byte at byte offset ",
                         8 + (static_cast<const char*>(z) - text),
                         " in the header (JSON text never contains one)");
  // nlohmann skips a UTF-8 byte order mark; serde_json (the reference) does not.
  if (hn >= 3 && std::memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    lowbit::detail::fail(what,
                         ": the header at byte offset 8 starts with a UTF-8 byte order "
                         "mark, which JSON text must not have");
  key_tracker tr{text, hn, text, what, 0, {}, {}};
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(tracking_iterator{text, &tr.cur},
                                 tracking_iterator{text + hn, nullptr},
                                 [&tr](int, nlohmann::json::parse_event_t ev, nlohmann::json& j) {
                                   return tr.on_event(ev, j);
                                 });
  } catch (const nlohmann::json::parse_error& e) {
    const std::size_t at = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, hn);
    lowbit::detail::fail(what, ": header is not valid JSON at byte offset ", 8 + at, ": ",
                         e.what());
  } catch (const nlohmann::json::exception& e) {
    lowbit::detail::fail(what, ": header is not valid JSON at byte offset ", 8 + tr.pos(), ": ",
                         e.what());
  }
  if (!root.is_object())
    lowbit::detail::fail(what, ": the header at byte offset 8 must be a JSON object, got ",
                         root.type_name());

  parsed out;
  out.header_len = n;
  const std::uint64_t data_start = 8 + n, buffer = size - data_start;
  out.tensors.reserve(root.size());
  for (auto it = root.cbegin(); it != root.cend(); ++it) {
    const auto k = tr.top.find(it.key());
    const std::uint64_t at = 8 + (k == tr.top.end() ? 0 : k->second);
    if (it.key() == "__metadata__")
      parse_metadata(it.value(), at, what, out.metadata);
    else
      out.tensors.push_back(parse_entry(it.key(), it.value(), at, data_start, buffer, what));
  }

  auto& ts = out.tensors;
  std::sort(ts.begin(), ts.end(), [](const auto& a, const auto& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  std::uint64_t pos = 0;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    if (t.begin < pos) {
      const auto& prev = ts[i - 1];
      lowbit::detail::fail(what, ": tensor '", clip(t.name), "' (data_offsets [", t.begin, ", ",
                           t.end, "]) overlaps tensor '", clip(prev.name), "' (data_offsets [",
                           prev.begin, ", ", prev.end, "])");
    }
    if (t.begin > pos)
      lowbit::detail::fail(what, ": the byte buffer has a hole of ", t.begin - pos,
                           " bytes (byte offsets ", data_start + pos, " to ", data_start + t.begin,
                           ") before tensor '", clip(t.name), "' (data_offsets [", t.begin, ", ",
                           t.end,
                           "]): tensors must cover the buffer contiguously, as the "
                           "reference implementation requires");
    pos = t.end;
  }
  if (pos != buffer)
    lowbit::detail::fail(what, ": ", buffer - pos, " bytes at byte offsets ", data_start + pos,
                         " to ", size,
                         " belong to no tensor: tensors must cover the buffer to the end of the "
                         "file, as the reference implementation requires");
  return out;
}

/// A read-only mapping of a whole file, unmapped on destruction.
struct file_mapping {
  const std::uint8_t* addr = nullptr;
  std::size_t len = 0;

  file_mapping() = default;
  file_mapping(const file_mapping&) = delete;
  file_mapping& operator=(const file_mapping&) = delete;
  ~file_mapping() { reset(); }
  void swap(file_mapping& o) noexcept {
    std::swap(addr, o.addr);
    std::swap(len, o.len);
  }
  void reset() noexcept {
#if LOWBIT_SAFETENSORS_POSIX
    if (addr != nullptr) ::munmap(const_cast<std::uint8_t*>(addr), len);
#endif
    addr = nullptr;
    len = 0;
  }
};

/// Maps (or reads) the file at `path`; sets `size` to its size.
inline void load_file(const std::string& path, bool use_mmap, const std::string& what,
                      file_mapping& map, std::vector<std::uint8_t>& owned, std::uint64_t& size) {
#if LOWBIT_SAFETENSORS_POSIX
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) lowbit::detail::fail(what, ": cannot open the file: ", errno_text(errno));
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    lowbit::detail::fail(what, ": cannot stat the file: ", errno_text(errno));
  if (!S_ISREG(st.st_mode)) lowbit::detail::fail(what, ": not a regular file");
  if (st.st_size < 0 ||
      static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max())
    lowbit::detail::fail(what, ": the file of ", st.st_size, " bytes does not fit in memory");
  size = static_cast<std::uint64_t>(st.st_size);
  const auto len = static_cast<std::size_t>(size);
  if (use_mmap && len >= 8) {
    void* a = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a != MAP_FAILED) {
      map.addr = static_cast<const std::uint8_t*>(a);
      map.len = len;
      return;
    }
  }
  owned.resize(len);  // the file's real size, never a size its content claims
  std::size_t got = 0;
  while (got < len) {
    const ::ssize_t r = ::read(fd, owned.data() + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      lowbit::detail::fail(what, ": read error at byte offset ", got, ": ", errno_text(errno));
    if (r == 0)
      lowbit::detail::fail(what, ": the file shrank while being read (", got, " of ", len,
                           " bytes)");
    got += static_cast<std::size_t>(r);
  }
#else
  (void)use_mmap;
  (void)map;
  std::ifstream f(path, std::ios::binary);
  if (!f) lowbit::detail::fail(what, ": cannot open the file");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (!f || end < 0) lowbit::detail::fail(what, ": cannot determine the file size");
  size = static_cast<std::uint64_t>(end);
  if (size > std::numeric_limits<std::size_t>::max())
    lowbit::detail::fail(what, ": the file of ", size, " bytes does not fit in memory");
  owned.resize(static_cast<std::size_t>(size));
  f.seekg(0, std::ios::beg);
  if (!owned.empty() &&
      !f.read(reinterpret_cast<char*>(owned.data()), static_cast<std::streamsize>(owned.size())))
    lowbit::detail::fail(what, ": read error");
#endif
}

}  // namespace safetensors_detail

/// A validated .safetensors file, mapped (or held) in memory. Move-only.
class safetensors_file {
 public:
  /// An empty object holding no file (also the state of a moved-from object).
  safetensors_file() = default;
  /// Opens, maps and validates `path`. Throws lowbit::error naming the file and the problem.
  explicit safetensors_file(const std::string& path, safetensors_load how = safetensors_load::mmap)
      : what_("safetensors_file: '" + path + "'") {
    safetensors_detail::load_file(path, how == safetensors_load::mmap, what_, map_, owned_, size_);
    init();
  }
  /// Validates an image held in memory and keeps it (zero-copy: views point into `image`'s
  /// buffer). `label` starts error messages.
  static safetensors_file from_memory(std::vector<std::uint8_t> image,
                                      const std::string& label = "<memory>") {
    safetensors_file f;
    f.what_ = "safetensors_file: '" + label + "'";
    f.owned_ = std::move(image);
    f.size_ = f.owned_.size();
    f.init();
    return f;
  }

  safetensors_file(safetensors_file&& o) noexcept { swap(o); }
  safetensors_file& operator=(safetensors_file&& o) noexcept {
    safetensors_file t(std::move(o));
    swap(t);
    return *this;
  }
  safetensors_file(const safetensors_file&) = delete;
  safetensors_file& operator=(const safetensors_file&) = delete;
  ~safetensors_file() = default;  // file_mapping unmaps

  void swap(safetensors_file& o) noexcept {
    map_.swap(o.map_);
    owned_.swap(o.owned_);
    what_.swap(o.what_);
    std::swap(size_, o.size_);
    std::swap(header_len_, o.header_len_);
    tensors_.swap(o.tensors_);
    index_.swap(o.index_);
    metadata_.swap(o.metadata_);
  }

  std::uint64_t file_size() const noexcept { return size_; }
  std::uint64_t header_size() const noexcept { return header_len_; }  ///< N
  std::uint64_t data_offset() const noexcept { return size_ ? 8 + header_len_ : 0; }
  bool is_mapped() const noexcept { return map_.addr != nullptr; }
  /// The whole file image.
  span<const std::uint8_t> file_bytes() const noexcept {
    return span<const std::uint8_t>(base(), static_cast<std::size_t>(size_));
  }

  std::size_t size() const noexcept { return tensors_.size(); }  ///< number of tensors
  /// Tensor names in file order (by data offset; ties by name).
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    v.reserve(tensors_.size());
    for (const auto& t : tensors_) v.push_back(t.name);
    return v;
  }
  /// All tensors' information in file order.
  const std::vector<safetensors_tensor_info>& tensors() const noexcept { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const safetensors_tensor_info& info(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      lowbit::detail::fail(what_, ": no tensor named '", safetensors_detail::clip(name), "'");
    return tensors_[it->second];
  }
  /// "__metadata__" (empty when absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// The tensor's raw little-endian bytes, zero-copy.
  span<const std::uint8_t> bytes(const std::string& name) const {
    const auto& t = info(name);
    return span<const std::uint8_t>(base() + t.file_offset, static_cast<std::size_t>(t.nbytes()));
  }

  /// A zero-copy view of a tensor whose dtype is T's exactly (safetensors_dtype_of<T>) and
  /// whose data is aligned for T in memory; throws otherwise.
  template <class T>
  tensor_view<const T> view(const std::string& name) const {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, bool>,
                  "a BOOL byte may hold values other than 0/1: read it with bytes()");
    constexpr const char* want = safetensors_dtype_of<T>();
    constexpr const char* hint = std::is_same_v<std::remove_cv_t<T>, float>
                                     ? "use to_f32 to convert (it copies)"
                                     : "use bytes() and copy";
    const auto& t = info(name);
    if (t.dtype != want)
      lowbit::detail::fail(what_, ": cannot view tensor '", safetensors_detail::clip(name), "' as ",
                           want, " without a copy: its dtype is ", t.dtype, "; ", hint);
    const std::uint8_t* p = base() + t.file_offset;
    if (t.numel != 0 && reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
      lowbit::detail::fail(what_, ": cannot view tensor '", safetensors_detail::clip(name), "' as ",
                           want, " without a copy: its data at byte offset ", t.file_offset,
                           " is not ", alignof(T), "-byte aligned in memory; ", hint);
    return tensor_view<const T>(reinterpret_cast<const T*>(p), t.shape);
  }
  /// view<float>: zero-copy, only for F32 data 4-byte aligned in memory.
  tensor_view<const float> view_f32(const std::string& name) const { return view<float>(name); }

  /// The tensor converted to float: F32 (copy), F16 and the F8 formats (exact), BF16 (exact,
  /// by shift), F64 (rounded to nearest), integers (exact up to 2^24 in magnitude, rounded
  /// beyond) and BOOL (0/1; other byte values are an error). C64, F4, F6_* are not converted.
  inline std::vector<float> to_f32(const std::string& name) const;

 private:
  const std::uint8_t* base() const noexcept {
    return map_.addr != nullptr ? map_.addr : owned_.data();
  }
  void init() {
    safetensors_detail::parsed p = safetensors_detail::parse_file(base(), size_, what_);
    header_len_ = p.header_len;
    tensors_ = std::move(p.tensors);
    metadata_ = std::move(p.metadata);
    index_.reserve(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }

  safetensors_detail::file_mapping map_;
  std::vector<std::uint8_t> owned_;
  std::string what_ = "safetensors_file: (empty)";
  std::uint64_t size_ = 0;
  std::uint64_t header_len_ = 0;
  std::vector<safetensors_tensor_info> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

inline std::vector<float> safetensors_file::to_f32(const std::string& name) const {
  namespace sd = safetensors_detail;
  using sd::code;
  using sd::load;
  const auto& t = info(name);
  const std::uint8_t* p = base() + t.file_offset;
  const auto n = static_cast<std::size_t>(t.numel);
  std::vector<float> out(n);
  auto each = [&](std::size_t stride, auto f) {
    for (std::size_t i = 0; i < n; ++i) out[i] = f(p + i * stride);
  };
  switch (sd::find_dtype(t.dtype)->c) {
    case code::F32:
      if (n != 0) std::memcpy(out.data(), p, n * sizeof(float));
      break;
    case code::F16:
      each(2, [](const std::uint8_t* q) { return sd::f16_to_f32(load<std::uint16_t>(q)); });
      break;
    case code::BF16:
      each(2, [](const std::uint8_t* q) {
        return sd::bits_to_float(static_cast<std::uint32_t>(load<std::uint16_t>(q)) << 16);
      });
      break;
    case code::F64:
      each(8, [](const std::uint8_t* q) { return static_cast<float>(load<double>(q)); });
      break;
    case code::E5M2:  // the high byte of an F16
      each(1, [](const std::uint8_t* q) { return sd::f16_to_f32(std::uint16_t(*q << 8)); });
      break;
    case code::E4M3:
      each(1, [](const std::uint8_t* q) { return sd::e4m3_to_f32(*q); });
      break;
    case code::E8M0:  // 2^(b - 127), 0xFF is NaN
      each(1, [](const std::uint8_t* q) {
        return *q == 0xFF ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, *q - 127);
      });
      break;
    case code::I8:
      each(1, [](const std::uint8_t* q) { return static_cast<float>(load<std::int8_t>(q)); });
      break;
    case code::U8:
      each(1, [](const std::uint8_t* q) { return static_cast<float>(*q); });
      break;
    case code::I16:
      each(2, [](const std::uint8_t* q) { return static_cast<float>(load<std::int16_t>(q)); });
      break;
    case code::U16:
      each(2, [](const std::uint8_t* q) { return static_cast<float>(load<std::uint16_t>(q)); });
      break;
    case code::I32:
      each(4, [](const std::uint8_t* q) { return static_cast<float>(load<std::int32_t>(q)); });
      break;
    case code::U32:
      each(4, [](const std::uint8_t* q) { return static_cast<float>(load<std::uint32_t>(q)); });
      break;
    case code::I64:
      each(8, [](const std::uint8_t* q) { return static_cast<float>(load<std::int64_t>(q)); });
      break;
    case code::U64:
      each(8, [](const std::uint8_t* q) { return static_cast<float>(load<std::uint64_t>(q)); });
      break;
    case code::BOOL:
      for (std::size_t i = 0; i < n; ++i) {
        if (p[i] > 1)
          lowbit::detail::fail(what_, ": BOOL tensor '", sd::clip(name), "' element ", i,
                               " at byte offset ", t.file_offset + i, " has value ",
                               static_cast<int>(p[i]), " (must be 0 or 1)");
        out[i] = p[i];
      }
      break;
    default:
      lowbit::detail::fail(what_, ": to_f32 cannot convert tensor '", sd::clip(name), "' of dtype ",
                           t.dtype, " (C64, F4 and F6 are not converted)");
  }
  return out;
}

/// Builds a .safetensors image tensor by tensor; see the top of this file for the layout.
class safetensors_writer {
 public:
  /// Adds a tensor given as raw little-endian bytes of `dtype` (any dtype the reader knows).
  /// Throws if the name is empty, "__metadata__", already added or not UTF-8, if the dtype
  /// is unknown, or if the byte count does not match the shape.
  inline void add(std::string name, std::string dtype, std::vector<std::int64_t> shape,
                  span<const std::uint8_t> bytes);
  /// Adds a tensor of T's dtype (safetensors_dtype_of<T>: F32 F64 I8 U8 I16 U16 I32 ...).
  template <class T>
  void add(std::string name, std::vector<std::int64_t> shape, span<const T> data) {
    add(std::move(name), safetensors_dtype_of<T>(), std::move(shape),
        span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()),
                                 data.size() * sizeof(T)));
  }
  template <class T, class A>
  void add(std::string name, std::vector<std::int64_t> shape, const std::vector<T, A>& data) {
    static_assert(!std::is_same_v<T, bool>, "std::vector<bool> is not contiguous: use span");
    add(std::move(name), std::move(shape), span<const T>(data.data(), data.size()));
  }
  /// Sets (or replaces) one "__metadata__" entry.
  inline void set_metadata(std::string key, std::string value);

  std::size_t size() const noexcept { return entries_.size(); }
  /// The complete file image.
  inline std::vector<std::uint8_t> to_bytes() const;
  /// Writes the image to `path` + ".tmp", then renames it over `path`.
  inline void save(const std::string& path) const;

 private:
  struct entry {
    std::string key_json;  // the name as a JSON string literal
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
  };
  static std::string quote(const std::string& s, const char* what) {
    try {
      return nlohmann::json(s).dump();
    } catch (const nlohmann::json::exception&) {
      lowbit::detail::fail("safetensors_writer: ", what, " '", safetensors_detail::clip(s),
                           "' is not valid UTF-8");
    }
  }
  /// 8-byte length + padded header.
  inline std::string prefix() const;

  std::vector<entry> entries_;
  std::unordered_set<std::string> names_;
  std::map<std::string, std::string> metadata_;  // values already JSON string literals
};

inline void safetensors_writer::add(std::string name, std::string dtype,
                                    std::vector<std::int64_t> shape,
                                    span<const std::uint8_t> bytes) {
  namespace sd = safetensors_detail;
  if (name.empty()) lowbit::detail::fail("safetensors_writer: empty tensor name");
  if (name == "__metadata__")
    lowbit::detail::fail("safetensors_writer: '__metadata__' is reserved, not a tensor name");
  if (names_.count(name) != 0)
    lowbit::detail::fail("safetensors_writer: duplicate tensor name '", sd::clip(name), "'");
  const sd::dtype_desc* d = sd::find_dtype(dtype);
  if (d == nullptr)
    lowbit::detail::fail("safetensors_writer: tensor '", sd::clip(name), "': unknown dtype '",
                         sd::clip(dtype), "' (supported: ", sd::supported_dtypes(), ")");
  if (shape.size() > sd::kMaxRank)
    lowbit::detail::fail("safetensors_writer: tensor '", sd::clip(name), "': more than ",
                         sd::kMaxRank, " dimensions");
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (shape[i] < 0)
      lowbit::detail::fail("safetensors_writer: tensor '", sd::clip(name), "': negative dimension ",
                           shape[i], " at index ", i);
  std::uint64_t numel = 0, nbits = 0;
  if (!sd::checked_size(shape, d->bits, numel, nbits) || nbits % 8 != 0 ||
      nbits / 8 != bytes.size())
    lowbit::detail::fail("safetensors_writer: tensor '", sd::clip(name), "': shape ",
                         sd::shape_repr(shape), " of ", dtype, " does not match ", bytes.size(),
                         " bytes");
  if (bytes.size() != 0 && bytes.data() == nullptr)
    lowbit::detail::fail("safetensors_writer: tensor '", sd::clip(name), "': null data");
  entry e{quote(name, "tensor name"), std::move(dtype), std::move(shape),
          std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
  names_.insert(std::move(name));
  entries_.push_back(std::move(e));
}

inline void safetensors_writer::set_metadata(std::string key, std::string value) {
  std::string v = quote(value, "metadata value");
  metadata_[quote(key, "metadata key")] = std::move(v);
}

inline std::string safetensors_writer::prefix() const {
  std::string h = "{";
  if (!metadata_.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& kv : metadata_) {
      if (!first) h += ',';
      first = false;
      h += kv.first;
      h += ':';
      h += kv.second;
    }
    h += '}';
  }
  std::uint64_t offset = 0;
  for (const auto& e : entries_) {
    if (h.size() > 1) h += ',';
    h += e.key_json;
    h += ":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (std::size_t i = 0; i < e.shape.size(); ++i) {
      if (i) h += ',';
      h += std::to_string(e.shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(offset) + ',';
    offset += e.bytes.size();
    h += std::to_string(offset) + "]}";
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > safetensors_detail::kMaxHeaderBytes)
    lowbit::detail::fail("safetensors_writer: the header would be ", h.size(),
                         " bytes, over the format's limit of ",
                         safetensors_detail::kMaxHeaderBytes);
  std::string out(8, '\0');
  const auto n = static_cast<std::uint64_t>(h.size());
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out + h;
}

inline std::vector<std::uint8_t> safetensors_writer::to_bytes() const {
  const std::string pre = prefix();
  std::size_t total = pre.size();
  for (const auto& e : entries_) total += e.bytes.size();
  std::vector<std::uint8_t> out;
  out.reserve(total);
  out.insert(out.end(), pre.begin(), pre.end());
  for (const auto& e : entries_) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
  return out;
}

inline void safetensors_writer::save(const std::string& path) const {
  using safetensors_detail::errno_text;
  const std::string pre = prefix();
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr)
    lowbit::detail::fail("safetensors_writer: cannot create '", tmp, "' to save '", path,
                         "': ", errno_text(errno));
  bool ok = std::fwrite(pre.data(), 1, pre.size(), f) == pre.size();
  for (std::size_t i = 0; ok && i < entries_.size(); ++i) {
    const auto& b = entries_[i].bytes;
    ok = b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size();
  }
  int err = 0;
  if (ok && std::fflush(f) != 0) ok = false;
  if (!ok) err = errno;
#if LOWBIT_SAFETENSORS_POSIX
  if (ok && ::fsync(::fileno(f)) != 0) {
    ok = false;
    err = errno;
  }
#endif
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    lowbit::detail::fail("safetensors_writer: cannot write '", tmp, "': ", errno_text(err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    lowbit::detail::fail("safetensors_writer: cannot rename '", tmp, "' to '", path,
                         "': ", ec.message());
  }
}

}  // namespace io
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_IO_SAFETENSORS_HPP_
