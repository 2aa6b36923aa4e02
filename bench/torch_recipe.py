"""Training-recipe prototyping in PyTorch, 3-5x faster than the flex backend on the same CPU.

The network, loss and sampler mirror `embcam train` (crates/model): the small CNN (four blocks of
3x3 conv + BN + ReLU, stride-2 first, 2x2 max pool before the others), global average pooling,
a linear head and L2 normalisation; the triplet loss over every triplet of a PxK batch averaged
over the active ones (`mining = "all"`), Adam with a cosine schedule, RandomResizedCrop + flip.
Initialisation and the validation code differ from burn's, so absolute figures are lower than
`embcam train`'s on the same data (results/recipes.md compares them); what the script is for is
the *difference* a setting makes, measured in seconds instead of minutes.

Reads a SynthCUB (or CUB-200-2011) folder; the split is class-disjoint (the first half of the
classes train). Every epoch prints validation Recall@1 / MAP@R on the unseen classes with the
whole image squashed to the input (the explanations' transform) and with resize + centre crop
(the training loop's validation transform), and on the training classes.

    python bench/torch_recipe.py datasets/synthcub --epochs 10
    python bench/torch_recipe.py datasets/synthcub --size 144 --arch deep

Requirements: bench/requirements.txt (the repo's .venv has them after `.ci/test-tch`).
"""
import argparse
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.v2 as T
from PIL import Image

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("root", help="dataset folder holding CUB_200_2011/")
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--size", type=int, default=96, help="input side in pixels")
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
ap.add_argument("--p", type=int, default=8, help="classes per batch")
ap.add_argument("--k", type=int, default=4, help="images per class in a batch")
ap.add_argument("--arch", default="small", choices=["small", "deep"],
                help="deep = two convolutions per block")
ap.add_argument("--widths", default="32,64,128,256")
ap.add_argument("--pool", default="avg", choices=["avg", "max"])
ap.add_argument("--dim", type=int, default=64)
ap.add_argument("--margin", type=float, default=0.2)
ap.add_argument("--crop", default="0.35,1", help="RandomResizedCrop scale range")
ap.add_argument("--pairs", action="store_true",
                help="batches of whole sibling pairs (SynthCUB classes 2k-1, 2k)")
ap.add_argument("--ce", action="store_true",
                help="diagnostic: normalised-softmax cross-entropy instead of the triplet loss")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

torch.manual_seed(a.seed)
random.seed(a.seed)
np.random.seed(a.seed)
torch.set_num_threads(2)

R = os.path.join(a.root, "CUB_200_2011")
paths = dict(line.split() for line in open(os.path.join(R, "images.txt")))
labels = {k: int(v) for k, v in (line.split() for line in open(os.path.join(R, "image_class_labels.txt")))}
ids = sorted(paths, key=int)
n_classes = max(labels.values())
half = n_classes // 2
imgs = {i: T.functional.pil_to_tensor(Image.open(os.path.join(R, "images", paths[i])).convert("RGB")) for i in ids}
train_ids = [i for i in ids if labels[i] <= half]
eval_ids = [i for i in ids if labels[i] > half]

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
lo, hi = map(float, a.crop.split(","))
augment = T.Compose([T.RandomResizedCrop(a.size, scale=(lo, hi), antialias=True), T.RandomHorizontalFlip()])


def norm(x):
    return (x.float() / 255 - MEAN) / STD


def squash(i):
    return norm(T.functional.resize(imgs[i], [a.size, a.size], antialias=True))


def centre_crop(i):
    x = T.functional.resize(imgs[i], round(a.size * 256 / 224), antialias=True)
    return norm(T.functional.center_crop(x, [a.size, a.size]))


def stack(fn, ids_):
    return torch.stack([fn(i) for i in ids_]), torch.tensor([labels[i] for i in ids_])


views = {
    "unseen squash": stack(squash, eval_ids),
    "unseen centre-crop": stack(centre_crop, eval_ids),
    "train-classes squash": stack(squash, train_ids),
}

WIDTHS = list(map(int, a.widths.split(",")))
CONVS = 2 if a.arch == "deep" else 1


def block(cin, cout, first):
    layers = [] if first else [nn.MaxPool2d(2)]
    for j in range(CONVS):
        stride = 2 if first and j == 0 else 1
        layers += [nn.Conv2d(cin if j == 0 else cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*[block(3 if b == 0 else WIDTHS[b - 1], WIDTHS[b], b == 0) for b in range(4)])
        self.fc = nn.Linear(WIDTHS[-1], a.dim)

    def forward(self, x):
        h = self.features(x)
        h = h.mean((2, 3)) if a.pool == "avg" else h.amax((2, 3))
        return F.normalize(self.fc(h), dim=1)


net = Net()
classifier = nn.Linear(a.dim, n_classes)


def triplet_all(z, y, margin):
    """Every (anchor, positive, negative) of the batch; the mean over the active ones."""
    d = torch.cdist(z, z)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool)
    valid = pos[:, :, None] & (~same)[:, None, :]
    loss = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return loss.sum() / (loss > 0).sum().clamp_min(1)


def epoch_batches():
    by_class = {}
    for i in train_ids:
        by_class.setdefault(labels[i], []).append(i)
    out = []
    for _ in range(len(train_ids) // (a.p * a.k)):
        if a.pairs:
            pairs = random.sample(sorted({(c - 1) // 2 for c in by_class}), a.p // 2)
            classes = [2 * q + 1 for q in pairs] + [2 * q + 2 for q in pairs]
        else:
            classes = random.sample(sorted(by_class), a.p)
        out.append([i for c in classes for i in random.sample(by_class[c], a.k)])
    return out


def retrieval(x, y):
    """Recall@1 and MAP@R, leave-one-out over the set."""
    net.eval()
    with torch.no_grad():
        z = torch.cat([net(x[i:i + 128]) for i in range(0, len(x), 128)])
    net.train()
    s = z @ z.T
    s.fill_diagonal_(-9)
    order = s.argsort(1, descending=True)
    r1 = (y[order[:, 0]] == y).float().mean().item()
    aps = []
    for q in range(len(y)):
        r = (y == y[q]).sum().item() - 1
        rel = (y[order[q, :r]] == y[q]).float()
        aps.append(((rel.cumsum(0) / torch.arange(1, r + 1)) * rel).sum().item() / r)
    return r1, float(np.mean(aps))


params = list(net.parameters()) + (list(classifier.parameters()) if a.ce else [])
opt = torch.optim.Adam(params, lr=a.lr)
steps = a.epochs * (len(train_ids) // (a.p * a.k))
step = 0
start = time.time()
for epoch in range(1, a.epochs + 1):
    losses = []
    for batch in epoch_batches():
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        if step < a.warmup:
            lr = a.lr * (step + 1) / a.warmup
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.stack([norm(augment(imgs[i])) for i in batch])
        y = torch.tensor([labels[i] for i in batch])
        z = net(x)
        loss = F.cross_entropy(classifier(z) * 16, y - 1) if a.ce else triplet_all(z, y, a.margin)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
    figures = "  ".join("%s %.3f/%.3f" % (name, *retrieval(x, y)) for name, (x, y) in views.items())
    print(f"epoch {epoch} loss {np.mean(losses):.3f}  R@1/MAP@R: {figures}  {time.time() - start:.0f} s", flush=True)
