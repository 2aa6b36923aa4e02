"""PyTorch counterpart of `embcam bench`: the same networks, batch, input size, embedding size,
training step, inference and EmbeddingCAM measurements, plus pytorch-grad-cam as the library a
user would otherwise call. Prints the same markdown table as `embcam bench` (rows with the same
names), so bench/side_by_side.py can pair them.

- training step: forward, triplet loss over every triplet of the batch (labels i // 4, margin
  0.2, mean over active triplets), backward, Adam (lr 1e-4) — as crates/model/src/bench.rs;
- inference: eval-mode forward of the batch;
- EmbeddingCAM, P proxies per image, hand-batched autograd: one forward to the last stage `A`
  and the embedding `y`, then `torch.autograd.grad(y, A, grad_outputs=[P, B, d],
  is_grads_batched=True)` gives ∂(y·p)/∂A for every proxy at once; weights = spatial mean of the
  gradient, map = ReLU(Σ_k w_k A^k) at the stage's resolution (what `embcam_cam::explain` returns);
- pytorch-grad-cam: `GradCAM(model, [last stage])` called once per proxy with one
  similarity target per image (its documented way for embedding targets), which also upsamples
  and min–max scales each map, as a user of the library gets it.

Inputs are the deterministic stream `embcam bench` uses (values do not change speed).

    python bench/torch_bench.py --backbone small-cnn --size 96 --batch 32 --iters 5 --proxies 1 10 100
"""
import argparse
import os
import platform
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--backbone", default="small-cnn", choices=["small-cnn", "resnet18", "resnet50"])
ap.add_argument("--size", type=int, default=128)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--proxies", type=int, nargs="+", default=[1, 10])
ap.add_argument("--gradcam-lib-proxies", type=int, nargs="*", default=None,
                help="proxy counts for the pytorch-grad-cam rows (default: the largest of --proxies)")
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
torch.set_num_threads(a.threads)
dev = torch.device(a.device)


def values(n, salt):
    """embcam bench's stream: ((i + salt) * 7919 % 1000) / 500 - 1."""
    i = torch.arange(n, dtype=torch.int64)
    return (((i + salt) * 7919) % 1000).float() / 500.0 - 1.0


class SmallCnn(nn.Module):
    """crates/model/src/nets/small_cnn.rs: conv s2 → BN → ReLU, then 3 × (maxpool 2 → conv → BN → ReLU)."""

    def __init__(self, widths=(32, 64, 128, 256)):
        super().__init__()
        blocks, cin = [], 3
        for i, w in enumerate(widths):
            layers = [] if i == 0 else [nn.MaxPool2d(2)]
            layers += [nn.Conv2d(cin, w, 3, 2 if i == 0 else 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            blocks.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.Sequential(*blocks)
        self.out_channels = cin

    def forward(self, x):
        return self.stages(x)


class ResNetTrunk(nn.Module):
    def __init__(self, name):
        super().__init__()
        import torchvision
        r = getattr(torchvision.models, name)(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.stages = nn.Sequential(r.layer1, r.layer2, r.layer3, r.layer4)
        self.out_channels = r.fc.in_features

    def forward(self, x):
        return self.stages(self.stem(x))


class EmbeddingNet(nn.Module):
    """Backbone → GAP → linear → L2, as the harness's head (crates/model/src/nets/head.rs)."""

    def __init__(self):
        super().__init__()
        self.backbone = SmallCnn() if a.backbone == "small-cnn" else ResNetTrunk(a.backbone)
        self.fc = nn.Linear(self.backbone.out_channels, a.dim)

    def features(self, x):
        return self.backbone(x)

    def head(self, A):
        return F.normalize(self.fc(A.mean((2, 3))), dim=1)

    def forward(self, x):
        return self.head(self.features(x))

    def last_stage(self):
        return self.backbone.stages[-1]


def triplet_all(z, y, margin=0.2):
    d = torch.cdist(z, z)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool, device=z.device)
    valid = pos[:, :, None] & (~same)[:, None, :]
    loss = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return loss.sum() / (loss > 0).sum().clamp_min(1)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def per_call(iters, f):
    f()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        f()
    sync()
    return (time.perf_counter() - start) / iters


torch.manual_seed(0)
net = EmbeddingNet().to(dev)
x = values(a.batch * 3 * a.size * a.size, 0).view(a.batch, 3, a.size, a.size).to(dev)
labels = (torch.arange(a.batch) // 4).to(dev)
rows = []

opt = torch.optim.Adam(net.parameters(), lr=1e-4)


def train_step():
    loss = triplet_all(net(x), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


net.train()
s = per_call(a.iters, train_step)
rows.append(("training step (forward, triplet loss, backward, Adam)", a.batch, a.batch / s, "images/s"))

net.eval()


def infer():
    with torch.no_grad():
        net(x).cpu()


s = per_call(a.iters, infer)
rows.append(("inference", a.batch, a.batch / s, "images/s"))

stage = "layer4" if a.backbone != "small-cnn" else "block4"


def proxy_vectors(p):
    """[P, B, d]: proxy k of image b is embcam bench's values(d, 31 * (b * p + k) + 1)."""
    v = torch.stack([torch.stack([values(a.dim, 31 * (b * p + k) + 1) for b in range(a.batch)]) for k in range(p)])
    return v.to(dev)


for p in a.proxies:
    P = proxy_vectors(p)

    def embeddingcam():
        A = net.features(x)
        y = net.head(A)
        g = torch.autograd.grad(y, A, grad_outputs=P, is_grads_batched=True)[0]  # [P, B, K, h, w]
        w = g.mean((3, 4), keepdim=True)
        maps = F.relu((w * A.detach()[None]).sum(2))  # [P, B, h, w]
        maps.cpu()

    s = per_call(a.iters, embeddingcam)
    rows.append((f"EmbeddingCAM at {stage}, {p} prox{'y' if p == 1 else 'ies'} per image, autodiff", a.batch,
                 a.batch * p / s, "heatmaps/s"))

lib_counts = a.gradcam_lib_proxies if a.gradcam_lib_proxies is not None else [max(a.proxies)]
if lib_counts:
    from pytorch_grad_cam import GradCAM

    class SimilarityTarget:
        """pytorch-grad-cam's documented embedding target: the output's dot product with a vector."""

        def __init__(self, p):
            self.p = p

        def __call__(self, output):
            return (output * self.p).sum()

    cam = GradCAM(model=net, target_layers=[net.last_stage()])
    for p in lib_counts:
        P = proxy_vectors(p)

        def library():
            for k in range(p):
                cam(input_tensor=x, targets=[SimilarityTarget(P[k, b]) for b in range(a.batch)])

        s = per_call(max(1, a.iters // 3), library)
        rows.append((f"pytorch-grad-cam 1.5.5 at {stage}, {p} prox{'y' if p == 1 else 'ies'} per image, "
                     "one call per proxy", a.batch, a.batch * p / s, "heatmaps/s"))

cpu = platform.processor() or platform.machine()
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"# torch bench: {a.backbone} on {a.device}\n")
print(f"- command: `python bench/torch_bench.py {' '.join(os.sys.argv[1:])}`")
print(f"- machine: {cpu}, {os.cpu_count()} cores available, torch threads {torch.get_num_threads()}")
print(f"- network: {a.backbone} at {a.size}², embedding d = {a.dim} (L2), random weights; "
      f"{a.iters} timed iterations after one untimed")
print(f"- torch {torch.__version__}\n")
print("| what | batch | throughput | unit |")
print("|---|---:|---:|---|")
for what, batch, v, unit in rows:
    print(f"| {what} | {batch} | {v:.1f} | {unit} |")
