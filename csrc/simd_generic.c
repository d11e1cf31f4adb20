/* Baseline build of simd_impl.h for any target (SSE2 on x86-64, NEON on aarch64 via GCC's lowering). */
#define SUFFIX _generic
#define VW 4
#define MR 2
#include "simd_impl.h"
