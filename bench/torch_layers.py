"""PyTorch's side of crates/model/examples/layers.rs: milliseconds of the same layers at the same
shapes (a 3×3 convolution forward, forward + backward for the input and weight gradients; a
training-mode BatchNorm forward + backward, an eval-mode BatchNorm forward, ReLU forward + backward
and a 2×2 max pool forward, and forward + backward), eager CPU, N threads.

    .venv/bin/python bench/torch_layers.py [small-cnn|resnet18] [iters] [threads]
"""
import sys
import time

import torch

net = sys.argv[1] if len(sys.argv) > 1 else "small-cnn"
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
layers = {
    "small-cnn": [(32, 3, 96, 32, 2, False), (32, 32, 48, 64, 1, True), (32, 64, 24, 128, 1, True),
                  (32, 128, 12, 256, 1, True)],
    "resnet18": [(16, 64, 56, 64, 1, False), (16, 128, 28, 128, 1, False), (16, 256, 14, 256, 1, False),
                 (16, 512, 7, 512, 1, False)],
}[net]


def ms(f):
    f()
    start = time.perf_counter()
    for _ in range(iters):
        f()
    return (time.perf_counter() - start) * 1e3 / iters


print("| layer (batch × C_in × side → C_out, stride) | path | conv forward | conv forward + backward | "
      "BatchNorm train forward + backward | BatchNorm eval forward | ReLU forward + backward | "
      "max pool forward | max pool forward + backward |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for b, cin, side, cout, stride, pool in layers:
    side_in = side // 2 if pool else side
    side_out = side_in // stride
    conv = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    bn = torch.nn.BatchNorm2d(cout)
    bn_eval = torch.nn.BatchNorm2d(cout).eval()
    x = torch.randn(b, cin, side_in, side_in)
    x_ad = x.clone().requires_grad_()
    a = torch.randn(b, cout, side_out, side_out).requires_grad_()
    p = torch.randn(b, cin, side, side).requires_grad_()

    def grad_of(f, t):
        t.grad = None
        (f(t) * t.detach()).sum().backward()

    def fwd():
        with torch.no_grad():
            conv(x)

    def fwd_bwd():
        x_ad.grad = None
        conv.weight.grad = None
        conv(x_ad).sum().backward()

    def bn_eval_fwd():
        with torch.no_grad():
            bn_eval(a)

    def pool_fwd():
        with torch.no_grad():
            torch.nn.functional.max_pool2d(p, 2)

    def pool_fb():
        p.grad = None
        torch.nn.functional.max_pool2d(p, 2).sum().backward()

    row = [ms(fwd), ms(fwd_bwd), ms(lambda: grad_of(bn, a)), ms(bn_eval_fwd),
           ms(lambda: grad_of(torch.relu, a))]
    pools = [f"{ms(pool_fwd):.2f}", f"{ms(pool_fb):.2f}"] if pool else ["–", "–"]
    cells = " | ".join([f"{v:.2f}" for v in row] + pools)
    print(f"| {b} × {cin} × {side_in}² → {cout}, s{stride} | PyTorch {torch.__version__} | {cells} |")
