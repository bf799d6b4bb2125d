// SPDX-License-Identifier: Apache-2.0
// Tests of lowbit/io/npy.hpp: round trips, numpy byte compatibility and hostile files.
#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lowbit/io/npy.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using lowbit::io::npy_array;
using lowbit::io::parse_npy;
using lowbit::io::read_npy;
using lowbit::io::write_npy;

namespace {

const lowbit_test::temp_dir& tmp() {
  static const lowbit_test::temp_dir d("lowbit_test_npy_");
  return d;
}

using bytes = std::vector<unsigned char>;

void write_bytes(const std::string& path, const bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

/// A .npy image with an arbitrary header dict (padded like numpy unless `pad` is false).
bytes make_npy(const std::string& dict, const bytes& data, int major = 1, bool pad = true) {
  const std::size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  if (pad) {
    std::size_t total = preamble + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
  }
  bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  const auto hl = static_cast<std::uint32_t>(header.size());
  for (std::size_t i = 0; i < preamble - 8; ++i)
    out.push_back(static_cast<unsigned char>(hl >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string dict_for(const std::string& descr, const std::string& shape,
                     const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

/// Writes `b` to a fresh file named `name` and returns its path.
std::string file_with(const std::string& name, const bytes& b) {
  const std::string p = tmp().file(name);
  write_bytes(p, b);
  return p;
}

template <class T>
std::vector<T> sample_values(std::int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      v[static_cast<std::size_t>(i)] = (i % 3) == 1;
    } else if constexpr (std::is_floating_point_v<T>) {
      v[static_cast<std::size_t>(i)] =
          static_cast<T>(i) * static_cast<T>(-1.25) + static_cast<T>(0.1);
    } else {
      // Wraps through the whole range, negative values included for signed types.
      v[static_cast<std::size_t>(i)] =
          static_cast<T>(static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull);
    }
  }
  return v;
}

const std::vector<std::vector<std::int64_t>> kShapes = {{}, {0}, {3}, {2, 3, 4}};

}  // namespace

TEMPLATE_TEST_CASE("npy round trip through a file", "[io][npy]", float, double, std::uint8_t,
                   std::int8_t, std::int16_t, std::uint16_t, std::int32_t, std::uint32_t,
                   std::int64_t, std::uint64_t, bool) {
  for (const auto& shape : kShapes) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    const auto values = sample_values<TestType>(n);
    // std::vector<bool> has no data(): copy into a plain buffer.
    std::unique_ptr<TestType[]> buf(new TestType[static_cast<std::size_t>(n) + 1]);
    for (std::int64_t i = 0; i < n; ++i)
      buf[static_cast<std::size_t>(i)] = values[static_cast<std::size_t>(i)];
    const std::string path = tmp().file(std::string("rt_") + lowbit::io::npy_descr_of<TestType>() +
                                        "_" + std::to_string(shape.size()) + ".npy");
    DYNAMIC_SECTION("descr " << lowbit::io::npy_descr_of<TestType>() << " rank " << shape.size()) {
      write_npy(path, shape, buf.get());
      const bytes img = read_bytes(path);
      REQUIRE(img.size() >= 64);
      CHECK((img.size() - static_cast<std::size_t>(n) * sizeof(TestType)) % 64 ==
            0);  // aligned data
      CHECK(img[img.size() - static_cast<std::size_t>(n) * sizeof(TestType) - 1] == '\n');
      const npy_array a = read_npy(path);
      CHECK(a.descr == lowbit::io::npy_descr_of<TestType>());
      CHECK(a.shape == shape);
      CHECK(a.numel() == n);
      REQUIRE(a.holds<TestType>());
      const TestType* got = a.template as<TestType>();
      for (std::int64_t i = 0; i < n; ++i) {
        INFO("element " << i);
        CHECK(got[i] == buf[static_cast<std::size_t>(i)]);
      }
      const auto view = a.template view<TestType>();
      CHECK(view.shape == shape);
      // The in-memory writer and parser agree with the file versions.
      CHECK(lowbit::io::serialize_npy(a) == img);
      CHECK(parse_npy(img.data(), img.size(), "mem").bytes == a.bytes);
    }
  }
}

TEST_CASE("npy writes exactly numpy's header", "[io][npy]") {
  const float x[6] = {1, 2, 3, 4, 5, 6};
  const bytes img = lowbit::io::serialize_npy(lowbit::io::make_npy_array<float>({2, 3}, x));
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  REQUIRE(img.size() == 128 + 24);
  CHECK(std::string(img.begin() + 10,
                    img.begin() + 10 + static_cast<std::ptrdiff_t>(dict.size())) == dict);
  CHECK(img[6] == 1);
  CHECK(img[7] == 0);
  CHECK(img[8] == 118);  // header length 128 - 10, little-endian
  CHECK(img[9] == 0);
  CHECK(img[127] == '\n');
  CHECK(std::memcmp(img.data() + 128, x, sizeof(x)) == 0);

  // The header text as numpy writes it: dict, spaces, '\n', data at a multiple of 64.
  auto header_text = [](const bytes& b) {
    const std::size_t len = b[8] | (b[9] << 8);
    std::string h(b.begin() + 10, b.begin() + 10 + static_cast<std::ptrdiff_t>(len));
    return h.substr(0, h.find_last_not_of(" \n") + 1);
  };
  const std::int64_t s = 7;
  CHECK(header_text(lowbit::io::serialize_npy(lowbit::io::make_npy_array<std::int64_t>({}, &s))) ==
        "{'descr': '<i8', 'fortran_order': False, 'shape': (), }");
  CHECK(header_text(lowbit::io::serialize_npy(lowbit::io::make_npy_array<std::int64_t>({1}, &s))) ==
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }");
  CHECK(header_text(img) == dict);
}

TEST_CASE("npy rewrites numpy's own files byte for byte", "[io][npy]") {
  const fs::path dir = fs::path(LOWBIT_CONFORMANCE_DIR) / "torch" / "data";
  if (!fs::is_directory(dir)) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true")
      FAIL("conformance folder missing at " << dir.string() << " (CI=true: it is required)");
    WARN("conformance folder missing at " << dir.string() << ": numpy byte-compat check skipped");
    return;
  }
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().extension() != ".npy") continue;
    INFO(e.path().string());
    const npy_array a = read_npy(e.path().string());
    CHECK(lowbit::io::serialize_npy(a) == read_bytes(e.path().string()));
    if (++n == 60) break;  // a sample is enough; the conformance test reads them all
  }
  CHECK(n > 0);
}

TEST_CASE("npy reads format versions 2.0 and 3.0, and half as raw uint16", "[io][npy]") {
  const bytes data = {1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  for (int major : {2, 3}) {
    const npy_array a = read_npy(file_with("v" + std::to_string(major) + ".npy",
                                           make_npy(dict_for("<i4", "(2,)"), data, major)));
    CHECK(a.descr == "<i4");
    REQUIRE(a.shape == std::vector<std::int64_t>{2});
    CHECK(a.as<std::int32_t>()[0] == 1);
    CHECK(a.as<std::int32_t>()[1] == -1);
  }
  // '<f2': 1.0 and -2.0 as IEEE half bit patterns.
  const npy_array h =
      read_npy(file_with("half.npy", make_npy(dict_for("<f2", "(2,)"), {0x00, 0x3C, 0x00, 0xC0})));
  CHECK(h.descr == "<f2");
  CHECK(h.holds<std::uint16_t>());
  CHECK(h.as<std::uint16_t>()[0] == 0x3C00);
  CHECK(h.as<std::uint16_t>()[1] == 0xC000);
  CHECK_THROWS_WITH(h.as<std::int16_t>(), Contains("holds '<f2', not '<i2'"));
  const std::string back = tmp().file("half_back.npy");
  write_npy(back, h);
  CHECK(read_npy(back).descr == "<f2");
}

TEST_CASE("npy accepts what numpy accepts", "[io][npy]") {
  const bytes four = {1, 2, 3, 4};
  SECTION("keys in any order, double quotes, no trailing comma, unpadded header") {
    const npy_array a = parse_npy(
        make_npy("{\"shape\": (4,), \"fortran_order\": False, \"descr\": \"|u1\"}", four, 1, false),
        "mem");
    CHECK(a.shape == std::vector<std::int64_t>{4});
    CHECK(a.as<std::uint8_t>()[3] == 4);
  }
  SECTION("one-byte types with any byte-order character are canonicalised") {
    CHECK(parse_npy(make_npy(dict_for("<u1", "(4,)"), four), "mem").descr == "|u1");
    CHECK(parse_npy(make_npy(dict_for(">i1", "(4,)"), four), "mem").descr == "|i1");
    CHECK(parse_npy(make_npy(dict_for("=f4", "(1,)"), four), "mem").descr == "<f4");
  }
  SECTION("fortran_order True for 1-D and 0-D arrays") {
    CHECK(parse_npy(make_npy(dict_for("|u1", "(4,)", "True"), four), "mem").numel() == 4);
    CHECK(parse_npy(make_npy(dict_for("<f4", "()", "True"), four), "mem").numel() == 1);
  }
  SECTION("Python 2 long suffix and zero-size dims beside huge ones") {
    CHECK(parse_npy(make_npy(dict_for("|u1", "(4L,)"), four), "mem").numel() == 4);
    CHECK(parse_npy(make_npy(dict_for("<f8", "(0, 1152921504606846975)"), {}), "mem").numel() == 0);
    // Like numpy, the non-zero dims times the item size must not overflow even then.
    CHECK_THROWS_WITH(parse_npy(make_npy(dict_for("<f8", "(0, 9223372036854775807)"), {}), "mem"),
                      Contains("overflows"));
  }
  SECTION("trailing bytes when asked to") {
    lowbit::io::npy_read_options o;
    o.allow_trailing_bytes = true;
    const npy_array a = parse_npy(make_npy(dict_for("|u1", "(2,)"), four), "mem", o);
    CHECK(a.bytes == bytes{1, 2});
  }
}

TEST_CASE("npy rejects broken and hostile files with a precise error", "[io][npy]") {
  const bytes f4x3(12, 0);
  auto check_file = [](const std::string& name, const bytes& b, const std::string& piece) {
    const std::string path = file_with(name, b);
    INFO("file " << name);
    CHECK_THROWS_AS(read_npy(path), lowbit::error);
    CHECK_THROWS_WITH(read_npy(path), Contains(piece) && Contains(path));
    // The in-memory parser reports the same problem.
    CHECK_THROWS_WITH(parse_npy(b.data(), b.size(), "label"), Contains(piece) && Contains("label"));
  };

  SECTION("missing file") {
    CHECK_THROWS_WITH(read_npy(tmp().file("does_not_exist.npy")),
                      Contains("does_not_exist.npy") && Contains("cannot open the file"));
  }
  SECTION("bad magic") {
    bytes b = make_npy(dict_for("<f4", "(3,)"), f4x3);
    b[1] = 'X';
    check_file("bad_magic.npy", b, "bad magic string at byte offset 0");
    check_file("text.npy", bytes{'h', 'e', 'l', 'l', 'o', '\n'}, "not a .npy file");
  }
  SECTION("empty file and truncated preamble") {
    check_file("empty.npy", {}, "truncated preamble: the file has 0 bytes");
    check_file("magic_only.npy", {0x93, 'N', 'U', 'M', 'P', 'Y'},
               "truncated preamble: the file has 6 bytes");
    check_file("no_len.npy", {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 10, 0},
               "header length field at byte offset 8 needs 4 bytes");
  }
  SECTION("unsupported version") {
    bytes b = make_npy(dict_for("<f4", "(3,)"), f4x3);
    b[6] = 4;
    check_file("v4.npy", b, "unsupported .npy format version 4.0 at byte offset 6");
    b[6] = 1;
    b[7] = 1;
    check_file("v11.npy", b, "unsupported .npy format version 1.1");
  }
  SECTION("truncated header: the header length runs past the end of the file") {
    const bytes full = make_npy(dict_for("<f4", "(3,)"), f4x3);
    check_file("cut_header.npy", bytes(full.begin(), full.begin() + 40),
               "header length 118 at byte offset 8 runs past the end of the file (the header would "
               "end at byte offset 128, the file has 40 bytes)");
    bytes huge = full;
    huge[8] = 0xFF;
    huge[9] = 0xFF;
    check_file("huge_header_len.npy", huge,
               "header length 65535 at byte offset 8 runs past the end");
  }
  SECTION("header length over the limit") {
    lowbit::io::npy_read_options o;
    o.max_header_bytes = 32;
    const bytes b = make_npy(dict_for("<f4", "(3,)"), f4x3);
    CHECK_THROWS_WITH(
        parse_npy(b.data(), b.size(), "mem", o),
        Contains("header length 118 (at byte offset 8) exceeds the limit of 32 bytes"));
    bytes v2 = make_npy(dict_for("<f4", "(3,)"), f4x3, 2);
    v2[11] = 0x80;  // a 2 GiB header length in a tiny file
    check_file("v2_huge_header.npy", v2, "exceeds the limit of 65536 bytes");
  }
  SECTION("header dict not parseable") {
    check_file("no_brace.npy", make_npy("'descr': '<f4'}", f4x3),
               "bad header at byte offset 10: the header must start with '{', got '''");
    check_file("no_colon.npy",
               make_npy("{'descr' '<f4', 'fortran_order': False, 'shape': (3,), }", f4x3),
               "bad header at byte offset 19: expected ':' after the key, got '''");
    check_file("unterminated_string.npy", make_npy("{'descr: <f4, }", f4x3),
               "byte offset 11: unterminated string");
    check_file("no_comma.npy",
               make_npy("{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}", f4x3),
               "expected ',' or '}' after the value of 'descr'");
    check_file("garbage_after.npy", make_npy(dict_for("<f4", "(3,)") + " x", f4x3),
               "unexpected character after the closing '}' of the header dict");
    check_file("cut_dict.npy", make_npy("{'descr': '<f4', ", f4x3, 1, false),
               "expected a key string (the header ends here)");
    check_file("escape.npy", make_npy("{'de\\scr': '<f4'}", f4x3), "escape sequences");
    check_file("unknown_key.npy",
               make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", f4x3),
               "unexpected key 'x'");
    check_file("missing_shape.npy", make_npy("{'descr': '<f4', 'fortran_order': False}", f4x3),
               "missing key 'shape'");
    check_file(
        "dup_key.npy",
        make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", f4x3),
        "byte offset 27: duplicate key 'descr'");
    check_file("fortran_bad.npy", make_npy(dict_for("<f4", "(3,)", "1"), f4x3),
               "'fortran_order' must be True or False, got '1'");
    check_file("shape_list.npy", make_npy(dict_for("<f4", "[3]"), f4x3),
               "'shape' must be a tuple, got a list");
    check_file("shape_int.npy", make_npy(dict_for("<f4", "3"), f4x3),
               "'shape' must be a tuple, got '3'");
    check_file("shape_paren.npy", make_npy(dict_for("<f4", "(3)"), f4x3),
               "'shape' (3) is not a tuple (a 1-tuple needs a trailing comma)");
    check_file("shape_open.npy",
               make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4", f4x3, 1, false),
               "unterminated 'shape' tuple");
    check_file("shape_empty_item.npy", make_npy(dict_for("<f4", "(3,,)"), f4x3),
               "expected a dimension in 'shape', got ','");
  }
  SECTION("negative, non-integer and oversized dims") {
    check_file("neg_dim.npy", make_npy(dict_for("<f4", "(-3,)"), f4x3),
               "bad header at byte offset 61: negative dimension -3");
    check_file("float_dim.npy", make_npy(dict_for("<f4", "(3.0,)"), f4x3),
               "dimension '3.0' is not an integer");
    check_file("name_dim.npy", make_npy(dict_for("<f4", "(abc,)"), f4x3),
               "dimension 'abc' is not an integer");
    check_file("hex_dim.npy", make_npy(dict_for("<f4", "(0x3,)"), f4x3),
               "dimension '0x3' is not an integer");
    check_file("big_dim.npy", make_npy(dict_for("<f4", "(99999999999999999999,)"), f4x3),
               "dimension 99999999999999999999 does not fit in int64");
    std::string many = "(";
    for (int i = 0; i < 65; ++i) many += "1, ";
    check_file("many_dims.npy", make_npy(dict_for("<f4", many + ")"), f4x3),
               "more than 64 dimensions");
  }
  SECTION("product of dims overflows") {
    check_file("overflow.npy", make_npy(dict_for("<f4", "(4294967296, 4294967296)"), f4x3),
               "shape (4294967296, 4294967296) of '<f4' overflows");
    // Fits in int64 elements, but not once multiplied by the item size.
    check_file("overflow_bytes.npy", make_npy(dict_for("<f8", "(2305843009213693952,)"), f4x3),
               "overflows: the byte count exceeds 2^63 - 1");
  }
  SECTION("more data announced than present: rejected before allocating") {
    check_file(
        "short_data.npy", make_npy(dict_for("<f4", "(4,)"), f4x3),
        "data truncated: shape (4,) of '<f4' needs 16 bytes at byte offset 128, only 12 remain");
    // A terabyte announced by a 140-byte file: must not try to allocate it.
    check_file("terabyte.npy", make_npy(dict_for("<f4", "(1099511627776,)"), f4x3),
               "needs 4398046511104 bytes at byte offset 128, only 12 remain");
  }
  SECTION("trailing garbage is an error by default") {
    check_file(
        "trailing.npy", make_npy(dict_for("<f4", "(2,)"), f4x3),
        "4 trailing bytes after the array data (the data ends at byte offset 136, the file has "
        "140 bytes)");
  }
  SECTION("unsupported dtypes") {
    check_file("big_endian.npy", make_npy(dict_for(">f4", "(3,)"), f4x3),
               "big-endian dtype descr '>f4' is not supported");
    check_file("complex.npy", make_npy(dict_for("<c8", "(3,)"), f4x3),
               "unsupported dtype descr '<c8'");
    check_file("object.npy", make_npy(dict_for("|O", "(3,)"), f4x3),
               "unsupported dtype descr '|O'");
    check_file("no_order.npy", make_npy(dict_for("|f4", "(3,)"), f4x3), "has no byte order");
    check_file("structured.npy",
               make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", f4x3),
               "structured dtype descr (a list) is not supported");
  }
  SECTION("fortran order for rank > 1") {
    check_file("fortran.npy", make_npy(dict_for("<f4", "(1, 3)", "True"), f4x3),
               "fortran_order True is supported for 0-D and 1-D arrays only, got shape (1, 3)");
  }
  SECTION("bool bytes other than 0 and 1") {
    check_file("bool2.npy", make_npy(dict_for("|b1", "(3,)"), {0, 1, 2}),
               "bool element 2 at byte offset 130 has value 2 (must be 0 or 1)");
  }
}

TEST_CASE("npy never crashes on truncated or corrupted images", "[io][npy]") {
  const std::int16_t v[6] = {1, -2, 3, -4, 5, -6};
  const bytes good = lowbit::io::serialize_npy(lowbit::io::make_npy_array<std::int16_t>({2, 3}, v));
  int errors = 0, parsed = 0;
  for (std::size_t len = 0; len < good.size(); ++len) {
    CHECK_THROWS_AS(parse_npy(good.data(), len, "cut"), lowbit::error);
  }
  // Every single-byte corruption of the preamble and header: parsed or a lowbit::error.
  std::mt19937 rng(1234);
  for (std::size_t i = 0; i < 64; ++i) {
    for (int k = 0; k < 8; ++k) {
      bytes b = good;
      b[i] = static_cast<unsigned char>(rng());
      try {
        const npy_array a = parse_npy(b.data(), b.size(), "fuzz");
        CHECK(a.bytes.size() == a.numel() * a.item_size());
        ++parsed;
      } catch (const lowbit::error&) {
        ++errors;
      }
    }
  }
  CHECK(errors > 0);
  CHECK(errors + parsed == 64 * 8);
}

TEST_CASE("npy writer and accessors validate their input", "[io][npy]") {
  npy_array a;
  a.descr = "<f4";
  a.shape = {2};
  a.bytes.resize(4);
  CHECK_THROWS_WITH(lowbit::io::serialize_npy(a),
                    Contains("shape (2,) of '<f4' needs 8 bytes, got 4"));
  CHECK_THROWS_WITH(a.as<float>(), Contains("4 bytes do not match shape (2,)"));
  a.bytes.resize(8);
  CHECK_THROWS_WITH(a.as<double>(), Contains("holds '<f4', not '<f8'"));
  a.descr = ">f4";
  CHECK_THROWS_WITH(lowbit::io::serialize_npy(a), Contains("big-endian"));
  a.descr = "<f4";
  a.shape = {-2};
  CHECK_THROWS_WITH(lowbit::io::serialize_npy(a), Contains("negative dimension -2"));
  const float one = 1.0f;
  CHECK_THROWS_WITH(write_npy(tmp().file("no_such_dir/x.npy"), std::vector<std::int64_t>{1}, &one),
                    Contains("cannot open the file for writing"));
}
