#!/usr/bin/python3
"""make compare-torch: fusebench's fusion methods against PyTorch, same shapes, same thread count,
same session.

  bench/compare_torch.py [--threads 1,2] [--small] [--reps N] [--methods all|a,b] [--out FILE]

1. `bench/fusebench kernels --methods ...` times every method (forward; backward) in C and writes
   its HDF5 file; `fusebench list --tsv` gives each method's kind, default variant and width of b.
2. This process then times the PyTorch modules of tests/refs/fusion/<method>.py (the references
   the tests check fusebench against, written from the documents) at the same shapes, float32,
   training mode, torch.set_num_threads(T): forward with autograd recording, and backward.
   Routed methods' PyTorch references compute every route for the whole batch and select per
   sample (fusebench computes only the selected rows), which favours fusebench on those two.
3. It prints, per method and thread count, both times and the ratio PyTorch / fusebench, the
   geometric mean, and writes results/compare-torch-<date>.h5.

OpenBLAS falls back to SSE3 kernels inside a process that has imported torch, so this script sets
OPENBLAS_CORETYPE (SkylakeX on AVX-512 CPUs, Haswell on AVX2) before importing torch: PyTorch is
compared at its best on this machine. The fusebench subprocess runs with the caller's environment.
"""
import argparse
import datetime
import math
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUSEBENCH = os.path.join(ROOT, "bench", "fusebench")


def cpu_coretype():
    flags = open("/proc/cpuinfo").read()
    return "SkylakeX" if " avx512f" in flags else "Haswell" if " avx2" in flags else ""


def run(cmd, env=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"compare-torch: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 [%(default)s]")
    ap.add_argument("--small", action="store_true", help="small shapes (B=32, D=64, S=T=16), framework overhead dominates")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per pass (median) [%(default)s]")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first [%(default)s]")
    ap.add_argument("--methods", default="all", help="comma-separated methods or 'all' [%(default)s]")
    ap.add_argument("--out", help="HDF5 output [results/compare-torch-<date>.h5]")
    args = ap.parse_args()
    try:
        threads = [int(t) for t in args.threads.split(",")]
        assert threads and all(t > 0 for t in threads)
    except (ValueError, AssertionError):
        sys.exit(f"compare-torch: --threads '{args.threads}' is not a list of positive integers")
    if not os.access(FUSEBENCH, os.X_OK):
        sys.exit("compare-torch: bench/fusebench is not built (run `make bench`)")

    # --- fusebench side (its own process, the caller's environment) ---
    listing = run([FUSEBENCH, "list", "--tsv"]).strip().split("\n")
    cols = listing[0].split("\t")
    methods = {r.split("\t")[0]: dict(zip(cols, r.split("\t"))) for r in listing[1:]}
    wanted = list(methods) if args.methods == "all" else args.methods.split(",")
    unknown = [m for m in wanted if m not in methods]
    if unknown:
        sys.exit(f"compare-torch: unknown method '{unknown[0]}' (fusebench list)")
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fb_h5 = os.path.join(ROOT, "results", f"compare-torch-fusebench-{stamp}.h5")
    cmd = [FUSEBENCH, "kernels", "--methods", ",".join(wanted), "--threads", args.threads,
           "--reps", str(args.reps), "--warmup", str(args.warmup), "--out", fb_h5]
    if args.small:
        cmd.append("--small")
    print("# fusebench:", " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    fb_out = run(cmd)
    header = [l for l in fb_out.splitlines() if l.startswith("# ceiling") or l.startswith("# blas core") or l.startswith("# fusion")]

    # --- PyTorch side, in this process ---
    coretype = os.environ.get("OPENBLAS_CORETYPE") or cpu_coretype()
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    import h5py
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "refs"))
    import importlib

    with h5py.File(fb_h5, "r") as h5:
        cfg = dict(h5["config"].attrs)
        t = h5["blocks"]
        fb = {}
        for blk, pas, th, ms in zip(t["block"][()], t["pass"][()], t["threads"][()], t["median_ms"][()]):
            fb[(blk.decode() if isinstance(blk, bytes) else blk, pas.decode() if isinstance(pas, bytes) else pas, int(th))] = float(ms)

    def shape_of(m):
        info = methods[m]
        vector = info["kind"] == "vector"
        D = int(cfg["fusion_dim"])
        E = int(info["typical_E"]) or D
        B = int(cfg["fusion_batch"] if vector else cfg["fusion_seq_batch"])
        S, T = (1, 1) if vector else (int(cfg["fusion_seq"]), int(cfg["fusion_tokens"]))
        H = int(cfg["H"]) if D % int(cfg["H"]) == 0 else 1
        return dict(B=B, S=S, T=T, D=D, E=E, H=H, L=int(cfg["latents"]), dropout=float(cfg["dropout"]),
                    variant=info["variants"].split(",")[0], training=1, threshold=0.6, temperature=1.0,
                    layers=4, F=2048 if m == "perceiver" else 0, latents_std=1.0, name="bench")

    def time_torch(net, a, b, dout, reps, warmup):
        fwd, bwd = [], []
        for r in range(warmup + reps):
            t0 = time.perf_counter()
            out = net(a, b)
            t1 = time.perf_counter()
            for p in list(net.parameters()) + [a, b]:
                p.grad = None
            t2 = time.perf_counter()
            out.backward(dout)
            t3 = time.perf_counter()
            if r >= warmup:
                fwd.append((t1 - t0) * 1e3)
                bwd.append((t3 - t2) * 1e3)
        return statistics.median(fwd), statistics.median(bwd)

    rows = []
    print(f"# torch {torch.__version__}, OPENBLAS_CORETYPE={coretype or '(unset)'} set for the PyTorch side; "
          f"{'small' if args.small else 'default'} shapes; median of {args.reps} after {args.warmup} warm-up")
    for line in header:
        print(line)
    print(f"\n{'method':22s} {'thr':>3s} {'fb fwd':>9s} {'pt fwd':>9s} {'x fwd':>6s} {'fb f+b':>9s} {'pt f+b':>9s} {'x f+b':>6s}  shape")
    for th in threads:
        torch.set_num_threads(th)
        for m in wanted:
            case = shape_of(m)
            mod = importlib.import_module("fusion." + m)
            torch.manual_seed(0)
            net = mod.build(case).float().train()
            vector = getattr(mod, "KIND", "vector") == "vector"
            a = torch.randn(*((case["B"], case["D"]) if vector else (case["B"], case["S"], case["D"])), requires_grad=True)
            b = torch.randn(*((case["B"], case["E"]) if vector else (case["B"], case["T"], case["E"])), requires_grad=True)
            with torch.no_grad():
                dout = torch.randn_like(net(a, b))
            pf, pb = time_torch(net, a, b, dout, args.reps, args.warmup)
            ff, fbk = fb[(m, "fwd", th)], fb[(m, "bwd", th)]
            row = dict(method=m, threads=th, fb_fwd=ff, fb_bwd=fbk, pt_fwd=pf, pt_bwd=pb,
                       x_fwd=pf / ff, x_total=(pf + pb) / (ff + fbk),
                       shape=f"B={case['B']} S={case['S']} T={case['T']} D={case['D']} E={case['E']}")
            rows.append(row)
            print(f"{m:22s} {th:3d} {ff:9.3f} {pf:9.3f} {row['x_fwd']:6.2f} {ff + fbk:9.3f} {pf + pb:9.3f} "
                  f"{row['x_total']:6.2f}  {row['shape']}", flush=True)

    print()
    ok = True
    target = 4.0 if args.small else 1.5
    for th in threads:
        sel = [r for r in rows if r["threads"] == th]
        g_f = math.exp(sum(math.log(r["x_fwd"]) for r in sel) / len(sel))
        g_t = math.exp(sum(math.log(r["x_total"]) for r in sel) / len(sel))
        slower = [r["method"] for r in sel if r["x_total"] < 1.0]
        print(f"FOM compare-torch threads={th} shapes={'small' if args.small else 'default'} geomean_fwd={g_f:.2f} "
              f"geomean_fwd_bwd={g_t:.2f} target={target} slower_than_torch={','.join(slower) or 'none'}")
        ok &= g_t >= target and not slower
    print(f"# ratio = PyTorch time / fusebench time (> 1: fusebench faster); targets: every method > 1, geometric "
          f"mean >= {target} -> {'MET' if ok else 'NOT MET'}")

    out = args.out or os.path.join(ROOT, "results", f"compare-torch-{stamp}.h5")
    with h5py.File(out + ".tmp", "w") as h5:
        h5.attrs.update(schema="fusebench.compare_torch", schema_version=1, torch=str(torch.__version__),
                        openblas_coretype_torch=coretype, shapes="small" if args.small else "default",
                        host=socket.gethostname(), date=stamp, command_line=" ".join(sys.argv), fusebench_file=fb_h5)
        g = h5.create_group("methods")
        for key in ("method", "shape"):
            g[key] = np.array([r[key] for r in rows], dtype=h5py.string_dtype())
        g["threads"] = np.array([r["threads"] for r in rows], dtype=np.int64)
        for key, unit in (("fb_fwd", "ms"), ("fb_bwd", "ms"), ("pt_fwd", "ms"), ("pt_bwd", "ms"), ("x_fwd", "1"), ("x_total", "1")):
            g[key] = np.array([r[key] for r in rows])
            g[key].attrs["units"] = unit
    os.replace(out + ".tmp", out)
    print(f"# wrote {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
