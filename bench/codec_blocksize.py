"""Blosc block size of the codec presets: encode and decode speed and ratio on real trajectories.

Blosc splits each chunk into blocks and compresses them one by one; its own choice for zstd at
level 1 is small. Baseline, measured in the same run: Blosc's choice (``blocksize=0``). Data:
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

from trajstore.backends.base import BLOSC_BLOCKSIZE, CODEC_PRESETS
from trajstore.chunking import choose_chunks

BLOCKSIZES = (0, 128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024)


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


def measure(chunks: list[np.ndarray], cname: str, clevel: int, blocksize: int) -> tuple[float, float, float]:
    """(encode CPU s, decode CPU s, ratio) of one configuration over ``chunks``."""
    codec = Blosc(cname=cname, clevel=clevel, shuffle=Blosc.BITSHUFFLE, typesize=4, blocksize=blocksize)
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
    lines = [
        f"Real trajectories, {args.records} SGD steps each, in the chunks trajstore stores; MB of raw "
        f"float32 per CPU-second, one thread, best of {args.repeats} (interleaved). Ratios in brackets: "
        "against Blosc's own block size (0) in the same run. Presets' block sizes now: "
        + ", ".join(f"{k} {v // 1024} KiB" for k, v in BLOSC_BLOCKSIZE.items())
        + ".",
        "",
        "| model | chunks | preset | block size | encode MB/CPU-s | decode MB/CPU-s | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in ("cnn34k", "cnn141k"):
        chunks = stored_chunks(real_trajectory(args.records, model))
        mb = sum(x.nbytes for x in chunks) / 1e6
        configs = [(p, bs) for p in CODEC_PRESETS for bs in BLOCKSIZES]
        best: dict = {}
        for _ in range(args.repeats):
            for preset, bs in configs:
                enc, dec, ratio = measure(chunks, *CODEC_PRESETS[preset], bs)
                old = best.get((preset, bs), (np.inf, np.inf, ratio))
                best[(preset, bs)] = (min(old[0], enc), min(old[1], dec), ratio)
        for preset, bs in configs:
            enc, dec, ratio = best[(preset, bs)]
            enc0, dec0, ratio0 = best[(preset, 0)]
            cells = [
                model,
                f"{chunks[0].shape[1]} x {chunks[0].shape[0]}",
                f"{preset} ({CODEC_PRESETS[preset][0]}-{CODEC_PRESETS[preset][1]})",
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
