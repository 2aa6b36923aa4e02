# EmbeddingCAM harness. `just` lists the recipes; plain cargo does everything too (see README.md).
# Cheapest checks first.

set shell := ["bash", "-euo", "pipefail", "-c"]

default:
    @just --list

# --- checks -------------------------------------------------------------------

# Format the code.
[group('check')]
fmt:
    cargo fmt --all

# Lint everything, warnings are errors (what CI runs).
[group('check')]
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# The test suite (the README's test command).
[group('check')]
test:
    cargo test --workspace --locked

# A real single-node Slurm cluster (Debian's slurm-wlm + munge, installed when missing) runs a
# 2 cells × 2 seeds experiment as a job array via `embcam slurm --submit`; the collected tables
# must equal a single-process run's byte for byte. Needs root: asks sudo when not root.
[group('check')]
slurm-test:
    cargo build --locked -p embcam
    bin="${CARGO_TARGET_DIR:-target}/debug/embcam"; if [ "$(id -u)" = 0 ]; then EMBCAM="$bin" bash .ci/slurm-test; else sudo EMBCAM="$bin" bash .ci/slurm-test; fi

# What CI runs: fmt, clippy, tests, the Slurm test, LibTorch parity.
[group('check')]
ci:
    bash .ci/run

alias t := test
alias l := lint

# --- data ---------------------------------------------------------------------

# Generate and validate a SynthCUB dataset (the README's main command).
[group('data')]
synth out="datasets/synthcub" classes="20" per_class="40" seed="0":
    cargo run --release --locked -p embcam -- synth {{out}} --classes {{classes}} --images-per-class {{per_class}} --seed {{seed}}

# Validate a dataset folder (real CUB-200-2011 or SynthCUB).
[group('data')]
validate root="datasets/CUB_200_2011":
    cargo run --release --locked -p embcam -- validate {{root}}

# --- experiments --------------------------------------------------------------

# The quickstart experiment (the README's main command).
[group('run')]
quickstart:
    cargo run --locked -p embcam -- run experiments/quickstart.toml

# Any experiment file.
[group('run')]
run exp:
    cargo run --locked -p embcam -- run {{exp}}

# Copy the newest quickstart run's tables, figures and gallery into results/quickstart/ (committed).
[group('run')]
publish-quickstart:
    #!/usr/bin/env bash
    set -euo pipefail
    run=$(ls -d results/quickstart/runs/run-* | sort | tail -1)
    test -f "$run/DONE"
    mkdir -p results/quickstart/plots results/quickstart/gallery
    cp "$run"/summary.md "$run"/summary.csv "$run"/comparisons.md "$run"/comparisons.csv "$run"/tau_curves.csv "$run"/split_metrics.csv "$run"/training.csv "$run"/input_retrieval.csv "$run"/config.toml "$run"/manifest.json "$run"/ground_truth.md "$run"/ground_truth.csv "$run"/randomisation.md "$run"/randomisation.csv results/quickstart/
    cp "$run"/plots/*.png results/quickstart/plots/
    cp "$run"/gallery/* results/quickstart/gallery/
    echo "published $run"

alias q := quickstart

# --- benchmarks ---------------------------------------------------------------

# embcam against PyTorch side by side (alternating rounds, ratios): a release build (with LibTorch
# for a tch-* device, through scripts/libtorch), the pinned PyTorch in .venv (bench/requirements.txt),
# one table per network written to results/.
[group('bench')]
bench-vs-torch backbone="small-cnn" size="96" batch="32" device="flex":
    #!/usr/bin/env bash
    set -euo pipefail
    case "{{device}}" in tch-*) with=scripts/libtorch; features="--features tch" ;; *) with=; features= ;; esac
    $with cargo build --release --locked -p embcam $features
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q -r bench/requirements.txt
    $with .venv/bin/python bench/side_by_side.py --embcam target/release/embcam --device {{device}} --backbone {{backbone}} --size {{size}} --batch {{batch}} --iters 5 --rounds 3 --out results/bench-vs-pytorch-{{backbone}}-{{device}}-$(date +%Y%m%d-%H%M%S).md

# Every benchmark (criterion); record the figures in results/.
[group('bench')]
bench:
    cargo bench --workspace --locked

# Decode + resize throughput of the data layer.
[group('bench')]
bench-data:
    cargo bench -p embcam-cub --bench decode --locked

# --- LibTorch -----------------------------------------------------------------

# CPU-only LibTorch from the PyTorch 2.9.0 wheel (≈1.9 GB), then the model tests with the tch
# feature: flex↔LibTorch parity, LibTorch's training kernels (crates/model/README.md explains each step).
[group('check')]
test-tch:
    bash .ci/test-tch

# embcam with the LibTorch backend (installs the pinned wheel on first use), e.g.
# `just tch run experiments/quickstart.toml --device tch-cpu`.
[group('run')]
tch *args:
    scripts/embcam-tch {{args}}
