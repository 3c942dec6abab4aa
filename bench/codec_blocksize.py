"""Blosc shuffle and block size of the codec presets: encode and decode speed and ratio on real trajectories.

Blosc splits each chunk into blocks and compresses them one by one, after a byte- or bit-shuffle
of each block; its own block size for zstd at level 1 is small. Baseline, measured in the same
run: the codec with bit-shuffle and Blosc's choice (``blocksize=0``), what trajstore wrote up to
format 1.2's first stores. Data:
real weight trajectories of two digits CNNs of ``bench/recording_overhead.py`` (34k and 141k
parameters, SGD, batch 64), cut into the chunks trajstore chooses for them
(``trajstore.chunking.choose_chunks``) and transposed parameter-major as stored. Speeds are MB
of raw float32 per CPU-second on one thread (best of ``--repeats``, configurations interleaved,
so that a shared machine's load falls on all of them alike).

    python bench/codec_blocksize.py [--records 1024] [--repeats 3] [--no-record]
"""

from __future__ import annotations

import argparse
import time

import numcodecs.blosc
import numpy as np
from common import finish
from numcodecs import Blosc
from writer_throughput import real_trajectory

from trajstore.backends.base import BLOSC_BLOCKSIZE, CODEC_PRESETS, CODEC_SHUFFLE
from trajstore.chunking import choose_chunks

BLOCKSIZES = (0, 512 * 1024, 1024 * 1024)
SHUFFLES = {"bit": Blosc.BITSHUFFLE, "byte": Blosc.SHUFFLE}
ZARR_SHUFFLE = {"bitshuffle": "bit", "shuffle": "byte"}  # the Zarr blosc codec's names


def describe(cname: str, level: int, shuffle: str, blocksize: int) -> str:
    """'zstd-1, byte-shuffle, 512 KiB blocks' for a configuration."""
    blocks = f"{blocksize // 1024} KiB blocks" if blocksize else "Blosc's block size"
    return f"{cname}-{level}, {shuffle}-shuffle, {blocks}"


CODECS = (("lz4", 5), ("zstd", 1), ("zstd", 5))


def stored_chunks(weights: np.ndarray) -> list[np.ndarray]:
    """The parameter-major chunks trajstore stores for (records, params) ``weights``."""
    rows, width = choose_chunks(weights.shape[1])
    if len(weights) < rows:
        raise SystemExit(f"{len(weights)} records make no whole chunk of {rows} records; raise --records")
    return [
        np.ascontiguousarray(weights[s : s + rows, c : c + width].T)
        for s in range(0, len(weights) - rows + 1, rows)
        for c in range(0, weights.shape[1] - width + 1, width)
    ]


def measure(
    chunks: list[np.ndarray], cname: str, clevel: int, shuffle: str, blocksize: int
) -> tuple[float, float, float]:
    """(encode CPU s, decode CPU s, ratio) of one configuration over ``chunks``."""
    codec = Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], typesize=4, blocksize=blocksize)
    c = time.process_time()
    encoded = [codec.encode(x) for x in chunks]
    enc = time.process_time() - c
    c = time.process_time()
    for e, x in zip(encoded, chunks, strict=True):
        if not np.array_equal(np.frombuffer(codec.decode(e), dtype=x.dtype), x.reshape(-1)):
            raise SystemExit(f"{cname}-{clevel} blocksize {blocksize}: decoded values differ")
    dec = time.process_time() - c
    return enc, dec, sum(x.nbytes for x in chunks) / sum(len(e) for e in encoded)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1024, help="SGD steps of each real trajectory")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    numcodecs.blosc.set_nthreads(1)
    presets = {
        (*CODEC_PRESETS[p], ZARR_SHUFFLE[CODEC_SHUFFLE[p]], BLOSC_BLOCKSIZE.get(p, 0)): p
        for p in CODEC_PRESETS
    }
    lines = [
        f"Real trajectories, {args.records} SGD steps each, in the chunks trajstore stores; MB of raw "
        f"float32 per CPU-second, one thread, best of {args.repeats} (interleaved). In brackets: "
        "against the same codec with bit-shuffle and Blosc's own block size, in the same run. "
        "Presets now: " + ", ".join(f"{v} = {describe(*k)}" for k, v in presets.items()) + ".",
        "",
        "| model | chunks | codec | shuffle | block size | encode MB/CPU-s | decode MB/CPU-s | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    configs = [(c, lv, sh, bs) for c, lv in CODECS for sh in SHUFFLES for bs in BLOCKSIZES]
    for model in ("cnn34k", "cnn141k"):
        chunks = stored_chunks(real_trajectory(args.records, model))
        mb = sum(x.nbytes for x in chunks) / 1e6
        best: dict = {}
        for _ in range(args.repeats):
            for cfg in configs:
                enc, dec, ratio = measure(chunks, *cfg)
                old = best.get(cfg, (np.inf, np.inf, ratio))
                best[cfg] = (min(old[0], enc), min(old[1], dec), ratio)
        for cfg in configs:
            cname, level, shuffle, bs = cfg
            enc, dec, ratio = best[cfg]
            enc0, dec0, ratio0 = best[(cname, level, "bit", 0)]
            preset = f" (**{presets[cfg]}**)" if cfg in presets else ""
            cells = [
                model,
                f"{chunks[0].shape[1]} x {chunks[0].shape[0]}",
                f"{cname}-{level}{preset}",
                shuffle,
                f"{bs // 1024} KiB" if bs else "Blosc's choice",
                f"{mb / enc:.0f} ({enc0 / enc:.2f})",
                f"{mb / dec:.0f} ({dec0 / dec:.2f})",
                f"{ratio:.3f} ({ratio / ratio0:.3f})",
            ]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    finish("bench/codec_blocksize.py", lines, args.no_record)


if __name__ == "__main__":
    main()
