"""Search for the paper's early-window picture (α_short > 1 > α_long) in a CPU-sized setup.

The paper's recipe on scikit-learn's bundled digits (8x8, offline): a CIFAR-style BatchNorm
ResNet (three stages of BasicBlocks, 1x1-conv projection shortcuts), conv weights
Kaiming-normal (fan_in), BatchNorm weight 1 / bias 0, linear weight N(0, 0.001²), plain SGD
(momentum 0, weight decay 0, constant learning rate). Every step is recorded with
:class:`trajstore.recorders.Recorder`, then :func:`trajstore.analysis.pipeline.analyze` fits each
window and the table says whether it shows two regimes and lies inside the paper's ranges
(exponent 1 ∈ [1.01, 1.42], exponent 2 ∈ [0.60, 0.88], τ0 ∈ [45, 400] steps).

    python examples/paper_search.py --quick          # smoke: lr 0.5, bs 128, 300 steps, windows of 150
    python examples/paper_search.py                  # the grid (lr × batch size × width)
    python examples/paper_search.py --lr 0.05 --batch-size 16 --width 8   # one setup

Uses one torch thread; not imported by the tests. Results: docs/analysis.md, "Searching for the
paper's picture on CPU".
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn
from trajstore.analysis.pipeline import analyze
from trajstore.recorders import Recorder

import trajstore


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            proj = nn.Conv2d(c_in, c_out, 1, stride, bias=False)
            self.shortcut = nn.Sequential(proj, nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class DigitsResNet(nn.Module):
    """Stem conv(1→w) + three stages (w, 2w, 4w channels; strides 1, 2, 2; ``blocks`` each) on 8x8."""

    def __init__(self, width: int = 8, blocks: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c = [], width
        for i, stride in enumerate((1, 2, 2)):
            c_out = width * 2**i
            for b in range(blocks):
                layers.append(BasicBlock(c, c_out, stride if b == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(c, 10)
        for m in self.modules():  # the paper's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits, (n, 1, 8, 8) standardised per pixel position over the set; labels (n,)."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - x.mean()) / x.std()
    return x, torch.tensor(d.target, dtype=torch.long)


def random_shift(x: torch.Tensor, gen: torch.Generator, pad: int = 1) -> torch.Tensor:
    """The paper's random crop (pad 4 on 32x32) scaled to 8x8: zero-pad by ``pad``, crop 8x8 at a
    random offset per image. x: (n, 1, 8, 8)."""
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=gen)
    return torch.stack([padded[i, :, a : a + 8, b : b + 8] for i, (a, b) in enumerate(off.tolist())])


def train_recorded(
    path: Path, *, lr: float, batch_size: int, width: int, steps: int, seed: int, augment: bool = False
) -> tuple[int, float]:
    """Train for ``steps`` SGD steps (reshuffled epochs), recording every step; (params, last loss).
    ``augment``: a random 1-pixel shift of each image (the paper's random crop, scaled)."""
    torch.manual_seed(seed)
    x, y = digits()
    model = DigitsResNet(width)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=gen)
    pos, last = 0, float("nan")
    meta = {"lr": lr, "batch_size": batch_size, "width": width, "augment": augment}
    with Recorder(model, str(path), overwrite=True, progress=False, metadata=meta) as rec:
        rec.attach(opt)
        for _ in range(steps):
            if pos + batch_size > len(x):  # drop the last partial batch, reshuffle
                order, pos = torch.randperm(len(x), generator=gen), 0
            idx = order[pos : pos + batch_size]
            pos += batch_size
            xb = random_shift(x[idx], gen) if augment else x[idx]
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            rec.log_loss(loss)
            opt.step()
            last = loss.item()
    return sum(p.numel() for p in model.parameters()), last


def fmt(v: float | None, ci: list | None = None, digits: int = 2) -> str:
    if v is None:
        return "-"
    s = f"{v:.{digits}f}"
    if ci:
        s += f" [{ci[0]:.{digits}f},{ci[1]:.{digits}f}]"
    return s


def report(label: str, summary: dict, seconds: float, n_params: int, last_loss: float) -> list[str]:
    """One line per window: regimes, α, α_short/α_long/τ0 (95 % intervals) and the paper check."""
    lines = [f"## {label}: {n_params} params, final minibatch loss {last_loss:.3f}, {seconds:.0f} s"]
    for w in summary["windows"]:
        if w.get("partial"):
            continue
        paper = w.get("paper") or {}
        inside = {k: v.get("inside") for k, v in paper.items()}
        two = w.get("two_regime_fit") or {}
        lines.append(
            f"  t_w={w['t_w']:5d} regimes={w.get('regimes')!s:8s} α={fmt(w.get('alpha'), w.get('alpha_ci'))}"
            f" α_s={fmt(w.get('alpha_short'), w.get('alpha_short_ci'))}"
            f" α_l={fmt(w.get('alpha_long'), w.get('alpha_long_ci'))}"
            f" τ0={fmt(w.get('tau0_steps'), w.get('tau0_ci'), 0)}"
            f" (fit as fitted: α_s={fmt(two.get('alpha_short'))} α_l={fmt(two.get('alpha_long'))}"
            f" τ0={fmt(two.get('tau0_steps', two.get('tau0')), None, 0)})"
            f" paper-inside={inside}"
        )
    return lines


def run_one(
    lr: float, batch_size: int, width: int, steps: int, window: int, seed: int, out: Path, augment: bool
) -> list[str]:
    path = out / f"lr{lr}_bs{batch_size}_w{width}.zarr"
    t0 = time.perf_counter()
    n_params, last = train_recorded(
        path, lr=lr, batch_size=batch_size, width=width, steps=steps, seed=seed, augment=augment
    )
    with trajstore.open(str(path)) as traj:
        summary = analyze(traj, window, progress=False).summary()
    label = f"lr={lr} bs={batch_size} width={width} seed={seed} steps={steps} window={window}"
    label += f" augment={augment}"
    return report(label, summary, time.perf_counter() - t0, n_params, last)


def main(argv: list[str] | None = None) -> None:
    fmt_class = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt_class)
    parser.add_argument("--quick", action="store_true", help="one short run (smoke test)")
    parser.add_argument("--lr", type=float, nargs="*", default=[0.01, 0.05, 0.2])
    parser.add_argument("--batch-size", type=int, nargs="*", default=[16, 128])
    parser.add_argument("--width", type=int, nargs="*", default=[8])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="random 1-pixel shifts (the paper's crop)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the stores (default: temporary)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    grid = list(itertools.product(args.lr, args.batch_size, args.width))
    steps, window = args.steps, args.window
    if args.quick:
        grid, steps, window = [(0.5, 128, 8)], 300, 150
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for lr, bs, width in grid:
            print("\n".join(run_one(lr, bs, width, steps, window, args.seed, out, args.augment)), flush=True)


if __name__ == "__main__":
    main()
