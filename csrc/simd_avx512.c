/* AVX-512 build of simd_impl.h: a 16-float vector is one zmm; 12×2 accumulators fill 24 of 32. */
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")
#define SUFFIX _avx512
#define VW 16
#define MR 12
#include "simd_impl.h"
#endif
