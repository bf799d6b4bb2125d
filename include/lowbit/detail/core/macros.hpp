// SPDX-License-Identifier: Apache-2.0
// detail/core/macros.hpp: namespaces, target regions and small attribute macros.
//
// Namespaces
// ----------
// Everything lives in `lowbit::LOWBIT_ABI_NS`, an inline namespace whose name joins
// the major version with the *baseline* instruction set of the translation unit
// (v0_sse2, v0_avx2, v0_avx512). A kernel in a target region is compiled for its ISA
// *plus* whatever the command line enables: the same inline "avx2" function built in
// a TU with -mavx512f may contain zmm instructions. Without the tag the linker keeps
// one copy of each inline function arbitrarily, and a program whose TUs were built
// with different -m flags could run AVX-512 code inside the AVX2 path (numpy #25274).
// With it, such TUs simply do not share lowbit symbols. Users never spell the tag.
//
// Target regions
// --------------
// Kernels above the compiler baseline are raw intrinsics between
//   LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI) ... LOWBIT_END_TARGET
// placed OUTSIDE namespace blocks (clang needs that). Every function defined in the
// region gets the target attribute; lambdas do not, so a lambda inside a kernel must
// carry LOWBIT_TARGET_ATTR(...) itself. `__AVX2__`-style macros are NOT defined inside
// a region in C++: never test them there.
#ifndef LOWBIT_DETAIL_CORE_MACROS_HPP_
#define LOWBIT_DETAIL_CORE_MACROS_HPP_

#include "lowbit/config.hpp"

// ---- platform -------------------------------------------------------------------
#if defined(__x86_64__) || defined(_M_X64)
#define LOWBIT_ARCH_X86_64 1
#else
#define LOWBIT_ARCH_X86_64 0
#endif

#if defined(__linux__)
#define LOWBIT_OS_LINUX 1
#else
#define LOWBIT_OS_LINUX 0
#endif

// Runtime-dispatched x86 kernels need GCC >= 11 or clang >= 12 (AMX intrinsics) and
// target attributes; other compilers get the portable path only.
#if LOWBIT_ARCH_X86_64 && !defined(LOWBIT_DISABLE_DISPATCH) && \
    ((defined(__clang__) && __clang_major__ >= 12) ||          \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define LOWBIT_HAVE_X86_DISPATCH 1
#else
#define LOWBIT_HAVE_X86_DISPATCH 0
#endif

// ---- ABI namespace --------------------------------------------------------------
// LOWBIT_SEPARATE_KERNELS (arch/tables.hpp) changes what the headers contain, so it is
// part of the tag too: TUs of the two modes share no lowbit symbol either.
#if defined(LOWBIT_SEPARATE_KERNELS)
#if defined(__AVX512F__)
#define LOWBIT_ABI_NS v0_avx512_sk
#elif defined(__AVX2__)
#define LOWBIT_ABI_NS v0_avx2_sk
#else
#define LOWBIT_ABI_NS v0_base_sk
#endif
#else
#if defined(__AVX512F__)
#define LOWBIT_ABI_NS v0_avx512
#elif defined(__AVX2__)
#define LOWBIT_ABI_NS v0_avx2
#else
#define LOWBIT_ABI_NS v0_base
#endif
#endif

#define LOWBIT_BEGIN_NAMESPACE \
  namespace lowbit {           \
  inline namespace LOWBIT_ABI_NS {
#define LOWBIT_END_NAMESPACE \
  }                          \
  }

// ---- target regions -------------------------------------------------------------
#define LOWBIT_PRAGMA(x) _Pragma(#x)

// One place for each ISA's target string (grouped, Highway style).
#define LOWBIT_TARGET_AVX2 "avx2,fma,bmi,bmi2,f16c,popcnt"
#define LOWBIT_TARGET_AVX_VNNI LOWBIT_TARGET_AVX2 ",avxvnni"
#define LOWBIT_TARGET_AVX512 LOWBIT_TARGET_AVX2 ",avx512f,avx512bw,avx512dq,avx512vl"
#define LOWBIT_TARGET_AVX512_VNNI LOWBIT_TARGET_AVX512 ",avx512vnni"
#define LOWBIT_TARGET_AMX_INT8 LOWBIT_TARGET_AVX512_VNNI ",amx-tile,amx-int8"

#if defined(__clang__)
#define LOWBIT_BEGIN_TARGET(str) \
  LOWBIT_PRAGMA(clang attribute push(__attribute__((target(str))), apply_to = function))
#define LOWBIT_END_TARGET LOWBIT_PRAGMA(clang attribute pop)
#define LOWBIT_TARGET_ATTR(str) __attribute__((target(str)))
#elif defined(__GNUC__)
// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 intrinsics headers
// (the _mm512_undefined_* pass-through operands; GCC PR105593) at -O1: silenced for
// the kernels' regions only.
// (clang-format 14 alternates between two layouts of this macro: layout fixed by hand)
// clang-format off
#define LOWBIT_BEGIN_TARGET(str)                                   \
  LOWBIT_PRAGMA(GCC push_options)                                  \
  LOWBIT_PRAGMA(GCC target(str))                                   \
  LOWBIT_PRAGMA(GCC diagnostic push)                               \
  LOWBIT_PRAGMA(GCC diagnostic ignored "-Wmaybe-uninitialized")    \
  LOWBIT_PRAGMA(GCC diagnostic ignored "-Wuninitialized")
// clang-format on
#define LOWBIT_END_TARGET LOWBIT_PRAGMA(GCC diagnostic pop) LOWBIT_PRAGMA(GCC pop_options)
#define LOWBIT_TARGET_ATTR(str) __attribute__((target(str)))
#else
#define LOWBIT_BEGIN_TARGET(str)
#define LOWBIT_END_TARGET
#define LOWBIT_TARGET_ATTR(str)
#endif

// ---- attributes -----------------------------------------------------------------
#if defined(__GNUC__) || defined(__clang__)
#define LOWBIT_ALWAYS_INLINE inline __attribute__((always_inline))
#define LOWBIT_NOINLINE __attribute__((noinline))
#define LOWBIT_RESTRICT __restrict__
#define LOWBIT_LIKELY(x) __builtin_expect(!!(x), 1)
#define LOWBIT_UNLIKELY(x) __builtin_expect(!!(x), 0)
// `LOWBIT_FOR_UNROLLED(int r = 0; r < MR; ++r) body`: a for loop over a kernel's
// register array, fully unrolled before GCC's scalar replacement; without it GCC 12
// keeps `__m512i acc[MR]` in a form that costs one register copy per accumulator per
// iteration (objdump the kernel to see). (.clang-format lists it in ForEachMacros.)
#define LOWBIT_FOR_UNROLLED(...) LOWBIT_PRAGMA(GCC unroll 16) for (__VA_ARGS__)
#else
#define LOWBIT_FOR_UNROLLED(...) for (__VA_ARGS__)
#define LOWBIT_ALWAYS_INLINE inline
#define LOWBIT_NOINLINE
#define LOWBIT_RESTRICT
#define LOWBIT_LIKELY(x) (x)
#define LOWBIT_UNLIKELY(x) (x)
#endif

#endif  // LOWBIT_DETAIL_CORE_MACROS_HPP_
