"""The report of `benchmarks/gpu_check.sh OUTDIR`: every figure it measured, as markdown.

    python benchmarks/gpu_report.py OUTDIR

Speed against the physical limit (the lower bound from FLOPs and bytes per iteration, see
`speed.py`), the targets (ms per training iteration at batch 64, K = 100) and the reference
PyTorch code's times on an H100; the learning curve (loss, mean output on
flowed samples and on data every 100 steps) beside the reference's; FID against the flow
length, the prior's own FID (length 0), and the wall times of training and scoring.
"""

from __future__ import annotations

import json
import os
import re
import sys

# ms per iteration (batch 64, K = 100): the reference PyTorch code on one H100, and our targets.
REFERENCE_MS = {"cifar10": 1222, "cifar10-nosn": 514, "celeba64": 274, "church128": 611,
                "cat2dog": 818}  # fmt: skip
TARGET_MS = {"cifar10": 120, "cifar10-nosn": 110, "celeba64": 60, "church128": 140, "cat2dog": 80}
# The reference code, CIFAR-10 with spectral norm off, seed 0: (loss, mean r on flowed samples,
# mean r on data) at steps 100 and 800.
REFERENCE_CURVE = {100: (-0.15, 0.27, 0.48), 800: (-0.18, 0.33, 0.53)}


def _load(path: str):
    with open(path) as f:
        return json.load(f)


def _wall(log: str) -> str:
    """The `real` seconds `time -p` appended to a log."""
    if not os.path.exists(log):
        return "?"
    found = re.findall(r"^real\s+([\d.]+)", open(log).read(), re.M)
    return found[-1] if found else "?"


def main(out: str) -> None:
    print(f"# Hardware check: {out}\n")
    speed_path = os.path.join(out, "speed.json")
    if os.path.exists(speed_path):
        speed = _load(speed_path)
        peak = speed.get("bf16_matmul_peak_tflops")
        print(f"Device: {speed['device']}" + (f"; measured bf16 matmul peak {peak:.0f} TFLOP/s."
              if peak else "."))  # fmt: skip
        print("\n| config | precision | ms / iteration | lower bound H100 / H200 (ms) | "
              "target | reference | samples/s (K+κ) | TFLOP / iteration | TFLOP/s | "
              "compile train / sampler (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in speed["rows"]:
            c, lb = r["config"], r.get("lower_bound_ms", {})
            ms = r.get("ms_per_iteration")
            tflops = f"{r['achieved_tflops']:.1f}" if "achieved_tflops" in r else "–"
            if peak and "achieved_tflops" in r:
                tflops += f" ({100 * r['achieved_tflops'] / peak:.0f}% of peak)"
            bound = (
                f"{lb['H100 SXM']:.1f} / {lb['H200 SXM']:.1f}" if lb else "–"
            )  # fmt: skip
            sps = f"{r['samples_per_s']:.0f}" if "samples_per_s" in r else "–"
            tflop = f"{r['tflop_per_iteration']:.1f}" if "tflop_per_iteration" in r else "–"
            compiled = f"{r['compile_s_train_step']:.0f}"
            if "compile_s_sampler" in r:
                compiled += f" / {r['compile_s_sampler']:.0f}"
            print(
                f"| {c} | {r['precision']} | {f'{ms:.1f}' if ms else '–'} | {bound} | "
                f"{TARGET_MS.get(c, '–')} | {REFERENCE_MS.get(c, '–')} | {sps} | {tflop} | "
                f"{tflops} | {compiled} |"
            )
        skipped = speed.get("skipped_for_budget")
        if skipped:
            print(f"\nNot measured (time budget): {', '.join(skipped)}.")
        print()
    run = os.path.join(out, "cifar10_nosn")
    metrics = os.path.join(run, "metrics.jsonl")
    if os.path.exists(metrics):
        rows = [json.loads(ln) for ln in open(metrics) if ln.strip()]
        print("Learning curve (CIFAR-10, spectral norm off; ours beside the reference's):\n")
        print("| step | loss | out_q (mean r, flowed) | out_p (mean r, data) | steps/s | "
              "reference loss / out_q / out_p |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for r in rows:
            if r.get("diverged"):
                print(f"| {r['step']} | diverged | | | | |")
                continue
            ref = REFERENCE_CURVE.get(r["step"])
            ref = " / ".join(f"{v:.2f}" for v in ref) if ref else ""
            print(f"| {r['step']} | {r['loss']:.4f} | {r['out_q']:.3f} | {r['out_p']:.3f} | "
                  f"{r.get('steps_per_sec', float('nan')):.2f} | {ref} |")  # fmt: skip
        print(f"\nTraining wall time: {_wall(os.path.join(out, 'train.log'))} s.\n")
    fid_path = os.path.join(run, "eval", "image_metrics.json")
    if os.path.exists(fid_path):
        m = _load(fid_path)
        print(f"FID of {m['num_samples']} samples at step {m['step']} ({m['feature_net']} "
              f"features, reference {m.get('fid_reference')}):\n")  # fmt: skip
        print("| total flow length | FID |\n|---|---|")
        for k, v in m.get("fid_vs_flow_length", {}).items():
            print(f"| {k}{' (the prior alone)' if k == '0' else ''} | {v:.2f} |")
        print(f"\nSampling and scoring wall time: {_wall(os.path.join(out, 'eval.log'))} s.")


if __name__ == "__main__":
    main(sys.argv[1])
