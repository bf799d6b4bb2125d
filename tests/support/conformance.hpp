// SPDX-License-Identifier: Apache-2.0
// support/conformance.hpp: the conformance manifest, its arrays and its tolerance policies.
//
// The manifest (../shared/conformance/torch/cases.json, see its README) names every
// input and expected output as a .npy file and says under which tolerance policy an
// expected array is compared. This header is the reusable, library-independent half
// of the conformance test: loading (nlohmann::json + lowbit::io::read_npy, with the
// manifest's npy_descr and shape cross-checked against each file) and one checker per
// policy, implemented exactly as the manifest's "tolerance_policies" text defines it:
//
//   exact                   every element identical (integers bit-identical, floats
//                           equal in value; NaN matches NaN)
//   exact_except_ambiguous  got == expected where mask == 0, |got - expected| <= 1
//                           where mask == 1 (mask: an aux array of 0/1)
//   requant                 the same rule as exact_except_ambiguous
//   abs                     |got - expected| <= atol
//   abs_per_row             |got - expected| <= atol[row], row = index along `axis`
//   rel                     |got - expected| <= rtol * |expected|
//   int_abs                 |got - expected| <= max_abs_diff
//
// "expect_error" and "informational" are not comparisons: the test handles them.
// Comparisons run in double, which holds every float32 and every integer involved
// exactly. A non-finite value never passes a tolerance (only `exact` matches NaN
// with NaN and Inf with the same Inf).
#ifndef LOWBIT_TESTS_SUPPORT_CONFORMANCE_HPP_
#define LOWBIT_TESTS_SUPPORT_CONFORMANCE_HPP_

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lowbit/error.hpp"
#include "lowbit/io/npy.hpp"

namespace lowbit_test {
namespace conformance {

using json = nlohmann::json;
namespace fs = std::filesystem;

/// Where the tests look for the conformance folder (CMake's LOWBIT_CONFORMANCE_DIR).
inline fs::path root_dir() {
#ifdef LOWBIT_CONFORMANCE_DIR
  return fs::path(LOWBIT_CONFORMANCE_DIR);
#else
  return fs::path("../shared/conformance");
#endif
}

inline fs::path torch_manifest_path() { return root_dir() / "torch" / "cases.json"; }

/// True when running under CI (environment CI == "true"): missing data is a failure there.
inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

/// A loaded manifest: the JSON document and the folder its relative paths start from.
struct manifest {
  json doc;
  fs::path dir;

  const json& cases() const { return doc.at("cases"); }
};

inline manifest load_manifest(const fs::path& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open conformance manifest " + path.string());
  manifest m;
  try {
    m.doc = json::parse(f);
  } catch (const json::exception& e) {
    throw std::runtime_error("conformance manifest " + path.string() +
                             " is not valid JSON: " + e.what());
  }
  m.dir = path.parent_path();
  if (!m.doc.contains("cases") || !m.doc["cases"].is_array())
    throw std::runtime_error("conformance manifest " + path.string() + " has no 'cases' array");
  return m;
}

inline bool is_informational(const json& c) { return c.value("informational", false); }

/// Reads the array a manifest entry {"file", "npy_descr", "shape", ...} names and checks
/// that the file agrees with the entry.
inline lowbit::io::npy_array load_array(const manifest& m, const json& entry) {
  const fs::path p = m.dir / entry.at("file").get<std::string>();
  lowbit::io::npy_array a = lowbit::io::read_npy(p.string());
  if (entry.contains("npy_descr")) {
    std::string why;
    const std::string want =
        lowbit::io::npy_detail::canonical_descr(entry["npy_descr"].get<std::string>(), why);
    if (a.descr != want)
      throw std::runtime_error(p.string() + ": descr '" + a.descr + "' but the manifest says '" +
                               entry["npy_descr"].get<std::string>() + "'");
  }
  if (entry.contains("shape") && a.shape != entry["shape"].get<std::vector<std::int64_t>>())
    throw std::runtime_error(p.string() + ": shape " + lowbit::io::npy_detail::shape_repr(a.shape) +
                             " differs from the manifest's " + entry["shape"].dump());
  return a;
}

/// Every element of a numeric array as a double (exact for all dtypes used here;
/// int64/uint64 beyond 2^53 would round, and are rejected).
inline std::vector<double> to_doubles(const lowbit::io::npy_array& a) {
  const auto n = static_cast<std::size_t>(a.numel());
  std::vector<double> out(n);
  auto copy = [&](auto tag) {
    using T = decltype(tag);
    const T* p = a.as<T>();
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<double>(p[i]);
  };
  if (a.descr == "<f4")
    copy(float{});
  else if (a.descr == "<f8")
    copy(double{});
  else if (a.descr == "|u1")
    copy(std::uint8_t{});
  else if (a.descr == "|i1")
    copy(std::int8_t{});
  else if (a.descr == "|b1")
    copy(bool{});
  else if (a.descr == "<i2")
    copy(std::int16_t{});
  else if (a.descr == "<u2")
    copy(std::uint16_t{});
  else if (a.descr == "<i4")
    copy(std::int32_t{});
  else if (a.descr == "<u4")
    copy(std::uint32_t{});
  else if (a.descr == "<i8") {
    copy(std::int64_t{});
    for (std::size_t i = 0; i < n; ++i)
      if (std::fabs(out[i]) > 9007199254740992.0)
        throw std::runtime_error("to_doubles: int64 value beyond 2^53");
  } else {
    throw std::runtime_error("to_doubles: unsupported descr '" + a.descr + "'");
  }
  return out;
}

template <class T>
std::vector<double> to_doubles(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// ---------------------------------------------------------------------------------
// Tolerance policies
// ---------------------------------------------------------------------------------

enum class policy {
  exact,
  exact_except_ambiguous,
  requant,
  abs,
  abs_per_row,
  rel,
  int_abs,
  expect_error
};

inline const char* to_string(policy p) {
  switch (p) {
    case policy::exact:
      return "exact";
    case policy::exact_except_ambiguous:
      return "exact_except_ambiguous";
    case policy::requant:
      return "requant";
    case policy::abs:
      return "abs";
    case policy::abs_per_row:
      return "abs_per_row";
    case policy::rel:
      return "rel";
    case policy::int_abs:
      return "int_abs";
    case policy::expect_error:
      return "expect_error";
  }
  return "?";
}

/// One expected array's tolerance, as the manifest states it.
struct tolerance {
  policy kind = policy::exact;
  double atol = 0.0;
  std::vector<double> atol_per_row;
  int axis = 0;
  double rtol = 0.0;
  double max_abs_diff = 0.0;
  std::string mask;  ///< aux array name (exact_except_ambiguous, requant)

  bool needs_mask() const {
    return kind == policy::exact_except_ambiguous || kind == policy::requant;
  }

  /// Parses {"policy": ..., parameters}; throws on an unknown policy or a missing
  /// parameter, so a new policy in the manifest cannot be skipped silently.
  static tolerance from_json(const json& j) {
    tolerance t;
    const std::string name = j.at("policy").get<std::string>();
    if (name == "exact") {
      t.kind = policy::exact;
    } else if (name == "exact_except_ambiguous" || name == "requant") {
      t.kind = name == "requant" ? policy::requant : policy::exact_except_ambiguous;
      t.mask = j.at("mask").get<std::string>();
    } else if (name == "abs") {
      t.kind = policy::abs;
      t.atol = j.at("atol").get<double>();
    } else if (name == "abs_per_row") {
      t.kind = policy::abs_per_row;
      t.atol_per_row = j.at("atol").get<std::vector<double>>();
      t.axis = j.value("axis", 0);
    } else if (name == "rel") {
      t.kind = policy::rel;
      t.rtol = j.at("rtol").get<double>();
    } else if (name == "int_abs") {
      t.kind = policy::int_abs;
      t.max_abs_diff = j.at("max_abs_diff").get<double>();
    } else if (name == "expect_error") {
      t.kind = policy::expect_error;
    } else {
      throw std::runtime_error("unknown tolerance policy '" + name + "'");
    }
    return t;
  }

  std::string describe() const {
    std::ostringstream os;
    os << to_string(kind);
    switch (kind) {
      case policy::abs:
        os << " atol=" << atol;
        break;
      case policy::abs_per_row:
        os << " axis=" << axis << " atol[" << atol_per_row.size() << "]";
        break;
      case policy::rel:
        os << " rtol=" << rtol;
        break;
      case policy::int_abs:
        os << " max_abs_diff=" << max_abs_diff;
        break;
      case policy::exact_except_ambiguous:
      case policy::requant:
        os << " mask=" << mask;
        break;
      default:
        break;
    }
    return os.str();
  }
};

/// The outcome of comparing one array.
struct comparison {
  bool ok = true;
  std::size_t n = 0;             ///< elements compared
  std::size_t n_bad = 0;         ///< elements outside the tolerance
  std::size_t n_masked = 0;      ///< elements under mask == 1
  std::size_t n_off_by_one = 0;  ///< masked elements that used their +-1 allowance
  double max_abs_err = 0.0;
  std::string report;  ///< empty when ok; otherwise the first mismatches, one per line
};

/// "[i, j, k]" for flat index `i` of a C-order array of `shape`.
inline std::string multi_index(std::size_t flat, const std::vector<std::int64_t>& shape) {
  if (shape.empty()) return "[]";
  std::vector<std::int64_t> idx(shape.size());
  auto rest = static_cast<std::int64_t>(flat);
  for (std::size_t d = shape.size(); d-- > 0;) {
    const std::int64_t e = shape[d] > 0 ? shape[d] : 1;
    idx[d] = rest % e;
    rest /= e;
  }
  std::string s = "[";
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + "]";
}

inline std::string num(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g (%a)", v, v);
  }
  return buf;
}

/// Compares `got` with `expected` (both flattened C order of `shape`) under `t`.
/// `mask` (0/1 per element) is required by exact_except_ambiguous and requant.
inline comparison compare(const tolerance& t, const std::vector<double>& got,
                          const std::vector<double>& expected,
                          const std::vector<std::int64_t>& shape,
                          const std::vector<double>* mask = nullptr, std::size_t max_report = 8) {
  comparison r;
  std::ostringstream rep;
  auto config_error = [&](const std::string& msg) {
    r.ok = false;
    r.report = "tolerance " + t.describe() + ": " + msg;
    return r;
  };
  if (t.kind == policy::expect_error) return config_error("expect_error is not a comparison");
  if (got.size() != expected.size())
    return config_error("got " + std::to_string(got.size()) + " elements, expected " +
                        std::to_string(expected.size()));
  if (t.needs_mask() && (mask == nullptr || mask->size() != expected.size()))
    return config_error("mask '" + t.mask + "' missing or of the wrong size");
  std::size_t row_stride = 1;
  if (t.kind == policy::abs_per_row) {
    if (t.axis < 0 || static_cast<std::size_t>(t.axis) >= shape.size())
      return config_error("axis out of range for shape of rank " + std::to_string(shape.size()));
    for (std::size_t d = static_cast<std::size_t>(t.axis) + 1; d < shape.size(); ++d)
      row_stride *= static_cast<std::size_t>(shape[d]);
    if (t.atol_per_row.size() != static_cast<std::size_t>(shape[static_cast<std::size_t>(t.axis)]))
      return config_error(std::to_string(t.atol_per_row.size()) + " atol values for " +
                          std::to_string(shape[static_cast<std::size_t>(t.axis)]) + " rows");
  }
  r.n = got.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], e = expected[i];
    const double d = std::fabs(g - e);
    bool pass = false;
    std::string allowed;
    switch (t.kind) {
      case policy::exact:
        pass = g == e || (std::isnan(g) && std::isnan(e));
        break;
      case policy::exact_except_ambiguous:
      case policy::requant: {
        const double m = (*mask)[i];
        if (m != 0.0 && m != 1.0) {
          pass = false;
          allowed = " (mask value " + num(m) + " is not 0/1)";
        } else if (m == 1.0) {
          ++r.n_masked;
          pass = d <= 1.0;
          if (pass && d != 0.0) ++r.n_off_by_one;
          allowed = " (ambiguous: +-1 allowed)";
        } else {
          pass = g == e;
          allowed = " (mask 0: must be exact)";
        }
        break;
      }
      case policy::abs:
        pass = d <= t.atol;
        allowed = " (atol " + num(t.atol) + ")";
        break;
      case policy::abs_per_row: {
        const std::size_t row =
            (i / row_stride) % static_cast<std::size_t>(shape[static_cast<std::size_t>(t.axis)]);
        pass = d <= t.atol_per_row[row];
        allowed = " (row " + std::to_string(row) + " atol " + num(t.atol_per_row[row]) + ")";
        break;
      }
      case policy::rel:
        pass = d <= t.rtol * std::fabs(e);
        allowed = " (rtol " + num(t.rtol) + ")";
        break;
      case policy::int_abs:
        pass = d <= t.max_abs_diff;
        allowed = " (max_abs_diff " + num(t.max_abs_diff) + ")";
        break;
      case policy::expect_error:
        break;
    }
    if (std::isfinite(d) && d > r.max_abs_err) r.max_abs_err = d;
    if (!pass) {
      if (r.n_bad < max_report)
        rep << "  at " << multi_index(i, shape) << " (flat " << i << "): expected " << num(e)
            << ", got " << num(g) << ", |diff| " << num(d) << allowed << "\n";
      ++r.n_bad;
    }
  }
  if (r.n_bad > 0) {
    r.ok = false;
    std::ostringstream head;
    head << r.n_bad << " of " << r.n << " elements outside " << t.describe();
    if (r.n_bad > max_report) head << " (first " << max_report << " shown)";
    head << ":\n";
    r.report = head.str() + rep.str();
  }
  return r;
}

}  // namespace conformance
}  // namespace lowbit_test

#endif  // LOWBIT_TESTS_SUPPORT_CONFORMANCE_HPP_
