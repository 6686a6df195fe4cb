"""PyTorch reference for the plain training step (the "compute core" target of bench/step.ts train).

usage: OMP_NUM_THREADS=T /usr/bin/python3 bench/torch_train_step.py CONFIG T [--steps 3] [--warmup 1]
                                                                   [--pairs 2] [--json out.json]

One step = forward + backward + AdamW of the mean next-token NLL over 2·pairs sequences of the
config's full length (4 × 512 for `small` with the default 2 pairs), on the same model and batch as
../shared/bench/dpo_ref.py (imported at run time, never copied). Run one config per process: peak
RSS (ru_maxrss) is per process. Prints one JSON line in bench/step.ts's format.
"""
import argparse, json, os, resource, statistics, sys, time

SHARED = os.environ.get("DPO_SHARED_BENCH", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))
sys.path.insert(0, SHARED)
try:
    import torch
    import torch.nn.functional as F
    from dpo_ref import CONFIGS, build_model, make_batch  # noqa: E402
except ImportError as e:  # torch or the shared reference missing: say which
    print(f"torch_train_step.py: cannot import ({e}); needs python3-torch and {SHARED}/dpo_ref.py", file=sys.stderr)
    sys.exit(3)

ap = argparse.ArgumentParser()
ap.add_argument("config")
ap.add_argument("threads", type=int)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--pairs", type=int, default=2)
ap.add_argument("--json")
a = ap.parse_args()

if os.environ.get("OMP_NUM_THREADS") != str(a.threads):
    print(f"WARNING: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} != threads={a.threads}", file=sys.stderr)
torch.set_num_threads(a.threads)
torch.manual_seed(0)
c = CONFIGS[a.config]
S = c.max_seq_len
model = build_model(c)
opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
ch, rj, _, _ = make_batch(c, pairs=a.pairs, seq=S, gen=torch.Generator().manual_seed(1))
ids = torch.cat([ch, rj], 0)                      # (2·pairs, S), as one DPO policy batch
rows = ids.shape[0]


def step():
    logits = model(ids)[:, :-1, :]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    loss = step()
    dt = time.perf_counter() - t0
    if i >= a.warmup:
        times.append(dt)
    print(f"  step {i} {dt:.3f}s loss={loss:.5f}", file=sys.stderr, flush=True)

med = statistics.median(times)
res = dict(ours=False, mode="train", config=a.config, threads=torch.get_num_threads(), pairs=a.pairs, seq=S,
           step_s_median=med, step_s_min=min(times), step_s_all=times, policy_tok_per_s=rows * S / med,
           peak_rss_MiB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           env_OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"), torch=torch.__version__)
print(json.dumps(res))
if a.json:
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
