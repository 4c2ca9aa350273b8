"""Write the static files the benchmarks serve: 4 KiB and 1 MiB of fixed bytes, plus an index."""
import os
import sys

SIZES = {"4k.bin": 4096, "1m.bin": 1024 * 1024}


def main(root: str) -> None:
    os.makedirs(root, exist_ok=True)
    for name, size in SIZES.items():
        path = os.path.join(root, name)
        if os.path.exists(path) and os.path.getsize(path) == size:
            continue
        block = bytes(range(256)) * (size // 256)
        with open(path, "wb") as f:
            f.write(block)
    with open(os.path.join(root, "hello.txt"), "wb") as f:
        f.write(b"Hello, World!")


if __name__ == "__main__":
    main(sys.argv[1])
