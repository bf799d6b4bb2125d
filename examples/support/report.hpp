// SPDX-License-Identifier: Apache-2.0
// examples/support/report.hpp: what the comparison examples share: command-line flags,
// median timing, peak RSS, a progress bar, Markdown tables and SVG bar charts.
// Example code, not part of the library.
#ifndef LOWBIT_EXAMPLES_SUPPORT_REPORT_HPP_
#define LOWBIT_EXAMPLES_SUPPORT_REPORT_HPP_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace example {

// ---- flags -------------------------------------------------------------------------
/// --name=value / --name value / --flag. Unknown flags are an error (with --help text).
class flags {
 public:
  flags(int argc, char** argv, std::string usage) : usage_(std::move(usage)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        help_ = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) throw std::runtime_error("unexpected argument '" + a + "'");
      a = a.substr(2);
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        values_[a.substr(0, eq)] = a.substr(eq + 1);
      } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[a] = argv[++i];
      } else {
        values_[a] = "";
      }
    }
  }
  bool help() const { return help_; }
  const std::string& usage() const { return usage_; }
  std::string str(const std::string& k, const std::string& def) {
    used_.push_back(k);
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  long num(const std::string& k, long def) {
    const std::string v = str(k, "");
    if (v.empty()) return def;
    char* end = nullptr;
    const long r = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0') throw std::runtime_error("--" + k + " expects an integer, got '" + v + "'");
    return r;
  }
  bool flag(const std::string& k) {
    used_.push_back(k);
    return values_.count(k) != 0;
  }
  /// Call after reading every flag: rejects unknown ones.
  void finish() const {
    for (const auto& kv : values_)
      if (std::find(used_.begin(), used_.end(), kv.first) == used_.end())
        throw std::runtime_error("unknown option --" + kv.first + " (see --help)");
  }

 private:
  std::string usage_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> used_;
  bool help_ = false;
};

// ---- timing ------------------------------------------------------------------------
inline double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

/// Median wall time of `reps` runs of f (after one warm-up run), in seconds.
inline double median_time(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    f();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Peak resident set size of this process in bytes (Linux VmHWM), 0 if unknown.
inline std::size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

/// Resets the peak RSS counter (Linux: write 5 to clear_refs), so a later
/// peak_rss_bytes() measures one phase. Returns false if not supported.
inline bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}

// ---- progress bar ------------------------------------------------------------------
/// A one-line progress bar on stderr (carriage-return updates), e.g. "epoch 2/5 [####   ] 61%".
class progress {
 public:
  progress(std::string label, long total) : label_(std::move(label)), total_(std::max(total, 1L)) {
    draw(0);
  }
  void update(long done, const std::string& note = "") {
    const int pct = static_cast<int>(100 * done / total_);
    if (pct == last_ && note == note_) return;
    note_ = note;
    draw(done);
  }
  void finish(const std::string& note = "") {
    note_ = note;
    draw(total_);
    std::fputc('\n', stderr);
  }

 private:
  void draw(long done) {
    last_ = static_cast<int>(100 * done / total_);
    const int width = 30, fill = static_cast<int>(width * done / total_);
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %s", label_.c_str(), std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), last_, note_.c_str());
    std::fflush(stderr);
  }
  std::string label_, note_;
  long total_;
  int last_ = -1;
};

// ---- tables ------------------------------------------------------------------------
/// A Markdown table, printed to stdout and saved to a file.
class table {
 public:
  explicit table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string markdown() const {
    std::vector<std::size_t> w(header_.size());
    for (std::size_t c = 0; c < header_.size(); ++c) {
      w[c] = header_[c].size();
      for (const auto& r : rows_) w[c] = std::max(w[c], c < r.size() ? r[c].size() : 0);
    }
    auto line = [&](const std::vector<std::string>& cells) {
      std::string s = "|";
      for (std::size_t c = 0; c < w.size(); ++c) {
        const std::string v = c < cells.size() ? cells[c] : "";
        s += " " + v + std::string(w[c] - v.size(), ' ') + " |";
      }
      return s + "\n";
    };
    std::string s = line(header_) + "|";
    for (std::size_t c = 0; c < w.size(); ++c) s += std::string(w[c] + 2, '-') + "|";
    s += "\n";
    for (const auto& r : rows_) s += line(r);
    return s;
  }
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

inline std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
inline std::string mib(double bytes) { return fmt("%.2f MiB", bytes / (1024.0 * 1024.0)); }

// ---- SVG bar charts ------------------------------------------------------------------
struct bar {
  std::string label;
  double value;
  std::string color = "#4C78A8";
};

/// A horizontal bar chart with value labels; self-contained SVG 1.1.
inline std::string svg_bar_chart(const std::string& title, const std::string& unit,
                                 const std::vector<bar>& bars) {
  const int left = 230, width = 760, bar_h = 26, gap = 10, top = 50;
  const int height = top + static_cast<int>(bars.size()) * (bar_h + gap) + 30;
  double mx = 0;
  for (const auto& b : bars) mx = std::max(mx, b.value);
  if (mx <= 0) mx = 1;
  auto esc = [](std::string s) {
    std::string o;
    for (char c : s)
      o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    return o;
  };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  std::to_string(left + width + 120) + "\" height=\"" + std::to_string(height) +
                  "\" font-family=\"sans-serif\" font-size=\"13\">\n"
                  "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                  "<text x=\"10\" y=\"28\" font-size=\"17\" font-weight=\"bold\">" +
                  esc(title) + "</text>\n";
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const int y = top + static_cast<int>(i) * (bar_h + gap);
    const int w = static_cast<int>(width * bars[i].value / mx);
    s += "<text x=\"" + std::to_string(left - 8) + "\" y=\"" + std::to_string(y + 18) +
         "\" text-anchor=\"end\">" + esc(bars[i].label) + "</text>\n";
    s += "<rect x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
         std::to_string(std::max(w, 1)) + "\" height=\"" + std::to_string(bar_h) + "\" fill=\"" +
         bars[i].color + "\"/>\n";
    s += "<text x=\"" + std::to_string(left + std::max(w, 1) + 6) + "\" y=\"" +
         std::to_string(y + 18) + "\">" + esc(fmt("%.4g", bars[i].value) + " " + unit) +
         "</text>\n";
  }
  return s + "</svg>\n";
}

inline void write_file(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path().empty() ? "." : p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << content;
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

}  // namespace example

#endif  // LOWBIT_EXAMPLES_SUPPORT_REPORT_HPP_
