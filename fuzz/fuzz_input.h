// fuzz_input.h — reading a fuzzer's input as a stream of choices.
//
// libFuzzer mutates bytes; the harnesses read them as small decisions (which
// call next, which object, which hostile value). Past the end every read
// returns 0, so any input, even an empty one, is a complete program: the
// mutator never has to find a length that "parses".
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  bool empty() const { return p_ >= end_; }
  size_t left() const { return size_t(end_ - p_); }

  uint8_t u8() { return empty() ? 0 : *p_++; }
  uint16_t u16() { return uint16_t(u8() | (uint16_t(u8()) << 8)); }
  uint32_t u32() { return uint32_t(u16()) | (uint32_t(u16()) << 16); }
  uint64_t u64() { return uint64_t(u32()) | (uint64_t(u32()) << 32); }
  bool flag() { return u8() & 1; }
  // A value in [0, n): n must be > 0.
  size_t below(size_t n) { return n <= 256 ? u8() % n : u32() % n; }
  // One element of a fixed table of interesting values.
  template <typename T, size_t N>
  const T& pick(const T (&table)[N]) {
    return table[below(N)];
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// A fuzzer's verdict on something the library did: prints and aborts, which
// libFuzzer reports as a crash with the input saved.
[[noreturn]] void finding(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace fuzz
