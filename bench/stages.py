"""Where an upload's time goes, stage by stage, in two trees: `python bench/stages.py OLD_TREE DIR`.

For six kinds of upload (the 280x280 canvas of bench.py, and from DIR, which
`python -m model.synth.realworld DIR` writes, 40 each of the photo, table, printed and lowres8
kinds; examples/number.png read as a number), in each tree (OLD_TREE, a checkout of another
commit, and this one), in its own process, one torch thread and one OpenCV thread, as the service runs:

- the image path's time split by the module its code lies in: decode (`decode`), grey (`gray`),
  ink map (`ink`, `sheet`), components (`components`; `imageops` before OpenCV), geometry (`geometry`,
  `segment`, `level`, `number`) and the rest of `preprocess` itself. Every function of those
  modules is wrapped by a timer that counts its own time, not its callees' (each wrapper adds
  about a microsecond a call: that lands in the stage that called it); the column "path" is the
  unwrapped `preprocess` (or `preprocess_number`) time of the same uploads, median of 7 turns;
- forward: the predictor's forward pass (and the refusal gate's) on what the path gave, one batch;
- HTTP: `python -m app` (1 worker, 1 torch thread) from the tree, each upload sent 5 times one
  after another on one connection: the mean of their median latencies ("latency") less the path
  and the forward pass; and the worker's RSS once they are answered.

The trees take turns and each figure is the lower of two turns. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, children, free_port, in_tree, make_payloads, memory_mb, wait_ready

STAGES = ("decode", "grey", "ink map", "components", "geometry", "preprocess")

#: Run inside each tree.
MEASURE = r"""
import functools, importlib, json, pkgutil, statistics, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
try:
    import cv2
    cv2.setNumThreads(1)  # as the service sets it (DIGITS_TORCH_THREADS); a tree before OpenCV has no use for it
except ImportError:
    pass
import model.imaging
from app.predictor import Predictor
from model.checkpoint import DEFAULT_CHECKPOINT
from model.contract import to_tensor
from model.imaging.number import preprocess_number
from model.imaging.preprocess import preprocess
job = json.loads(sys.stdin.read())
STAGE = {"decode": "decode", "gray": "grey", "ink": "ink map", "sheet": "ink map", "imageops": "components",
         "components": "components", "geometry": "geometry", "segment": "geometry", "level": "geometry",
         "number": "geometry", "preprocess": "preprocess"}
spent = dict.fromkeys(job["stages"], 0.0)
stack = []  # [time spent in wrapped callees] per active wrapped call

def timed(fn, stage):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        stack.append(0.0)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - t0
            inner = stack.pop()
            spent[stage] += elapsed - inner
            if stack:
                stack[-1] += elapsed
    return wrapper

def wrap_all():
    modules = [importlib.import_module(f"model.imaging.{m.name}") for m in pkgutil.iter_modules(model.imaging.__path__)]
    wrapped = {}
    for mod in modules:
        stage = STAGE.get(mod.__name__.rsplit(".", 1)[1])
        if stage is None:
            continue
        for name, obj in list(vars(mod).items()):
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            if isinstance(obj, type):
                for attr, member in list(vars(obj).items()):
                    own = getattr(member, "__module__", "") == mod.__name__
                    if callable(member) and not isinstance(member, type) and own:
                        setattr(obj, attr, timed(member, stage))
            elif callable(obj) and name not in job["skip"]:
                wrapped[obj] = timed(obj, stage)
    for mod in modules:  # every module's reference to a wrapped function, its own and the importers'
        for name, obj in list(vars(mod).items()):
            if callable(obj) and not isinstance(obj, type) and obj in wrapped:
                setattr(mod, name, wrapped[obj])
    return wrapped

predictor = Predictor.load(DEFAULT_CHECKPOINT, 25_000_000)
uploads = {kind: [Path(p).read_bytes() for p in paths] for kind, paths in job["kinds"].items()}

def images_of(kind, data):
    try:
        if kind == "number":
            return [image for slot in preprocess_number(data) for image in slot.images]
        return [preprocess(data).image]
    except Exception as e:  # a preprocessing error (it has a code): timed as what it cost
        if not hasattr(e, "code"):
            raise
        return []

def path_time(kind):
    turns = []
    for _ in range(7):
        t0 = time.perf_counter()
        for data in uploads[kind]:
            images_of(kind, data)
        turns.append((time.perf_counter() - t0) / len(uploads[kind]))
    return statistics.median(turns)

def forward_time(kind):
    read = [images_of(kind, d) for d in uploads[kind]]
    batches = [torch.stack([to_tensor(i) for i in images]) for images in read if images]
    turns = []
    for _ in range(7):
        t0 = time.perf_counter()
        for batch in batches:
            predictor.predict_tensors(batch, counted=False)
        turns.append((time.perf_counter() - t0) / len(batches))
    return statistics.median(turns)

out = {}
for kind in uploads:
    for data in uploads[kind]:
        images_of(kind, data)  # warm
    out[kind] = {"path": path_time(kind), "forward": forward_time(kind)}
wrap_all()
for kind in uploads:
    for key in spent:
        spent[key] = 0.0
    for _ in range(3):
        for data in uploads[kind]:
            images_of(kind, data)
    out[kind]["stages"] = {k: v / (3 * len(uploads[kind])) for k, v in spent.items()}
print(json.dumps(out))
"""

#: Module-level helpers called hundreds of times an upload: left unwrapped (their time is their
#: caller's, in the same module), so that the wrappers' cost does not swamp them.
SKIP = ["_cross", "_median", "_border", "_box", "_lerp"]


def http_latency(tree: Path, kinds: dict[str, list[str]]) -> dict[str, float]:
    """Of each kind, the mean over its uploads of the median latency of 5 requests of it, sent one
    after another on one connection to `python -m app` run from `tree` (after 20 to warm up)."""
    port = free_port()
    env = {**os.environ, "DIGITS_WORKERS": "1", "DIGITS_TORCH_THREADS": "1", "DIGITS_HOST": "127.0.0.1",
           "DIGITS_PORT": str(port), "DIGITS_LOG_LEVEL": "warning"}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_ready(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def send(data: bytes, path: str) -> float:
            t0 = time.perf_counter()
            conn.request(
                "POST",
                path,
                body=data,
                headers={"Content-Type": "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"},
            )
            response = conn.getresponse()
            response.read()
            if response.status >= 500:
                raise SystemExit(f"{tree}: {path} answered {response.status}")
            return time.perf_counter() - t0

        out = {}
        for kind, paths in kinds.items():
            path = "/predict/number" if kind == "number" else "/predict"
            uploads = [Path(p).read_bytes() for p in paths]
            for i in range(20):
                send(uploads[i % len(uploads)], path)
            out[kind] = statistics.mean(statistics.median(send(data, path) for _ in range(5)) for data in uploads)
        conn.close()
        workers = children(server.pid) or [server.pid]
        out["rss"] = max(memory_mb(pid)["rss"] for pid in workers) / 1e6  # MB, kept as the others' seconds
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", type=Path)
    p.add_argument("images", type=Path, help="a folder `python -m model.synth.realworld` wrote")
    p.add_argument("--per-kind", type=int, default=40)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stages-"))
    canvas = make_payloads(work)["canvas280/raw"][0]
    kinds = {"canvas": [str(canvas)]}
    for kind in ("photo", "table", "printed", "lowres8"):
        files = sorted(f for f in args.images.iterdir() if f.name.split("_")[1] == kind)
        if not files:
            raise SystemExit(f"no {kind} images in {args.images}")
        kinds[kind] = [str(f) for f in files[: args.per_kind]]
    kinds["number"] = [str(ROOT / "examples" / "number.png")]
    job = {"kinds": kinds, "stages": STAGES, "skip": SKIP}
    trees = {"before": args.old.resolve(), "after": ROOT}
    results: dict[str, dict[str, Any]] = {}
    for _ in range(2):  # the trees take turns; the lower of each figure is kept
        for name, tree in trees.items():
            got = in_tree(tree, MEASURE, job)
            if name not in results:
                results[name] = got
                continue
            for kind, figures in got.items():
                mine = results[name][kind]
                mine["path"], mine["forward"] = (
                    min(mine["path"], figures["path"]),
                    min(mine["forward"], figures["forward"]),
                )
                mine["stages"] = {k: min(v, figures["stages"][k]) for k, v in mine["stages"].items()}
    rss = {}
    for name, tree in trees.items():
        latency = http_latency(tree, kinds)
        rss[name] = latency.pop("rss") * 1e6
        for kind, seconds in latency.items():
            figures = results[name][kind]
            figures["http"] = seconds - figures["path"] - figures["forward"]
            figures["latency"] = seconds
    print(f"before: {args.old}, after: {ROOT}; microseconds an upload, means over each kind's uploads\n")
    columns = [*STAGES, "path", "forward", "http", "latency"]
    print("| kind | tree | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for kind in kinds:
        for name in trees:
            f = results[name][kind]
            cells = [f["stages"][s] for s in STAGES] + [f[c] for c in columns[len(STAGES) :]]
            print(f"| {kind} | {name} | " + " | ".join(f"{c * 1e6:,.0f}" for c in cells) + " |")
        speedup = results["before"][kind]["path"] / results["after"][kind]["path"]
        print(f"| {kind} | path before/after | {speedup:.2f}x |" + " |" * (len(columns) - 1))
    print(f"\nThe worker's RSS after the HTTP requests: before {rss['before']:.0f} MB, after {rss['after']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
