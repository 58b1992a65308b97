#!/usr/bin/env python3
"""Writes a format-1 copy of a format-2 rmx index (the same sections, without the block
checksums), so that an rmx built before format 2 can search exactly the same graph and
vectors: the A/B of the block checksums' query cost (BENCHMARKS.md).

    python3 index/benches/to_format_v1.py SRC_DIR DST_DIR
"""
import os
import struct
import sys

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def rnd(acc, lane):
    return (rotl((acc + lane * P2) & M, 31) * P1) & M


def xxh64(b, seed=0):
    """XXH64 (the header checksum); plain Python, for the few hundred header bytes."""
    n, i = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for j in range(4):
                v[j] = rnd(v[j], struct.unpack_from("<Q", b, i + 8 * j)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for x in v:
            h = (((h ^ rnd(0, x)) * P1) + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, struct.unpack_from("<Q", b, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", b, i)[0] * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (b[i] * P5 & M), 11) * P1) & M
        i += 1
    h = ((h ^ (h >> 33)) * P2) & M
    h = ((h ^ (h >> 29)) * P3) & M
    return h ^ (h >> 32)


def main(src, dst):
    data = bytearray(open(os.path.join(src, "index.rmx"), "rb").read())
    assert data[:8] == b"RMXINDEX" and struct.unpack_from("<I", data, 8)[0] == 2, "not a format-2 index"
    upper_off, upper_len = struct.unpack_from("<QQ", data, 128 + 6 * 32 + 8)
    v1 = data[: upper_off + upper_len]
    struct.pack_into("<I", v1, 8, 1)  # version
    struct.pack_into("<Q", v1, 16, len(v1))  # file_len
    struct.pack_into("<I", v1, 44, 7)  # sections
    struct.pack_into("<I", v1, 48, 0)  # block_shift
    v1[128 + 7 * 32 : 128 + 8 * 32] = bytes(32)  # the block-checksum section's entry
    header_len = struct.unpack_from("<I", v1, 12)[0]
    struct.pack_into("<Q", v1, 56, 0)
    struct.pack_into("<Q", v1, 56, xxh64(bytes(v1[:header_len])))
    os.makedirs(dst, exist_ok=True)
    open(os.path.join(dst, "index.rmx"), "wb").write(v1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
