"""embcam against PyTorch on the same machine, in one run: `embcam bench` and bench/torch_bench.py
in alternating rounds (embcam, torch, embcam, torch, ...), the median of each row over the rounds,
and one markdown table of **ratios** embcam / PyTorch, with the machine, the load average before
and after, and both commands. Absolute numbers drift on a shared machine; ratios measured
side by side are what results/ records.

    python bench/side_by_side.py --embcam target/release/embcam --device flex \\
        --backbone small-cnn --size 96 --batch 32 --iters 5 --rounds 3 --out results/bench-vs-pytorch-small-cnn.md

Rows paired: training step and inference with their PyTorch twins; EmbeddingCAM (autodiff and
closed form) with PyTorch's hand-batched autograd at the same proxy count; and the largest proxy
count against pytorch-grad-cam called once per proxy.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--embcam", required=True, help="the embcam binary (a release build is fastest)")
ap.add_argument("--device", default="flex", help="embcam's device: flex, tch-cpu, tch-cuda")
ap.add_argument("--torch-device", default=None, help="torch's device (default: cuda for tch-cuda, else cpu)")
ap.add_argument("--backbone", default="small-cnn")
ap.add_argument("--size", type=int, default=96)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--proxies", type=int, nargs="+", default=[1, 10, 100])
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=None,
                help="threads on both sides (RAYON_NUM_THREADS for embcam's flex, torch.set_num_threads); "
                     "default: each library's own (all cores)")
ap.add_argument("--python", default=sys.executable)
ap.add_argument("--out", help="markdown file to write (never over an existing one)")
a = ap.parse_args()
if a.out and os.path.exists(a.out):
    sys.exit(f"{a.out} exists; choose another --out (earlier results are never overwritten)")
torch_device = a.torch_device or ("cuda" if a.device == "tch-cuda" else "cpu")
here = os.path.dirname(os.path.abspath(__file__))

common = ["--backbone", a.backbone, "--size", str(a.size), "--batch", str(a.batch), "--dim", str(a.dim),
          "--iters", str(a.iters)]
embcam_cmd = [a.embcam, "bench", "--device", a.device, *common]
for p in a.proxies:
    embcam_cmd += ["--proxies", str(p)]
torch_cmd = [a.python, os.path.join(here, "torch_bench.py"), "--device", torch_device, *common,
             "--proxies", *map(str, a.proxies)]
env = dict(os.environ)
if a.threads:
    torch_cmd += ["--threads", str(a.threads)]
    env["RAYON_NUM_THREADS"] = str(a.threads)

ROW = re.compile(r"^\| (.+?) \| (\d+) \| ([0-9.]+) \| (.+?) \|$")


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    rows = {m.group(1): float(m.group(3)) for m in map(ROW.match, out.splitlines()) if m}
    if not rows:
        sys.exit(f"no table in the output of {' '.join(cmd)}:\n{out}")
    return rows, out


load_before = os.getloadavg()
start = time.time()
embcam_runs, torch_runs = [], []
for r in range(a.rounds):
    print(f"round {r + 1}/{a.rounds}: embcam", file=sys.stderr, flush=True)
    embcam_runs.append(run(embcam_cmd))
    print(f"round {r + 1}/{a.rounds}: torch", file=sys.stderr, flush=True)
    torch_runs.append(run(torch_cmd))
load_after = os.getloadavg()


def median(runs, row):
    vals = [rows[row] for rows, _ in runs if row in rows]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None


stage = "block4" if a.backbone == "small-cnn" else "layer4"
pairs = [("training step (forward, triplet loss, backward, Adam)",) * 2, ("inference",) * 2,
         ("inference, BatchNorm folded into the convolutions", "inference")]
for p in a.proxies:
    label = f"{p} prox{'y' if p == 1 else 'ies'} per image"
    for how in ("autodiff", "closed form"):
        pairs.append((f"EmbeddingCAM at {stage}, {label}, {how}", f"EmbeddingCAM at {stage}, {label}, autodiff"))
big = max(a.proxies)
big_label = f"{big} prox{'y' if big == 1 else 'ies'} per image"
lib_row = f"pytorch-grad-cam 1.5.5 at {stage}, {big_label}, one call per proxy"
for how in ("autodiff", "closed form"):
    pairs.append((f"EmbeddingCAM at {stage}, {big_label}, {how}", lib_row))

machine = next((line for line in embcam_runs[0][1].splitlines() if line.startswith("- machine:")), "- machine: ?")
lines = [
    f"# embcam ({a.device}) against PyTorch ({torch_device}): {a.backbone} at {a.size}², batch {a.batch}",
    "",
    machine,
    f"- load average (1, 5, 15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
    f"after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}",
    f"- {a.rounds} alternating rounds in {time.time() - start:.0f} s; each figure is the median over the rounds "
    "(min–max in brackets)",
    f"- embcam: `{'RAYON_NUM_THREADS=' + str(a.threads) + ' ' if a.threads else ''}{' '.join(embcam_cmd)}`",
    f"- PyTorch: `{' '.join(torch_cmd)}`",
    f"- made by: `python bench/side_by_side.py {' '.join(sys.argv[1:])}`",
    "",
    "| embcam | PyTorch | embcam | PyTorch | ratio embcam / PyTorch |",
    "|---|---|---:|---:|---:|",
]
for ours, theirs in pairs:
    e, t = median(embcam_runs, ours), median(torch_runs, theirs)
    if e is None or t is None:
        continue
    lines.append(f"| {ours} | {theirs} | {e[0]:.1f} [{e[1]:.1f}–{e[2]:.1f}] | {t[0]:.1f} [{t[1]:.1f}–{t[2]:.1f}] "
                 f"| **{e[0] / t[0]:.2f}** |")
md = "\n".join(lines) + "\n"
print(md)
if a.out:
    tmp = f"{a.out}.partial-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(md)
    try:
        os.link(tmp, a.out)  # fails if a.out appeared meanwhile: never overwrite
    finally:
        os.unlink(tmp)
    print(f"written to {a.out}", file=sys.stderr)
