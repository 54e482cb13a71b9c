#!/usr/bin/env python3
"""Install the CPU parts of libtorch 2.13.0 (what tch 0.26 links) into a project folder.

PyPI's torch wheel is the CUDA build: a full install is ~4.7 GB. The CPU backend needs only
libtorch_cpu/libtorch/libc10/libgomp plus libcudart and libcupti (libtorch_cpu.so has NEEDED
entries for them, found through its RPATH $ORIGIN/../../nvidia/cu13/lib), and the headers to
build. This downloads the three wheels without dependencies and extracts just those files,
keeping the torch/lib and nvidia/cu13/lib layout.  Usage: fetch_libtorch.py DEST
"""
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

WHEELS = ["torch==2.13.0", "nvidia-cuda-runtime==13.0.96", "nvidia-cuda-cupti==13.0.85"]
KEEP_LIBS = {
    "torch/lib/libtorch_cpu.so",
    "torch/lib/libtorch.so",
    "torch/lib/libc10.so",
    "torch/lib/libgomp.so.1",
    "nvidia/cu13/lib/libcudart.so.13",
    "nvidia/cu13/lib/libcupti.so.13",
}


def main():
    dest = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--dest", tmp, *WHEELS],
            check=True,
        )
        found = set()
        for wheel in sorted(glob.glob(os.path.join(tmp, "*.whl"))):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if name in KEEP_LIBS or name.startswith("torch/include/"):
                        z.extract(name, dest)
                        found.add(name)
        missing = KEEP_LIBS - found
        if missing:
            sys.exit(f"fetch_libtorch: missing from the wheels: {sorted(missing)}")
    print(f"libtorch installed in {dest}/torch")


if __name__ == "__main__":
    main()
