"""The paper's setup: CIFAR-10, plain SGD (lr 0.1, no momentum or weight decay), every step.

Models: CIFAR ResNet-14/20/56/110 (three stages of 16/32/64 channels, (depth-2)/6 basic
blocks per stage, 1x1-conv projection shortcuts), optionally without shortcuts, and VGG-9.
Initialisation as in the paper: conv Kaiming-normal (fan_in), conv bias 0, BatchNorm weight 1 /
bias 0, linear weight N(0, 0.001^2). Data: torchvision's CIFAR-10 with random crop (pad 4) and
horizontal flip when it can be loaded; ``--synthetic`` uses random data of CIFAR shape offline.
Does not import trajstore: record it with ``trajstore record examples/train_cifar.py -- ...``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = shortcut
        self.proj = None
        if shortcut and (stride != 1 or cin != cout):
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.shortcut:
            out = out + (self.proj(x) if self.proj is not None else x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; ``shortcut=False`` gives the plain network."""

    def __init__(self, depth: int = 20, shortcut: bool = True, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(BasicBlock(cin, cout, stride if i == 0 else 1, shortcut))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        init_paper(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class VGG9(nn.Module):
    """Seven 3x3 conv layers (64-128-256-256-512-512-512) with BatchNorm and two linear layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, "M"]
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Linear(512, num_classes)
        )
        init_paper(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def init_paper(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.001)
            nn.init.zeros_(m.bias)


def build_model(name: str) -> nn.Module:
    """``resnet14`` ... ``resnet110``, ``plain20`` (no shortcuts) ..., or ``vgg9``."""
    if name == "vgg9":
        return VGG9()
    for prefix, shortcut in (("resnet", True), ("plain", False)):
        if name.startswith(prefix):
            return CifarResNet(int(name[len(prefix) :]), shortcut)
    raise ValueError(f"unknown model {name!r}: resnet<6n+2>, plain<6n+2> or vgg9")


def synthetic_loader(n: int, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=g,
        drop_last=False,
    )


def cifar_loader(root: str, batch_size: int, seed: int, workers: int) -> torch.utils.data.DataLoader:
    import torchvision  # the 'vision' extra; only needed for real CIFAR-10
    from torchvision import transforms

    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )
    ds = torchvision.datasets.CIFAR10(root, train=True, download=True, transform=tf)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=True,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true", help="random data of CIFAR shape, offline")
    ap.add_argument("--synthetic-size", type=int, default=2048)
    ap.add_argument("--data", default="./data")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = build_model(args.model).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.0, weight_decay=0.0)
    if args.synthetic:
        loader = synthetic_loader(args.synthetic_size, args.batch_size, args.seed)
    else:
        try:
            loader = cifar_loader(args.data, args.batch_size, args.seed, args.workers)
        except Exception as exc:  # noqa: BLE001 - offline or torchvision missing: say so and stop
            raise SystemExit(f"cannot load CIFAR-10 ({exc}); use --synthetic offline") from None
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{args.model}: {n_params} trainable parameters, {len(loader)} steps per epoch", flush=True)
    step, t0 = 0, time.time()
    for epoch in range(args.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if args.steps is not None and step >= args.steps:
                print(f"stopped after {step} steps, {time.time() - t0:.1f} s", flush=True)
                return
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}, {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
