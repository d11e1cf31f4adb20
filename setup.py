"""Builds the C core `tfm._tfmcore` (C11, -O3, OpenMP). No -march=native: the SIMD paths are
compiled per ISA (csrc/simd_*.c with #pragma GCC target) and chosen at import from cpuid."""
import os
import sys

import numpy
from setuptools import Extension, setup

sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".c"))

extra_compile = ["-std=c11", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-Wall", "-Wextra",
                 "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Wno-cast-function-type", "-Wno-psabi"]
extra_link = []
if sys.platform != "win32" and os.environ.get("TFM_NO_OPENMP") != "1":
    extra_compile.append("-fopenmp")
    extra_link.append("-fopenmp")
if os.environ.get("TFM_DEBUG") == "1":
    extra_compile += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    extra_link += ["-fsanitize=address,undefined"]

setup(
    ext_modules=[
        Extension(
            "tfm._tfmcore",
            sources=sources,
            include_dirs=["csrc", numpy.get_include()],
            depends=[os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".h")],
            extra_compile_args=extra_compile,
            extra_link_args=extra_link,
            define_macros=[("_GNU_SOURCE", "1")],
        )
    ],
)
