"""Folder encodes on a Dask cluster: the same manifest, skips and atomic writes as ``nic encode``.

Why Dask (distributed) and not Ray: it is a small pure-Python dependency, starts a local
cluster in-process for tests, and the same code talks to a real cluster (``dask scheduler``
+ ``dask worker`` on each machine, or dask-kubernetes / dask-jobqueue). Each task encodes one
image on a worker (the model is loaded once per worker process) and writes the output
straight to the output folder, which must be a path every worker sees (shared filesystem);
the client only merges manifest entries, saving the manifest atomically as results arrive, so
a killed run resumes where it stopped (outputs whose source hash and settings match are skipped).

    nic encode photos/ -o out/ --distributed local:2           # two local worker processes
    nic encode photos/ -o /shared/out --distributed tcp://scheduler:8786
"""

from __future__ import annotations

from pathlib import Path
import sys

from encoder.batch import Settings, is_current, load_manifest, save_manifest, sha256_file


def _encode_task(src: str, rel: str, out_dir: str, settings: Settings) -> dict:
    """Runs on a worker: encode one image with that process's cached encoder."""
    import torch

    from encoder.batch import encode_file
    from encoder.codec import default_encoder

    torch.set_num_threads(1)  # one image per worker thread; workers are the parallelism
    try:
        return encode_file(default_encoder(), Path(src), rel, Path(out_dir), settings)
    except ValueError as e:  # ImageError and bad settings: a per-file failure, reported by the client
        return {"error": str(e)}


def make_client(scheduler: str):
    from dask.distributed import Client, LocalCluster

    if scheduler.startswith("local:"):
        n = int(scheduler.split(":", 1)[1])
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def encode_distributed(jobs: list[tuple[Path, Path]], out: Path, settings: Settings, scheduler: str,
                       force: bool = False, quiet: bool = False) -> int:
    """Encode (source, relative output) jobs on a cluster; returns the exit code (1 if any failed)."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    from encoder.codec import default_encoder

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    model_id = default_encoder().int_model.model_id.hex()
    manifest = load_manifest(out)
    todo = [(src, str(rel)) for src, rel in jobs
            if force or not is_current(manifest.get(str(rel)), sha256_file(src), settings, model_id, out)]
    failures = 0
    client, cluster = make_client(scheduler)
    try:
        futures = {client.submit(_encode_task, str(Path(src).resolve()), rel, str(out), settings, pure=False): rel
                   for src, rel in todo}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="encode", unit="img", disable=quiet):
            rel = futures[fut]
            try:
                entry = fut.result()
            except Exception as e:  # a crashed task must not stop the rest of the folder
                entry = {"error": f"{type(e).__name__}: {e}"}
            if "error" in entry:
                print(f"nic: {entry['error']}", file=sys.stderr)
                failures += 1
                continue
            manifest[rel] = entry
            save_manifest(out, manifest)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not quiet:
        print(f"{len(todo) - failures} encoded, {len(jobs) - len(todo)} up to date, {failures} failed; "
              f"manifest: {out / 'manifest.json'}")
    return 1 if failures else 0
