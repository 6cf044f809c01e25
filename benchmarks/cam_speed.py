"""How fast are our CAMs against tf-keras-vis, and what does Score-CAM cost in memory?

Same model (our MobileNetV2 at 128 px, alpha 1.0, random init unless ``--model``), same 256
face images (UTKFace-200 when ../shared/data/utkface-200 exists, else synthetic faces), same
layer (``out_relu``), one process: images/s for ours and tf-keras-vis on Grad-CAM,
Grad-CAM++, Layer-CAM and Score-CAM, plus one plain compiled forward pass of the whole
model. Methods are timed in interleaved rounds (ours, peer, ours, peer...) and the median
is reported, because the CPU is shared with other jobs. tf-keras-vis gets
``ReplaceToLinear`` on a clone (so it differentiates logits, as we do; our model is untouched).

Score-CAM uses Faster Score-CAM on both sides (``--max-n`` channels with the highest spatial
variance per image). tf-keras-vis computes the per-image top-N only when called with one
image at a time; with a batch it scores the *union* of every image's channels for every
image. Both peer modes are timed (one image, and 8 images per call), and the speed-up is
reported against whichever was faster. Peak memory of each Score-CAM is measured in a fresh
subprocess on ``--mem-images`` images: after a one-image warm-up (tracing), the RSS
high-water mark is reset (Linux ``/proc/self/clear_refs``) and its growth over the RSS
before the call is reported; ours must stay under ``--memory-budget-mb``.

    python benchmarks/cam_speed.py                    # writes benchmarks/results/cam_speed.json
    python benchmarks/cam_speed.py --images 64 --repeats 3 --score-repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from agelens.model.builder import ModelConfig, build_age_model  # noqa: E402
from agelens.model.io import load_model  # noqa: E402
from agelens.model.wrap import wrap_keras_model  # noqa: E402

DATA = (Path(__file__).parents[1] / ".." / "shared" / "data" / "utkface-200").resolve()
RESULTS = ROOT / "benchmarks" / "results" / "cam_speed.json"
LAYER = "out_relu"
Runner = Callable[[np.ndarray, np.ndarray], object]
TARGETS = {"gradcam": 3.0, "gradcam++": 3.0, "layercam": 3.0, "scorecam": 3.0}


def get_model(path: str | None) -> object:
    if path:
        return load_model(path)
    return wrap_keras_model(build_age_model(ModelConfig(input_size=128, alpha=1.0), seed=0))


def get_images(n: int, size: int) -> tuple[np.ndarray, str]:
    from agelens.data.images import load_image, resize_for_model

    if DATA.is_dir():
        files = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:n]
        imgs = [resize_for_model(load_image(p), size) for p in files]
        if len(imgs) == n:
            return np.stack(imgs).astype(np.float32), f"UTKFace-200 (first {n} files)"
    try:
        from agelens.data.synthetic import generate

        return generate(n, size=size, seed=0).images.astype(np.float32), "synthetic faces (generate, seed 0)"
    except Exception:  # noqa: BLE001 - fall back to noise if the generator is unavailable
        return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32), "random noise"


def peer_model(km: keras.Model) -> keras.Model:
    out = km.output["age_group"] if isinstance(km.output, dict) else km.output
    return keras.Model(km.input, out)


def ours_runner(am: object, method: str, args: argparse.Namespace) -> Runner:
    from agelens.explain import make_method

    opts = {"batch_size": args.batch}
    if method == "scorecam":
        opts.update(max_channels=args.max_n, max_batch=args.max_batch)
    m = make_method(am, method, LAYER, **opts)
    return lambda x, classes: m.attribute(x, list(classes))


def peer_runner(km: keras.Model, method: str, args: argparse.Namespace, score_step: int = 1) -> Runner:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "layercam": Layercam, "scorecam": Scorecam}[
        method
    ]
    viz = cls(peer_model(km), model_modifier=ReplaceToLinear(), clone=True)
    kw = {"penultimate_layer": LAYER, "seek_penultimate_conv_layer": False}
    step = score_step if method == "scorecam" else args.batch

    extra = {"max_N": args.max_n, "batch_size": args.max_batch} if method == "scorecam" else {}

    def run(x: np.ndarray, classes: np.ndarray) -> object:
        out = []
        for i in range(0, len(x), step):
            score = CategoricalScore([int(c) for c in classes[i : i + step]])
            out.append(viz(score, x[i : i + step], **kw, **extra))
        return out

    return run


def forward_runner(am: object, args: argparse.Namespace) -> Runner:
    km, size = am.keras_model, am.input_size

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])
    def fwd(x: tf.Tensor) -> object:
        return km(x, training=False)

    return lambda x, classes: [fwd(tf.constant(x[i : i + args.batch])) for i in range(0, len(x), args.batch)]


def timed(fn: Runner, x: np.ndarray, classes: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(x, classes)
    return time.perf_counter() - t0


def predicted(am: object, x: np.ndarray) -> np.ndarray:
    """The class each image is explained for (computed once, outside every timing)."""
    return am.predict(x)["probabilities"].argmax(1)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs`` 5); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(which: str, args: argparse.Namespace) -> None:
    """Subprocess: one Score-CAM pass after a warm-up; prints the RSS high-water mark growth as JSON."""
    am = get_model(args.model)
    x, _ = get_images(args.mem_images, am.input_size)
    if which == "ours":
        run = ours_runner(am, "scorecam", args)
    else:  # "peer" = one image per call (as timed); "peer-batch8" shows what batching costs it
        run = peer_runner(am.keras_model, "scorecam", args, 8 if which == "peer-batch8" else 1)
    classes = predicted(am, x)
    run(x[:1], classes[:1])  # trace/compile first: a one-off cost, not the steady state
    exact = reset_peak()
    base = rss_mb()
    t0 = time.perf_counter()
    run(x, classes)
    seconds = time.perf_counter() - t0
    peak = peak_mb()
    out = {"baseline_mb": round(base, 1), "peak_mb": round(peak, 1), "delta_mb": round(peak - base, 1)}
    out["img_s"] = round(len(x) / seconds, 2)
    print(json.dumps(out | {"peak_reset": exact}))


def memory(which: str, args: argparse.Namespace) -> dict:
    opts = {"--mem-images": args.mem_images, "--max-n": args.max_n, "--max-batch": args.max_batch}
    cmd = [sys.executable, __file__, "--child", which, "--batch", str(args.batch)]
    cmd += [str(v) for kv in opts.items() for v in kv]
    if args.model:
        cmd += ["--model", args.model]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a .keras model (default: random-init MobileNetV2 128 px)")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=32, help="images per call (both libraries)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds for gradient methods")
    p.add_argument("--score-repeats", type=int, default=3, help="timed rounds for Score-CAM")
    p.add_argument("--max-n", type=int, default=16, help="Score-CAM channels per image (both)")
    p.add_argument("--max-batch", type=int, default=64, help="masked images per forward pass (both)")
    p.add_argument("--memory-budget-mb", type=float, default=512.0)
    p.add_argument("--mem-images", type=int, default=32)
    p.add_argument("--child", choices=["ours", "peer", "peer-batch8"], help=argparse.SUPPRESS)
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # tf-keras-vis passes inputs as a list
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.child:
        keras.utils.disable_interactive_logging()
        child(args.child, args)
        return

    am = get_model(args.model)
    x, source = get_images(args.images, am.input_size)
    keras.utils.disable_interactive_logging()  # tf-keras-vis calls predict() with progress bars
    print(f"{len(x)} images from {source}; model {args.model or 'random-init MobileNetV2 128 px alpha 1.0'}")
    classes = predicted(am, x)
    runners: dict[str, Runner] = {"forward": forward_runner(am, args)}
    for m in TARGETS:
        runners[f"ours:{m}"] = ours_runner(am, m, args)
        runners[f"peer:{m}"] = peer_runner(am.keras_model, m, args)
    runners["peer:scorecam-batch8"] = peer_runner(am.keras_model, "scorecam", args, 8)
    for name, fn in runners.items():  # trace / warm up on a small slice
        n = 8 if "batch8" in name else 1 if "scorecam" in name else args.batch
        fn(x[:n], classes[:n])

    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(max(args.repeats, args.score_repeats)):
        for name, fn in runners.items():
            if "scorecam" in name and r >= args.score_repeats or "scorecam" not in name and r >= args.repeats:
                continue
            times[name].append(timed(fn, x, classes))
            print(f"  round {r + 1}: {name:16s} {len(x) / times[name][-1]:8.1f} img/s", flush=True)

    rate = {k: len(x) / float(np.median(v)) for k, v in times.items()}
    rows = []
    for m, need in TARGETS.items():
        # Score-CAM: against the peer's faster mode (batch-8 scores the union of channels, see top)
        peer_key = (
            max((k for k in rate if k.startswith(f"peer:{m}")), key=rate.get)
            if m == "scorecam"
            else f"peer:{m}"
        )
        ours, peer = rate[f"ours:{m}"], rate[peer_key]
        row = {"method": m, "ours_img_s": round(ours, 2), "peer_img_s": round(peer, 2), "peer_mode": peer_key}
        rows.append(row | {"speedup": round(ours / peer, 2), "target": need, "ok": ours / peer >= need})
    grad_vs_fwd = rate["forward"] / rate["ours:gradcam"]
    mem = {k: memory(k, args) for k in ("ours", "peer", "peer-batch8")}
    mem_ok = mem["ours"]["delta_mb"] <= args.memory_budget_mb
    report(rows, rate["forward"], grad_vs_fwd, mem, args.memory_budget_mb)

    result = {
        "benchmark": "CAM speed: agelens.explain vs tf-keras-vis, same model/images/layer, one process",
        "images": len(x),
        "source": source,
        "model": args.model or "build_age_model(128 px, alpha 1.0), seed 0",
        "layer": LAYER,
        "batch": args.batch,
        "score_cam": {"max_n": args.max_n, "max_batch": args.max_batch, "peer_calls": "one image per call"},
        "repeats": {"gradient_methods": args.repeats, "score_cam": args.score_repeats},
        "statistic": "median of interleaved rounds",
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_at_end": [round(v, 2) for v in os.getloadavg()],
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "rows": rows,
        "forward_img_s": round(rate["forward"], 2),
        "gradcam_time_over_forward": round(grad_vs_fwd, 3),
        "gradcam_ok": grad_vs_fwd <= 2.5,
        "score_cam_memory": mem | {"mem_images": args.mem_images},
        "memory_budget_mb": args.memory_budget_mb,
        "memory_ok": mem_ok,
        "all_img_s": {k: [round(len(x) / t, 2) for t in v] for k, v in times.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


def report(rows: list[dict], forward: float, grad_vs_fwd: float, mem: dict, budget: float) -> None:
    print(f"\n{'method':12s} {'ours img/s':>11s} {'tf-keras-vis':>13s} {'speedup':>8s}  target")
    for r in rows:
        verdict = "ok" if r["ok"] else "MISSED"
        print(
            f"{r['method']:12s} {r['ours_img_s']:11.1f} {r['peer_img_s']:13.2f} {r['speedup']:7.1f}x", end=""
        )
        print(f"  >= {r['target']:.0f}x {verdict}")
    print(f"{'forward':12s} {forward:11.1f}")
    verdict = "ok" if grad_vs_fwd <= 2.5 else "MISSED"
    print(f"Grad-CAM time / forward time: {grad_vs_fwd:.2f} (target <= 2.5: {verdict})")
    for k, v in mem.items():
        print(f"Score-CAM peak RSS growth ({k:11s}): {v['delta_mb']:6.0f} MB  ({v['img_s']:.2f} img/s)")
    print(
        f"memory budget {budget:.0f} MB for ours: {'ok' if mem['ours']['delta_mb'] <= budget else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
