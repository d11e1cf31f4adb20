/* AVX2+FMA build of simd_impl.h: a 16-float vector is two ymm; 4×2 accumulators = 16 ymm. */
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma")
#define SUFFIX _avx2
#define VW 8
#define MR 4
#include "simd_impl.h"
#endif
