// SPDX-License-Identifier: Apache-2.0
// Tests of lowbit/io/safetensors.hpp: round trips, the reference crate's bytes, conversions,
// zero-copy views, hostile files and a deterministic fuzz loop.
#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using lowbit::io::safetensors_file;
using lowbit::io::safetensors_load;
using lowbit::io::safetensors_writer;

namespace {

const lowbit_test::temp_dir& tmp() {
  static const lowbit_test::temp_dir d("lowbit_test_safetensors_");
  return d;
}

using bytes = std::vector<std::uint8_t>;

void write_bytes(const std::string& path, const bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// 8-byte little-endian length + `header` (padded with spaces to a multiple of 8 unless
/// `pad` is false) + `data`.
bytes make_st(std::string header, const bytes& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  bytes out(8);
  const auto n = static_cast<std::uint64_t>(header.size());
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

bytes le_u64(std::uint64_t n) {
  bytes b(8);
  for (int i = 0; i < 8; ++i)
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  return b;
}

template <class T>
bytes raw(const std::vector<T>& v) {
  bytes b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

/// An entry {"dtype": dtype, "shape": shape, "data_offsets": offsets} as JSON text.
std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

std::string file_with(const std::string& name, const bytes& b) {
  const std::string p = tmp().file(name);
  write_bytes(p, b);
  return p;
}

safetensors_file open_file(const std::string& p) { return safetensors_file(p); }
safetensors_file open_mem(const bytes& b) { return safetensors_file::from_memory(b, "label"); }

template <class T>
std::vector<T> sample_values(std::int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      v[static_cast<std::size_t>(i)] =
          static_cast<T>(i) * static_cast<T>(-1.25) + static_cast<T>(0.5);
    } else {
      // Small values (exact in float) of both signs for signed types.
      v[static_cast<std::size_t>(i)] =
          static_cast<T>(std::is_signed_v<T> ? (i * 7) % 101 - 50 : (i * 7) % 101);
    }
  }
  return v;
}

const std::vector<std::vector<std::int64_t>> kShapes = {{}, {0}, {3}, {2, 3, 4}};

float f16(std::uint16_t bits) {
  const bytes img =
      make_st("{\"h\":" + entry("F16", "[1]", "[0,2]") + "}",
              {static_cast<std::uint8_t>(bits), static_cast<std::uint8_t>(bits >> 8)});
  return open_mem(img).to_f32("h")[0];
}

float one_byte(const std::string& dtype, std::uint8_t b) {
  return open_mem(make_st("{\"x\":" + entry(dtype, "[1]", "[0,1]") + "}", {b})).to_f32("x")[0];
}

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

}  // namespace

TEMPLATE_TEST_CASE("safetensors round trip through a file", "[io][safetensors]", float, double,
                   std::int8_t, std::uint8_t, std::int16_t, std::uint16_t, std::int32_t,
                   std::uint32_t, std::int64_t, std::uint64_t) {
  const char* dtype = lowbit::io::safetensors_dtype_of<TestType>();
  for (const auto& shape : kShapes) {
    DYNAMIC_SECTION("dtype " << dtype << " rank " << shape.size()) {
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      const auto values = sample_values<TestType>(n);
      const std::vector<std::int32_t> second = {7, -8};
      safetensors_writer w;
      w.add("first.weight", shape, values);
      w.add("second", {2}, lowbit::span<const std::int32_t>(second.data(), second.size()));
      w.set_metadata("format", "pt");
      w.set_metadata("note", "caf\xc3\xa9 \"quoted\"\n");
      const std::string path = tmp().file(std::string("rt_") + dtype + "_" +
                                          std::to_string(shape.size()) + ".safetensors");
      w.save(path);
      CHECK_FALSE(fs::exists(path + ".tmp"));
      const bytes img = read_bytes(path);
      CHECK(img == w.to_bytes());

      for (auto how : {safetensors_load::mmap, safetensors_load::read}) {
        const safetensors_file f(path, how);
        CHECK(f.file_size() == img.size());
        CHECK(f.header_size() % 8 == 0);
        CHECK(f.data_offset() == 8 + f.header_size());
        CHECK(f.names() == std::vector<std::string>{"first.weight", "second"});
        CHECK(f.size() == 2);
        CHECK(f.contains("second"));
        CHECK_FALSE(f.contains("third"));
        CHECK(f.metadata() == std::map<std::string, std::string>{
                                  {"format", "pt"}, {"note", "caf\xc3\xa9 \"quoted\"\n"}});
        const auto& i = f.info("first.weight");
        CHECK(i.dtype == dtype);
        CHECK(i.shape == shape);
        CHECK(i.numel == n);
        CHECK(i.begin == 0);
        CHECK(i.end == static_cast<std::uint64_t>(n) * sizeof(TestType));
        CHECK(i.file_offset == f.data_offset());
        CHECK(i.bits == 8 * sizeof(TestType));
        const auto b = f.bytes("first.weight");
        CHECK(bytes(b.begin(), b.end()) == raw(values));
        const auto v = f.view<TestType>("first.weight");  // 8-aligned: the first tensor
        CHECK(v.shape == shape);
        const auto conv = f.to_f32("first.weight");
        REQUIRE(conv.size() == values.size());
        for (std::size_t k = 0; k < values.size(); ++k) {
          INFO("element " << k);
          CHECK(v.data[k] == values[k]);
          CHECK(conv[k] == static_cast<float>(values[k]));
        }
        CHECK(f.to_f32("second") == std::vector<float>{7.0f, -8.0f});
        CHECK(f.info("second").begin == i.end);
      }
      const safetensors_file m = safetensors_file::from_memory(img);
      CHECK(m.names() == std::vector<std::string>{"first.weight", "second"});
      CHECK(m.to_f32("first.weight").size() == values.size());
    }
  }
}

TEST_CASE("safetensors round trip of raw dtypes, BOOL and scalars", "[io][safetensors]") {
  safetensors_writer w;
  const bytes half = {0x00, 0x3C, 0x00, 0xC0};  // F16 1, -2
  const bytes bf = {0x80, 0x3F, 0x00, 0xC0};    // BF16 1, -2
  const bytes f8 = {0x38, 0x3C};                // E4M3 1, E5M2 1
  const bool flags[3] = {true, false, true};
  w.add("h", "F16", {2}, half);
  w.add("bf", "BF16", {1, 2}, bf);
  w.add("e4", "F8_E4M3", {1}, lowbit::span<const std::uint8_t>(f8.data(), 1));
  w.add("e5", "F8_E5M2", {}, lowbit::span<const std::uint8_t>(f8.data() + 1, 1));
  w.add("flags", {3}, lowbit::span<const bool>(flags, 3));
  w.add("f4", "F4", {4}, bytes{0x21, 0x43});  // two 4-bit values per byte
  w.add("empty", "F32", {0, 5}, bytes{});
  const safetensors_file f = safetensors_file::from_memory(w.to_bytes());
  CHECK(f.names() == std::vector<std::string>{"h", "bf", "e4", "e5", "flags", "f4", "empty"});
  CHECK(f.to_f32("h") == std::vector<float>{1.0f, -2.0f});
  CHECK(f.to_f32("bf") == std::vector<float>{1.0f, -2.0f});
  CHECK(f.to_f32("e4") == std::vector<float>{1.0f});
  CHECK(f.to_f32("e5") == std::vector<float>{1.0f});
  CHECK(f.info("e5").shape.empty());
  CHECK(f.info("e5").numel == 1);
  CHECK(f.info("flags").dtype == "BOOL");
  CHECK(f.to_f32("flags") == std::vector<float>{1.0f, 0.0f, 1.0f});
  CHECK(f.info("f4").bits == 4);
  CHECK(f.bytes("f4").size() == 2);
  CHECK_THROWS_WITH(f.to_f32("f4"), Contains("to_f32 cannot convert tensor 'f4' of dtype F4"));
  CHECK(f.to_f32("empty").empty());
  CHECK(f.view_f32("empty").numel() == 0);
  CHECK(f.info("empty").shape == std::vector<std::int64_t>{0, 5});
}

TEST_CASE("safetensors reads and writes the reference crate's bytes exactly", "[io][safetensors]") {
  SECTION("a tiny F32 file built by hand") {
    const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    REQUIRE(header.size() == 54);
    bytes img = {56, 0, 0, 0, 0, 0, 0, 0};
    img.insert(img.end(), header.begin(), header.end());
    img.insert(img.end(), {' ', ' '});
    img.insert(img.end(), {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0});  // 1.0f, -2.5f
    const std::string path = file_with("tiny.safetensors", img);
    const safetensors_file f(path);
    CHECK(f.names() == std::vector<std::string>{"a"});
    CHECK(f.header_size() == 56);
    CHECK(f.info("a").file_offset == 64);
    CHECK(f.to_f32("a") == std::vector<float>{1.0f, -2.5f});
    CHECK(f.metadata().empty());
    safetensors_writer w;
    w.add("a", {2}, std::vector<float>{1.0f, -2.5f});
    CHECK(w.to_bytes() == img);
  }
  SECTION("safetensors' own test vectors (tensor.rs)") {
    // test_serialization_forced_alignement: F32 "attn0", shape [1, 1, 2, 3], values 0..5.
    const bytes attn0 = {72,  0,   0,   0,   0,   0,   0,   0,   123, 34, 97, 116, 116, 110, 48,
                         34,  58,  123, 34,  100, 116, 121, 112, 101, 34, 58, 34,  70,  51,  50,
                         34,  44,  34,  115, 104, 97,  112, 101, 34,  58, 91, 49,  44,  49,  44,
                         50,  44,  51,  93,  44,  34,  100, 97,  116, 97, 95, 111, 102, 102, 115,
                         101, 116, 115, 34,  58,  91,  48,  44,  50,  52, 93, 125, 125, 32,  32,
                         32,  32,  32,  32,  32,  0,   0,   0,   0,   0,  0,  128, 63,  0,   0,
                         0,   64,  0,   0,   64,  64,  0,   0,   128, 64, 0,  0,   160, 64};
    safetensors_writer w;
    w.add("attn0", {1, 1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
    CHECK(w.to_bytes() == attn0);
    const safetensors_file f = safetensors_file::from_memory(attn0);
    CHECK(f.to_f32("attn0") == std::vector<float>{0, 1, 2, 3, 4, 5});
    CHECK(f.view_f32("attn0").shape == std::vector<std::int64_t>{1, 1, 2, 3});

    // test_empty: no tensors, without and with metadata.
    CHECK(safetensors_writer().to_bytes() ==
          bytes{8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32});
    const bytes with_meta = {40,  0,   0,   0,   0,   0,   0,   0,   123, 34,  95,  95,
                             109, 101, 116, 97,  100, 97,  116, 97,  95,  95,  34,  58,
                             123, 34,  102, 114, 97,  109, 101, 119, 111, 114, 107, 34,
                             58,  34,  112, 116, 34,  125, 125, 32,  32,  32,  32,  32};
    safetensors_writer m;
    m.set_metadata("framework", "pt");
    CHECK(m.to_bytes() == with_meta);
    const safetensors_file e = safetensors_file::from_memory(with_meta);
    CHECK(e.size() == 0);
    CHECK(e.metadata().at("framework") == "pt");

    // The crate's doc example: an unpadded 60-byte header, I32 [2, 2].
    const std::string doc = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
    REQUIRE(doc.size() == 60);
    const safetensors_file d = safetensors_file::from_memory(make_st(doc, bytes(16, 0), false));
    CHECK(d.to_f32("test") == std::vector<float>(4, 0.0f));
  }
}

TEST_CASE("safetensors converts F16, BF16 and F8 bit patterns exactly", "[io][safetensors]") {
  CHECK(f16(0x3C00) == 1.0f);
  CHECK(f16(0xC000) == -2.0f);
  CHECK(f16(0x7BFF) == 65504.0f);
  CHECK(f16(0x0001) == std::ldexp(1.0f, -24));     // smallest subnormal
  CHECK(f16(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(f16(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(f16(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(f16(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16(0x7E00)));
  CHECK(std::isnan(f16(0x7C01)));
  CHECK(bits_of(f16(0x8000)) == 0x80000000u);  // -0
  CHECK(bits_of(f16(0x7E00)) == 0x7FC00000u);  // quiet NaN, payload kept

  // Every finite half against (-1)^s * m * 2^e computed in double.
  bytes all(2 * 65536);
  for (std::uint32_t h = 0; h < 65536; ++h) {
    all[2 * h] = static_cast<std::uint8_t>(h);
    all[2 * h + 1] = static_cast<std::uint8_t>(h >> 8);
  }
  const auto conv =
      open_mem(make_st("{\"h\":" + entry("F16", "[65536]", "[0,131072]") + "}", all)).to_f32("h");
  int bad = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    if (e == 31) {
      bad += m == 0 ? !std::isinf(conv[h]) : !std::isnan(conv[h]);
      continue;
    }
    double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    if (h & 0x8000) v = -v;
    bad += conv[h] != static_cast<float>(v) || std::signbit(conv[h]) != ((h & 0x8000) != 0);
  }
  CHECK(bad == 0);

  auto bf16 = [](std::uint16_t b) {
    const bytes img = make_st("{\"b\":" + entry("BF16", "[1]", "[0,2]") + "}",
                              {static_cast<std::uint8_t>(b), static_cast<std::uint8_t>(b >> 8)});
    return open_mem(img).to_f32("b")[0];
  };
  CHECK(bf16(0x3F80) == 1.0f);
  CHECK(bf16(0xC000) == -2.0f);
  CHECK(bf16(0x477F) == 65280.0f);
  CHECK(bf16(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(bf16(0x7F80) == std::numeric_limits<float>::infinity());
  CHECK(std::isnan(bf16(0x7FC0)));

  CHECK(one_byte("F8_E4M3", 0x38) == 1.0f);
  CHECK(one_byte("F8_E4M3", 0xC0) == -2.0f);
  CHECK(one_byte("F8_E4M3", 0x7E) == 448.0f);
  CHECK(one_byte("F8_E4M3", 0x01) == std::ldexp(1.0f, -9));
  CHECK(std::isnan(one_byte("F8_E4M3", 0x7F)));
  CHECK(one_byte("F8_E5M2", 0x3C) == 1.0f);
  CHECK(one_byte("F8_E5M2", 0x7B) == 57344.0f);
  CHECK(one_byte("F8_E5M2", 0x01) == std::ldexp(1.0f, -16));
  CHECK(one_byte("F8_E5M2", 0xFC) == -std::numeric_limits<float>::infinity());
  CHECK(one_byte("F8_E8M0", 127) == 1.0f);
  CHECK(one_byte("F8_E8M0", 0) == std::ldexp(1.0f, -127));
  CHECK(one_byte("F8_E8M0", 254) == std::ldexp(1.0f, 127));
  CHECK(std::isnan(one_byte("F8_E8M0", 255)));
  CHECK(one_byte("I8", 0x80) == -128.0f);
  CHECK(one_byte("U8", 0x80) == 128.0f);
  CHECK_THROWS_WITH(one_byte("BOOL", 2),
                    Contains("BOOL tensor 'x' element 0 at byte offset 64 has value 2"));
}

TEST_CASE("safetensors views are zero-copy", "[io][safetensors]") {
  safetensors_writer w;
  std::vector<float> x(12);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 3.5f;
  w.add("x", {3, 4}, x);
  w.add("odd", "U8", {1}, bytes{9});
  w.add("y", {2}, std::vector<float>{1.0f, 2.0f});  // at buffer offset 49: misaligned
  w.add("h", "F16", {1}, bytes{0x00, 0x3C});
  const std::string path = tmp().file("views.safetensors");
  w.save(path);

  const safetensors_file f(path);
#if LOWBIT_SAFETENSORS_POSIX
  CHECK(f.is_mapped());
#endif
  const auto whole = f.file_bytes();
  const auto v = f.view_f32("x");
  CHECK(reinterpret_cast<const std::uint8_t*>(v.data) == whole.data() + f.info("x").file_offset);
  CHECK(reinterpret_cast<const std::uint8_t*>(v.data) >= whole.data());
  CHECK(reinterpret_cast<const std::uint8_t*>(v.data + v.numel()) <= whole.data() + whole.size());
  CHECK(v.shape == std::vector<std::int64_t>{3, 4});
  CHECK(v.strides == std::vector<std::int64_t>{4, 1});
  CHECK(v.data[5] == x[5]);
  CHECK(f.bytes("odd").data() == whole.data() + f.info("odd").file_offset);
  CHECK_THROWS_WITH(f.view_f32("y"),
                    Contains("cannot view tensor 'y' as F32 without a copy: its data at byte "
                             "offset ") &&
                        Contains("is not 4-byte aligned in memory; use to_f32"));
  CHECK(f.to_f32("y") == std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_WITH(f.view_f32("h"), Contains("its dtype is F16; use to_f32 to convert"));
  CHECK_THROWS_WITH(f.view<std::int32_t>("x"), Contains("its dtype is F32; use bytes() and copy"));
  CHECK_THROWS_WITH(f.bytes("nope"), Contains(path) && Contains("no tensor named 'nope'"));

  // Read mode copies the file once; views point into that copy.
  const safetensors_file r(path, safetensors_load::read);
  CHECK_FALSE(r.is_mapped());
  CHECK(reinterpret_cast<const std::uint8_t*>(r.view_f32("x").data) ==
        r.file_bytes().data() + r.info("x").file_offset);

  // from_memory keeps the vector's buffer.
  bytes img = w.to_bytes();
  const std::uint8_t* buf = img.data();
  const safetensors_file m = safetensors_file::from_memory(std::move(img));
  CHECK(m.file_bytes().data() == buf);
  CHECK(reinterpret_cast<const std::uint8_t*>(m.view_f32("x").data) ==
        buf + m.info("x").file_offset);

  // Moving keeps the mapping and the views valid; the moved-from object is empty.
  safetensors_file a(path);
  const float* p = a.view_f32("x").data;
  safetensors_file b(std::move(a));
  CHECK(b.view_f32("x").data == p);
  CHECK(a.size() == 0);  // NOLINT(bugprone-use-after-move): documented moved-from state
  CHECK_FALSE(a.contains("x"));
  a = std::move(b);
  CHECK(a.view_f32("x").data == p);
  CHECK(a.view_f32("x").data[11] == x[11]);
}

TEST_CASE("safetensors rejects broken and hostile files with a precise error",
          "[io][safetensors]") {
  auto check_bad = [](const std::string& name, const bytes& b, const std::string& piece) {
    INFO("file " << name);
    const std::string path = file_with(name, b);
    CHECK_THROWS_AS(open_file(path), lowbit::error);
    CHECK_THROWS_WITH(open_file(path), Contains(piece) && Contains(path));
    CHECK_THROWS_WITH(safetensors_file(path, safetensors_load::read), Contains(piece));
    CHECK_THROWS_WITH(open_mem(b), Contains(piece) && Contains("'label'"));
  };
  const bytes f32x2(8, 0);
  const std::string a_ok = entry("F32", "[2]", "[0,8]");
  auto one = [](const std::string& e) { return "{\"a\":" + e + "}"; };

  SECTION("missing, empty and non-regular files") {
    CHECK_THROWS_WITH(open_file(tmp().file("missing.safetensors")),
                      Contains("missing.safetensors") &&
                          Contains("cannot open the file: No such file or directory"));
    check_bad("empty.safetensors", {},
              "the file has 0 bytes, fewer than the 8 of the header length field");
    check_bad("seven.safetensors", bytes(7, 0), "the file has 7 bytes");
#if LOWBIT_SAFETENSORS_POSIX
    CHECK_THROWS_WITH(open_file(tmp().path.string()), Contains("not a regular file"));
#endif
  }
  SECTION("header length") {
    bytes b = le_u64(1000);
    b.insert(b.end(), {'{', '}'});
    check_bad("len_past_end.safetensors", b,
              "header length 1000 at byte offset 0 runs past the end of the file (the header "
              "would end at byte offset 1008, the file has 10 bytes)");
    check_bad("len_huge.safetensors", le_u64(0xFFFFFFFFFFFFFFFFull),
              "header length 18446744073709551615 at byte offset 0 exceeds the limit of "
              "100000000 bytes");
    check_bad("len_limit.safetensors", le_u64(100000001), "exceeds the limit of 100000000 bytes");
  }
  SECTION("header is not JSON, or not an object") {
    check_bad("syntax.safetensors", make_st("{\"a\":}", {}, false),
              "header is not valid JSON at byte offset 13: [json.exception.parse_error.101] parse "
              "error at line 1, column 6");
    check_bad("cut.safetensors", make_st("{\"a\":{\"dty", {}, false), "header is not valid JSON");
    check_bad("empty_header.safetensors", make_st("", {}, false), "header is not valid JSON");
    check_bad("bad_utf8.safetensors", make_st("{\"\xff\":1}", {}, false),
              "invalid string: ill-formed UTF-8");
    check_bad("trailing_junk.safetensors", make_st("{} x", {}, false),
              "header is not valid JSON at byte offset 11");
    check_bad("nul_pad.safetensors", make_st(std::string("{}\0\0", 4), {}, false),
              "NUL byte at byte offset 10 in the header");
    check_bad("hidden.safetensors", make_st(std::string("{}\0{\"a\":1}", 10), {}, false),
              "NUL byte at byte offset 10 in the header");
    check_bad("bom.safetensors", make_st("\xEF\xBB\xBF{}", {}),
              "the header at byte offset 8 starts with a UTF-8 byte order mark");
    check_bad("array.safetensors", make_st("[1, 2]", {}),
              "the header at byte offset 8 must be a JSON object, got array");
    check_bad("number.safetensors", make_st("7", {}), "must be a JSON object, got number");
    check_bad("big_number.safetensors", make_st("{\"a\":1e999}", {}), "header is not valid JSON");
    std::string deep(100, '[');
    check_bad("deep.safetensors", make_st("{\"a\":" + deep, {}, false),
              "header nests JSON deeper than 64 levels at byte offset 76");
  }
  SECTION("duplicate keys") {
    check_bad("dup_name.safetensors", make_st("{\"a\":" + a_ok + ",\"a\":" + a_ok + "}", f32x2),
              "duplicate key 'a' at byte offset 62 (first at byte offset 9): tensor names must be "
              "unique");
    check_bad(
        "dup_field.safetensors",
        make_st(one("{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"),
                f32x2),
        "duplicate key 'dtype' at byte offset 28 (first at byte offset 14)");
    check_bad("dup_escaped.safetensors",
              make_st("{\"a\":" + a_ok + ",\"\\u0061\":" + a_ok + "}", f32x2),
              "duplicate key 'a' at byte offset 62");
  }
  SECTION("malformed tensor entries") {
    check_bad("entry_number.safetensors", make_st(one("3"), {}),
              "tensor 'a' (header entry at byte offset 9): the entry must be an object with "
              "'dtype', 'shape' and 'data_offsets', got number");
    check_bad("no_dtype.safetensors", make_st(one("{\"shape\":[2],\"data_offsets\":[0,8]}"), f32x2),
              "tensor 'a' (header entry at byte offset 9): missing 'dtype'");
    check_bad("no_shape.safetensors",
              make_st(one("{\"dtype\":\"F32\",\"data_offsets\":[0,8]}"), f32x2), "missing 'shape'");
    check_bad("no_offsets.safetensors", make_st(one("{\"dtype\":\"F32\",\"shape\":[2]}"), f32x2),
              "missing 'data_offsets'");
    check_bad("dtype_number.safetensors",
              make_st(one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), f32x2),
              "'dtype' must be a string, got number 4");
    check_bad("unknown_dtype.safetensors", make_st(one(entry("F17", "[2]", "[0,8]")), f32x2),
              "unknown dtype 'F17' (supported: BOOL U8 I8");
    check_bad("lower_dtype.safetensors", make_st(one(entry("f32", "[2]", "[0,8]")), f32x2),
              "unknown dtype 'f32'");
    check_bad("shape_string.safetensors", make_st(one(entry("F32", "\"2\"", "[0,8]")), f32x2),
              "'shape' must be an array of non-negative integers, got string \"2\"");
    check_bad("offsets_object.safetensors", make_st(one(entry("F32", "[2]", "{}")), f32x2),
              "'data_offsets' must be [begin, end], got {}");
    check_bad("offsets_one.safetensors", make_st(one(entry("F32", "[2]", "[8]")), f32x2),
              "'data_offsets' must be [begin, end], got [8]");
    check_bad("offsets_three.safetensors", make_st(one(entry("F32", "[2]", "[0,4,8]")), f32x2),
              "'data_offsets' must be [begin, end], got [0,4,8]");
    check_bad("offsets_neg.safetensors", make_st(one(entry("F32", "[2]", "[-8,0]")), f32x2),
              "'data_offsets' must hold two non-negative integers, got [-8,0]");
    check_bad("offsets_float.safetensors", make_st(one(entry("F32", "[2]", "[0,8.0]")), f32x2),
              "'data_offsets' must hold two non-negative integers, got [0,8.0]");
    check_bad("metadata_number.safetensors", make_st("{\"__metadata__\":{\"k\":1}}", {}),
              "__metadata__ (header entry at byte offset 9): the value of key 'k' must be a "
              "string, got number 1");
    check_bad(
        "metadata_array.safetensors", make_st("{\"__metadata__\":[\"x\"]}", {}),
        "__metadata__ (header entry at byte offset 9) must be an object of strings, got array");
  }
  SECTION("bad dimensions") {
    check_bad("neg_dim.safetensors", make_st(one(entry("F32", "[-2]", "[0,8]")), f32x2),
              "negative dimension -2 at index 0 of 'shape'");
    check_bad("float_dim.safetensors", make_st(one(entry("F32", "[2.5]", "[0,8]")), f32x2),
              "dimension 2.5 at index 0 of 'shape' is not an integer");
    check_bad("float_int_dim.safetensors", make_st(one(entry("F32", "[2.0]", "[0,8]")), f32x2),
              "dimension 2.0 at index 0 of 'shape' is not an integer");
    check_bad("null_dim.safetensors", make_st(one(entry("F32", "[1,null]", "[0,8]")), f32x2),
              "dimension null at index 1 of 'shape' is not an integer");
    check_bad("huge_dim.safetensors",
              make_st(one(entry("F32", "[18446744073709551615]", "[0,8]")), f32x2),
              "dimension 18446744073709551615 at index 0 of 'shape' exceeds 2^63 - 1");
    check_bad("overflow.safetensors",
              make_st(one(entry("F32", "[4294967296,4294967296]", "[0,8]")), f32x2),
              "shape [4294967296, 4294967296] of F32 overflows: the element or bit count exceeds "
              "2^63 - 1");
    // Overflows only once the zero is ignored: rejected whatever the order of the dims.
    check_bad("overflow_zero.safetensors",
              make_st(one(entry("F32", "[0,4294967296,4294967296]", "[0,0]")), {}), "overflows");
    check_bad("overflow_bits.safetensors",
              make_st(one(entry("F64", "[1152921504606846976]", "[0,8]")), f32x2),
              "of F64 overflows");
    std::string many = "[1";
    for (int i = 0; i < 64; ++i) many += ",1";
    check_bad("rank65.safetensors", make_st(one(entry("F32", many + "]", "[0,4]")), bytes(4, 0)),
              "'shape' has 65 dimensions, more than 64");
    check_bad("half_byte.safetensors", make_st(one(entry("F4", "[3]", "[0,2]")), bytes(2, 0)),
              "shape [3] of F4 holds 3 elements of 4 bits, not a whole number of bytes");
  }
  SECTION("offsets against the buffer and the shape") {
    check_bad("reversed.safetensors", make_st(one(entry("F32", "[2]", "[8,0]")), f32x2),
              "data_offsets [8, 0] has begin > end");
    check_bad("past_end.safetensors", make_st(one(entry("F32", "[2]", "[0,8]")), bytes(4, 0)),
              "tensor 'a' (header entry at byte offset 9): data_offsets [0, 8] run past the end "
              "of the byte buffer (4 bytes from byte offset 64 to the end of the file)");
    // A terabyte announced by a tiny file: rejected before anything is allocated.
    check_bad("terabyte.safetensors",
              make_st(one(entry("F32", "[274877906944]", "[0,1099511627776]")), f32x2),
              "data_offsets [0, 1099511627776] run past the end of the byte buffer");
    check_bad("size_mismatch.safetensors", make_st(one(entry("F32", "[3]", "[0,8]")), f32x2),
              "shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] span 8");
    check_bad("scalar_mismatch.safetensors", make_st(one(entry("F32", "[]", "[0,8]")), f32x2),
              "shape [] of F32 needs 4 bytes, but data_offsets [0, 8] span 8");
  }
  SECTION("overlaps, holes and uncovered bytes") {
    check_bad("overlap.safetensors",
              make_st("{\"a\":" + entry("F32", "[2]", "[0,8]") +
                          ",\"b\":" + entry("F32", "[2]", "[4,12]") + "}",
                      bytes(12, 0)),
              "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])");
    check_bad("same_range.safetensors", make_st("{\"a\":" + a_ok + ",\"b\":" + a_ok + "}", f32x2),
              "tensor 'b' (data_offsets [0, 8]) overlaps tensor 'a' (data_offsets [0, 8])");
    check_bad("empty_inside.safetensors",
              make_st("{\"a\":" + a_ok + ",\"z\":" + entry("F32", "[0]", "[4,4]") + "}", f32x2),
              "tensor 'z' (data_offsets [4, 4]) overlaps tensor 'a'");
    check_bad("hole.safetensors",
              make_st("{\"a\":" + entry("F32", "[1]", "[0,4]") +
                          ",\"b\":" + entry("F32", "[1]", "[8,12]") + "}",
                      bytes(12, 0)),
              "the byte buffer has a hole of 4 bytes (byte offsets ");
    check_bad("hole_first.safetensors", make_st(one(entry("F32", "[1]", "[4,8]")), f32x2),
              "hole of 4 bytes (byte offsets 64 to 68) before tensor 'a' (data_offsets [4, 8])");
    check_bad("trailing.safetensors", make_st(one(entry("F32", "[1]", "[0,4]")), f32x2),
              "4 bytes at byte offsets 68 to 72 belong to no tensor");
    check_bad("no_tensor_trailing.safetensors", make_st("{}", bytes(3, 0)),
              "3 bytes at byte offsets 16 to 19 belong to no tensor");
  }
  SECTION("what is accepted") {
    // Whitespace around the JSON, unknown keys in an entry, null metadata, zero-size
    // tensors sharing an offset, tensors listed out of offset order.
    const std::string h = "  {\"__metadata__\":null, \"b\":" + entry("U8", "[2]", "[4,6]") +
                          ", \"a\":{\"shape\":[4],\"extra\":{\"x\":[1]},\"dtype\":\"I8\","
                          "\"data_offsets\":[0,4]}, \"e1\":" +
                          entry("F64", "[0]", "[4,4]") +
                          ", \"e0\":" + entry("F64", "[2,0]", "[4,4]") + "}\n\t ";
    const safetensors_file f = open_mem(make_st(h, {1, 2, 3, 4, 5, 6}));
    CHECK(f.names() == std::vector<std::string>{"a", "e0", "e1", "b"});
    CHECK(f.metadata().empty());
    CHECK(f.to_f32("b") == std::vector<float>{5, 6});
  }
}

TEST_CASE("safetensors survives truncated and corrupted headers", "[io][safetensors]") {
  safetensors_writer w;
  w.set_metadata("format", "pt");
  w.add("w", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  w.add("h", "F16", {4}, bytes{0, 0x3C, 0, 0xC0, 0xFF, 0x7B, 1, 0});
  w.add("b", "BF16", {2}, bytes{0x80, 0x3F, 0, 0});
  w.add("q", {5}, std::vector<std::int8_t>{-1, 2, -3, 4, -5});
  w.add("flag", "BOOL", {3}, bytes{0, 1, 1});
  w.add("z", "U8", {0}, bytes{});
  const bytes good = w.to_bytes();
  const safetensors_file ok = safetensors_file::from_memory(good);
  const std::size_t header_end = static_cast<std::size_t>(ok.data_offset());
  REQUIRE(good.size() > 200);

  for (std::size_t len = 0; len < 200; ++len) {
    INFO("truncated to " << len << " bytes");
    CHECK_THROWS_AS(safetensors_file::from_memory(
                        bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len))),
                    lowbit::error);
  }

  std::mt19937 rng(20240611);
  int loaded = 0, rejected = 0, other = 0;
  std::string first_other;
  for (int iter = 0; iter < 2000; ++iter) {
    bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const std::size_t pos = rng() % header_end;  // the length field and the header
      if (rng() % 2)
        b[pos] = static_cast<std::uint8_t>(rng());
      else
        b[pos] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    }
    try {
      const safetensors_file f = safetensors_file::from_memory(std::move(b));
      for (const auto& t : f.tensors()) {
        const auto s = f.bytes(t.name);
        if (s.size() != t.nbytes() || t.file_offset + s.size() > f.file_size()) ++other;
        try {
          (void)f.to_f32(t.name);
          (void)f.view_f32(t.name);
        } catch (const lowbit::error&) {
        }
      }
      ++loaded;
    } catch (const lowbit::error&) {
      ++rejected;
    } catch (const std::exception& e) {
      if (other++ == 0) first_other = e.what();
    } catch (...) {
      if (other++ == 0) first_other = "(not a std::exception)";
    }
  }
  INFO("first unexpected exception: " << first_other);
  CHECK(other == 0);
  CHECK(loaded + rejected == 2000);
  CHECK(rejected > 1000);
  CHECK(loaded > 0);
}

TEST_CASE("safetensors writer validates its input and saves atomically", "[io][safetensors]") {
  safetensors_writer w;
  const std::vector<float> two = {1, 2};
  w.add("a", {2}, two);
  CHECK_THROWS_WITH(w.add("", {2}, two), Contains("safetensors_writer: empty tensor name"));
  CHECK_THROWS_WITH(w.add("__metadata__", {2}, two), Contains("'__metadata__' is reserved"));
  CHECK_THROWS_WITH(w.add("a", {2}, two), Contains("duplicate tensor name 'a'"));
  CHECK_THROWS_WITH(w.add("b", "F17", {2}, raw(two)), Contains("unknown dtype 'F17'"));
  CHECK_THROWS_WITH(w.add("b", {3}, two),
                    Contains("tensor 'b': shape [3] of F32 does not match 8 bytes"));
  CHECK_THROWS_WITH(w.add("b", {-2}, two), Contains("negative dimension -2 at index 0"));
  CHECK_THROWS_WITH(w.add("b", "F4", {3}, bytes{0, 0}),
                    Contains("shape [3] of F4 does not match 2 bytes"));
  CHECK_THROWS_WITH(w.add("\xff", {2}, two), Contains("tensor name '\xff' is not valid UTF-8"));
  CHECK_THROWS_WITH(w.set_metadata("k", "\xc3"),
                    Contains("metadata value '\xc3' is not valid UTF-8"));
  CHECK(w.size() == 1);  // failed adds leave nothing behind

  const std::string path = tmp().file("atomic.safetensors");
  write_bytes(path, bytes{'o', 'l', 'd'});
  w.save(path);
  CHECK(safetensors_file(path).to_f32("a") == two);
  CHECK_FALSE(fs::exists(path + ".tmp"));

  CHECK_THROWS_WITH(w.save(tmp().file("no_such_dir/x.safetensors")),
                    Contains("cannot create '") && Contains("no_such_dir/x.safetensors.tmp") &&
                        Contains("No such file or directory"));
  const std::string dir = tmp().file("a_directory");
  fs::create_directories(fs::path(dir) / "child");
  CHECK_THROWS_WITH(w.save(dir), Contains("cannot rename '" + dir + ".tmp' to '" + dir + "'"));
  CHECK_FALSE(fs::exists(dir + ".tmp"));
}
