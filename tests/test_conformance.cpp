// SPDX-License-Identifier: Apache-2.0
// Conformance with PyTorch 1.13: every case of ../shared/conformance/torch/cases.json.
//
// qpt.* / qpc.*  lowbit::quantize of the case's input with the case's parameters must
//                give torch's int_repr, and lowbit::dequantize of torch's int_repr must
//                give torch's dequant (each under its manifest tolerance), on every
//                ISA available up to the current cap (the dispatch is swept).
// obs.*          lowbit::minmax_observer (per tensor or per_channel) fed every batch,
//                then compute(): scale, zero point, min/max and batch 0 quantized with
//                the result (full dtype range, as torch does) against torch's observers.
// Informational cases (torch quirks; HistogramObserver, run as
// lowbit::histogram_observer in histogram_compat::torch_1_13 mode) are run but never
// asserted: a WARN line reports a difference. Every case is a DYNAMIC_SECTION named
// after it; a last section checks that every non-informational case really ran.
// Set LOWBIT_CONFORMANCE_SUMMARY=1 to print per-group pass/fail counts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantize.hpp"
#include "lowbit/reference.hpp"
#include "lowbit/view.hpp"
#include "support/conformance.hpp"

namespace {

namespace conf = lowbit_test::conformance;
using conf::json;
using lowbit::io::npy_array;

struct named_check {
  std::string name;
  conf::comparison cmp;
};

/// Everything one case produced.
struct case_outcome {
  std::vector<named_check> checks;
  bool expects_error = false;
  bool threw = false;
  bool threw_lowbit_error = false;
  std::string error;

  bool ok() const {
    if (expects_error) return threw_lowbit_error;
    if (threw) return false;
    for (const auto& c : checks)
      if (!c.cmp.ok) return false;
    return true;
  }
  /// One line: what differed (for WARN on informational cases).
  std::string summary() const {
    std::ostringstream os;
    if (expects_error) {
      os << (threw_lowbit_error ? "rejected as expected" : "NOT rejected") << "; ";
    } else if (threw) {
      os << "threw: " << error << "; ";
    }
    for (const auto& c : checks) {
      if (c.cmp.ok) continue;
      os << c.name << ": " << c.cmp.n_bad << "/" << c.cmp.n << " differ (max |diff| "
         << conf::num(c.cmp.max_abs_err) << "); ";
    }
    std::string s = os.str();
    if (s.empty()) s = "all checks pass";
    return s;
  }
};

bool case_expects_error(const json& c) {
  if (c.value("expect_error", false)) return true;
  if (!c.contains("expected")) return false;
  for (const auto& e : c["expected"]) {
    if (e.contains("tolerance") && e["tolerance"].value("policy", "") == "expect_error")
      return true;
  }
  return false;
}

lowbit::dtype parse_dtype(const std::string& s) {
  if (s == "qint8") return lowbit::dtype::int8;
  if (s == "quint8") return lowbit::dtype::uint8;
  throw std::runtime_error("unsupported torch dtype '" + s + "'");
}

lowbit::scheme parse_scheme(const std::string& qscheme_or_mode) {
  if (qscheme_or_mode.find("symmetric") != std::string::npos) return lowbit::scheme::symmetric;
  if (qscheme_or_mode.find("affine") != std::string::npos) return lowbit::scheme::affine;
  throw std::runtime_error("unsupported mode/qscheme '" + qscheme_or_mode + "'");
}

float exact_float(double v, const char* what) {
  const auto f = static_cast<float>(v);
  if (static_cast<double>(f) != v)
    throw std::runtime_error(std::string(what) + " " + conf::num(v) + " is not a float32 value");
  return f;
}

/// Restores the dispatch cap when the sweep ends (even on an exception).
struct isa_cap_guard {
  lowbit::isa saved = lowbit::max_isa();
  isa_cap_guard() = default;
  isa_cap_guard(const isa_cap_guard&) = delete;
  isa_cap_guard& operator=(const isa_cap_guard&) = delete;
  ~isa_cap_guard() { lowbit::set_max_isa(saved); }
};

/// The available ISAs up to the current cap (LOWBIT_MAX_ISA is honoured).
std::vector<lowbit::isa> isas_to_sweep() {
  const auto cap = static_cast<unsigned>(lowbit::max_isa());
  std::vector<lowbit::isa> out;
  for (auto i : lowbit::available_isas())
    if (static_cast<unsigned>(i) <= cap) out.push_back(i);
  return out;
}

/// lowbit::quantize into the storage type of p.type; the logical values as doubles.
std::vector<double> quantize_to_doubles(const lowbit::tensor_view<const float>& x,
                                        const lowbit::quant_params& p) {
  const auto n = static_cast<std::size_t>(x.numel());
  if (p.type == lowbit::dtype::int8) {
    std::vector<std::int8_t> q(n);
    lowbit::quantize(x, p, lowbit::span<std::int8_t>(q.data(), q.size()));
    return conf::to_doubles(q);
  }
  std::vector<std::uint8_t> q(lowbit::storage_bytes(p.type, n));
  lowbit::quantize(x, p, lowbit::span<std::uint8_t>(q.data(), q.size()));
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = lowbit::reference::load(p.type, q.data(), static_cast<std::int64_t>(i));
  return out;
}

/// lowbit::dequantize of an int_repr array (int8 or uint8 storage).
std::vector<double> dequantize_to_doubles(const npy_array& q, const lowbit::quant_params& p) {
  const auto n = static_cast<std::size_t>(q.numel());
  std::vector<float> out(n);
  lowbit::tensor_view<float> ov(out.data(), q.shape);
  if (q.descr == "|i1") {
    lowbit::dequantize(lowbit::span<const std::int8_t>(q.as<std::int8_t>(), n), p, ov);
  } else if (q.descr == "|u1") {
    lowbit::dequantize(lowbit::span<const std::uint8_t>(q.as<std::uint8_t>(), n), p, ov);
  } else {
    throw std::runtime_error("int_repr of descr '" + q.descr + "' cannot be dequantized");
  }
  return conf::to_doubles(out);
}

/// quant_params for a qpt.* / qpc.* case.
lowbit::quant_params build_params(const conf::manifest& m, const json& params) {
  lowbit::quant_params p;
  p.type = parse_dtype(params.at("dtype").get<std::string>());
  p.scheme = parse_scheme(params.at("mode").get<std::string>());
  if (parse_scheme(params.at("qscheme").get<std::string>()) != p.scheme)
    throw std::runtime_error("mode and qscheme disagree");
  const std::string qscheme = params.at("qscheme").get<std::string>();
  if (qscheme.rfind("per_tensor", 0) == 0) {
    p.granularity = lowbit::per_tensor{};
    p.scales = {exact_float(params.at("scale").get<double>(), "scale")};
    p.zero_points = {params.at("zero_point").get<std::int32_t>()};
  } else if (qscheme.rfind("per_channel", 0) == 0) {
    p.granularity = lowbit::per_channel{params.at("axis").get<int>()};
    std::vector<double> scales, zps;
    if (params.contains("scales_file"))
      scales = conf::to_doubles(conf::load_array(m, params["scales_file"]));
    else
      scales = params.at("scales").get<std::vector<double>>();
    if (params.contains("zero_points_file"))
      zps = conf::to_doubles(conf::load_array(m, params["zero_points_file"]));
    else
      zps = params.at("zero_points").get<std::vector<double>>();
    for (double s : scales) p.scales.push_back(exact_float(s, "scale"));
    for (double z : zps) p.zero_points.push_back(static_cast<std::int32_t>(z));
  } else {
    throw std::runtime_error("unsupported qscheme '" + qscheme + "'");
  }
  p.quant_min = params.at("quant_min").get<std::int32_t>();
  p.quant_max = params.at("quant_max").get<std::int32_t>();
  return p;
}

/// qparams_options for an obs.* case.
lowbit::qparams_options observer_options(const json& params) {
  lowbit::qparams_options o;
  o.type = parse_dtype(params.at("dtype").get<std::string>());
  o.scheme = parse_scheme(params.at("qscheme").get<std::string>());
  o.convention = lowbit::symmetric_convention::pytorch;
  o.reduce_range = params.value("reduce_range", false);
  if (params.contains("quant_min")) o.quant_min = params["quant_min"].get<std::int32_t>();
  if (params.contains("quant_max")) o.quant_max = params["quant_max"].get<std::int32_t>();
  if (params.contains("eps")) o.eps = exact_float(params["eps"].get<double>(), "eps");
  return o;
}

lowbit::granularity observer_granularity(const json& params) {
  const std::string qscheme = params.at("qscheme").get<std::string>();
  if (qscheme.rfind("per_channel", 0) == 0) return lowbit::per_channel{params.value("ch_axis", 0)};
  return lowbit::per_tensor{};
}

/// Runs one case against the library and compares every expected array.
class case_runner {
 public:
  case_runner(const conf::manifest& m, const json& c) : m_(m), c_(c) {}

  case_outcome run() {
    out_.expects_error = case_expects_error(c_);
    try {
      const std::string group = c_.at("group").get<std::string>();
      if (group == "quantize_per_tensor" || group == "quantize_per_channel") {
        run_quantize_case();
      } else if (group == "observer") {
        run_observer_case();
      } else {
        throw std::runtime_error("unknown group '" + group + "'");
      }
      if (!out_.expects_error) require_all_expected_checked();
    } catch (const lowbit::error& e) {
      out_.threw = out_.threw_lowbit_error = true;
      out_.error = e.what();
    } catch (const std::exception& e) {
      out_.threw = true;
      out_.error = std::string("(not a lowbit::error) ") + e.what();
    }
    return out_;
  }

 private:
  const json& expected_entry(const std::string& key) const { return c_.at("expected").at(key); }

  /// Compares `got` with expected[key] under its tolerance; records it as `label`.
  void check(const std::string& key, const std::string& label, const std::vector<double>& got) {
    const json& e = expected_entry(key);
    const conf::tolerance tol = conf::tolerance::from_json(e.at("tolerance"));
    const npy_array exp = conf::load_array(m_, e);
    std::vector<double> mask;
    if (tol.needs_mask()) mask = conf::to_doubles(conf::load_array(m_, c_.at("aux").at(tol.mask)));
    out_.checks.push_back({label, conf::compare(tol, got, conf::to_doubles(exp), exp.shape,
                                                tol.needs_mask() ? &mask : nullptr)});
    checked_.insert(key);
  }

  void require_all_expected_checked() {
    for (auto it = c_.at("expected").begin(); it != c_.at("expected").end(); ++it) {
      if (checked_.count(it.key()) == 0) {
        conf::comparison miss;
        miss.ok = false;
        miss.report = "expected array '" + it.key() + "' is not checked by this test";
        out_.checks.push_back({it.key(), miss});
      }
    }
  }

  void run_quantize_case() {
    const lowbit::quant_params p = build_params(m_, c_.at("params"));
    const npy_array x = conf::load_array(m_, c_.at("inputs").at("x"));
    const npy_array q_expected = conf::load_array(m_, expected_entry("int_repr"));
    isa_cap_guard guard;
    for (lowbit::isa level : isas_to_sweep()) {
      lowbit::set_max_isa(level);
      const std::string at = std::string("@") + lowbit::to_string(level);
      check("int_repr", "int_repr" + at, quantize_to_doubles(x.view<float>(), p));
      // dequantize is checked on torch's int_repr, independently of quantize.
      check("dequant", "dequant" + at, dequantize_to_doubles(q_expected, p));
    }
  }

  void run_observer_case() {
    const json& params = c_.at("params");
    const std::string kind = params.at("observer").get<std::string>();
    const lowbit::qparams_options opts = observer_options(params);
    const lowbit::granularity g = observer_granularity(params);
    std::vector<npy_array> batches;
    for (const auto& b : c_.at("inputs").at("batches")) batches.push_back(conf::load_array(m_, b));
    if (batches.empty()) throw std::runtime_error("no input batches");

    lowbit::quant_params p;
    std::vector<float> mins, maxs;
    if (kind == "MinMaxObserver" || kind == "PerChannelMinMaxObserver") {
      if ((kind == "PerChannelMinMaxObserver") != g.is_per_channel())
        throw std::runtime_error(kind + " with qscheme " + params.at("qscheme").dump());
      lowbit::minmax_observer obs(g);
      for (const auto& b : batches) obs.observe(b.view<float>());
      p = obs.compute(opts);
      mins = obs.min();
      maxs = obs.max();
    } else if (kind == "HistogramObserver") {
      // torch 1.13's quirks are opt-in (histogram_compat::torch_1_13); the default
      // deliberately differs (see calibrate.hpp).
      if (g.is_per_channel()) throw std::runtime_error("per-channel HistogramObserver");
      lowbit::histogram_observer obs(params.value("bins", 2048), params.value("upsample_rate", 128),
                                     lowbit::histogram_compat::torch_1_13);
      for (const auto& b : batches) obs.observe(b.view<float>());
      p = obs.compute(opts);
      mins = {obs.min()};
      maxs = {obs.max()};
    } else {
      throw std::runtime_error("lowbit has no counterpart of torch's " + kind + " to run");
    }

    // The range the parameters were computed for (reduce_range, custom range).
    conf::comparison range;
    const std::vector<double> want = {params.at("resolved_quant_min").get<double>(),
                                      params.at("resolved_quant_max").get<double>()};
    range = conf::compare(conf::tolerance{}, {double(p.quant_min), double(p.quant_max)}, want, {2});
    out_.checks.push_back({"resolved_quant_range", range});

    check("scale", "scale", conf::to_doubles(p.scales));
    check("zero_point", "zero_point", conf::to_doubles(p.zero_points));
    check("min_val", "min_val", conf::to_doubles(mins));
    check("max_val", "max_val", conf::to_doubles(maxs));
    // torch quantizes with the observer's (scale, zero_point) over the full dtype range.
    lowbit::quant_params full = p;
    full.quant_min = lowbit::dtype_min(full.type);
    full.quant_max = lowbit::dtype_max(full.type);
    isa_cap_guard guard;
    for (lowbit::isa level : isas_to_sweep()) {
      lowbit::set_max_isa(level);
      check("int_repr_batch0", std::string("int_repr_batch0@") + lowbit::to_string(level),
            quantize_to_doubles(batches[0].view<float>(), full));
    }
  }

  const conf::manifest& m_;
  const json& c_;
  case_outcome out_;
  std::set<std::string> checked_;
};

/// The manifest, loaded once per process; nullptr (with `why`) when the folder is missing.
const conf::manifest* torch_manifest(std::string& why) {
  const auto path = conf::torch_manifest_path();
  if (!conf::fs::exists(path)) {
    why = "conformance folder missing at " + conf::root_dir().string() + " (no " + path.string() +
          ")";
    return nullptr;
  }
  static const conf::manifest m = conf::load_manifest(path);
  return &m;
}

struct group_tally {
  int pass = 0, fail = 0, informational_differs = 0, informational_same = 0;
  std::size_t masked = 0, off_by_one = 0;  ///< ambiguous elements, and those that used +-1
};

}  // namespace

TEST_CASE("torch conformance cases", "[conformance]") {
  std::string why;
  const conf::manifest* m = torch_manifest(why);
  if (m == nullptr) {
    if (conf::running_in_ci()) FAIL(why << " (CI=true: the conformance data is required)");
    WARN(why << ": skipped");
    return;
  }
  // Across Catch's re-runs of this test case (one per section), in one process.
  static std::set<std::string> checked;
  static std::map<std::string, group_tally> tally;

  const json& cases = m->cases();
  if (m->doc.contains("counts"))
    CHECK(cases.size() == m->doc["counts"].at("total").get<std::size_t>());
  std::size_t non_informational = 0;
  std::set<std::string> names;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    REQUIRE(names.insert(name).second);  // section names must be unique
    const bool informational = conf::is_informational(c);
    if (!informational) ++non_informational;
    DYNAMIC_SECTION(name) {
      const case_outcome o = case_runner(*m, c).run();
      const std::string group = name.substr(0, name.find('.'));
      if (informational) {
        if (o.ok()) {
          ++tally[group].informational_same;
        } else {
          ++tally[group].informational_differs;
          WARN("informational " << name << ": " << o.summary());
        }
      } else {
        INFO("case " << name << ": " << c.value("description", ""));
        if (o.expects_error) {
          INFO("the library must reject this configuration with lowbit::error; " << o.summary());
          CHECK(o.threw_lowbit_error);
        } else {
          if (o.threw) FAIL_CHECK(name << " threw: " << o.error);
          for (const auto& chk : o.checks) {
            INFO(chk.name << ": " << chk.cmp.report);
            CHECK(chk.cmp.ok);
          }
        }
        (o.ok() ? tally[group].pass : tally[group].fail) += 1;
        for (const auto& chk : o.checks) {
          tally[group].masked += chk.cmp.n_masked;
          tally[group].off_by_one += chk.cmp.n_off_by_one;
        }
        if (!o.threw || o.expects_error) checked.insert(name);
      }
    }
  }
  SECTION("every non-informational case was checked") {
    std::string missing;
    for (const auto& c : cases) {
      const std::string name = c.at("name").get<std::string>();
      if (!conf::is_informational(c) && checked.count(name) == 0) missing += " " + name;
    }
    INFO("not checked:" << missing);
    CHECK(checked.size() == non_informational);
    CHECK(non_informational > 0);
    const char* s = std::getenv("LOWBIT_CONFORMANCE_SUMMARY");
    if (s != nullptr && *s != '\0' && std::string(s) != "0") {
      for (const auto& [group, t] : tally)
        std::printf(
            "conformance %-4s: %3d pass, %3d fail, informational: %d same, %d differ; "
            "ambiguous elements %zu, of which off by one %zu\n",
            group.c_str(), t.pass, t.fail, t.informational_same, t.informational_differs, t.masked,
            t.off_by_one);
    }
  }
}

TEST_CASE("conformance: the library rejects what it must", "[conformance][negative]") {
  std::string why;
  const conf::manifest* m = torch_manifest(why);
  if (m == nullptr) {
    if (conf::running_in_ci()) FAIL(why << " (CI=true: the conformance data is required)");
    WARN(why << ": skipped");
    return;
  }
  // Cases the manifest marks expect_error run in "torch conformance cases", which
  // requires a lowbit::error for them. Here: invalid variations of a real case.
  const json* base = nullptr;
  for (const auto& c : m->cases())
    if (c.at("group") == "quantize_per_tensor" && !conf::is_informational(c)) {
      base = &c;
      break;
    }
  REQUIRE(base != nullptr);
  INFO("derived from " << base->at("name").get<std::string>());
  const lowbit::quant_params good = build_params(*m, base->at("params"));
  const npy_array x = conf::load_array(*m, base->at("inputs").at("x"));
  const auto n = static_cast<std::size_t>(x.numel());
  REQUIRE(n > 1);
  std::vector<std::uint8_t> out(lowbit::storage_bytes(good.type, n));
  auto run = [&](const lowbit::tensor_view<const float>& v, const lowbit::quant_params& p) {
    if (p.type == lowbit::dtype::int8)
      lowbit::quantize(v, p,
                       lowbit::span<std::int8_t>(reinterpret_cast<std::int8_t*>(out.data()), n));
    else
      lowbit::quantize(v, p, lowbit::span<std::uint8_t>(out.data(), out.size()));
  };
  CHECK_NOTHROW(run(x.view<float>(), good));

  for (float bad_scale : {0.0f, -good.scales[0], std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(), 1e-45f}) {
    INFO("scale " << bad_scale);
    lowbit::quant_params p = good;
    p.scales[0] = bad_scale;
    CHECK_THROWS_AS(run(x.view<float>(), p), lowbit::error);
  }
  {
    lowbit::quant_params p = good;
    p.zero_points[0] = p.quant_max + 1;
    CHECK_THROWS_AS(run(x.view<float>(), p), lowbit::error);
    p = good;
    std::swap(p.quant_min, p.quant_max);
    CHECK_THROWS_AS(run(x.view<float>(), p), lowbit::error);
  }
  {  // torch maps NaN/Inf to quant_min silently; lowbit's default policy is an error.
    std::vector<float> xs = x.to_vector<float>();
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      xs[n / 2] = bad;
      INFO("input element " << n / 2 << " = " << bad);
      CHECK_THROWS_AS(run(lowbit::tensor_view<const float>(xs.data(), x.shape), good),
                      lowbit::error);
    }
  }
  {  // an output buffer one element short
    std::vector<std::uint8_t> small(n - 1);
    if (good.type == lowbit::dtype::int8)
      CHECK_THROWS_AS(lowbit::quantize(x.view<float>(), good,
                                       lowbit::span<std::int8_t>(
                                           reinterpret_cast<std::int8_t*>(small.data()), n - 1)),
                      lowbit::error);
    else
      CHECK_THROWS_AS(
          lowbit::quantize(x.view<float>(), good, lowbit::span<std::uint8_t>(small.data(), n - 1)),
          lowbit::error);
  }
  {  // calibration data must be finite
    std::vector<float> xs = x.to_vector<float>();
    xs[0] = std::numeric_limits<float>::quiet_NaN();
    lowbit::minmax_observer obs;
    CHECK_THROWS_AS(obs.observe(lowbit::tensor_view<const float>(xs.data(), x.shape)),
                    lowbit::error);
  }
}
