"""Training throughput: the stacked, vectorised loader against a naive per-window ``torch.utils.data.Dataset``.

Both paths train the same model for the same batches of windows. Printed per path: median frames/s over repeats
(training and data loading alone) and the share of the step spent loading data; then the ratios.

    python benchmarks/train_throughput.py                 # default synthetic corpus (generated to a temp dir)
    python benchmarks/train_throughput.py --corpus data/corpus --batches 20 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from exprfusion.core.devices import autocast_for, resolve_device
from exprfusion.core.seeding import seed_everything
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import gather_windows, load_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.losses import FocalLoss


class NaiveWindowDataset(Dataset):
    """The simple reference: one item per window, read from the video's files and padded in Python."""

    def __init__(self, corpus: Corpus, split: str, window: int, stride: int) -> None:
        self.corpus = corpus
        self.window = window
        self.items = []
        for video in corpus.videos(split):
            n = int(corpus.manifest.loc[video, "n_frames"])
            starts = list(range(0, max(1, n - window + 1), stride))
            if starts[-1] + window < n:
                starts.append(n - window)
            self.items += [(video, s) for s in starts]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        video, start = self.items[i]
        record = self.corpus.load(video, mmap=False)
        end = min(start + self.window, record.n_frames)
        pad = self.window - (end - start)

        def take(array: np.ndarray, fill: float | int | bool) -> torch.Tensor:
            part = np.asarray(array[start:end])
            if pad:
                part = np.concatenate([part, np.full((pad, *part.shape[1:]), fill, dtype=part.dtype)])
            return torch.from_numpy(part)

        return {
            "visual": take(record.visual, 0),
            "audio": take(record.audio, 0),
            "face_mask": take(record.face_mask, False),
            "audio_mask": take(record.audio_mask, False),
            "labels": take(record.labels, -1),
        }


def train_steps(model, optimizer, loss_fn, batches, device) -> tuple[int, float, float]:
    """Run one step per batch from the ``batches`` iterator; return (frames, seconds total, seconds loading)."""
    frames, loading, started = 0, 0.0, time.perf_counter()
    iterator = iter(batches)
    while True:
        t0 = time.perf_counter()
        try:
            visual, audio, face_mask, audio_mask, labels = next(iterator)
        except StopIteration:
            break
        visual, audio = visual.to(device), audio.to(device)
        face_mask, audio_mask, labels = face_mask.to(device), audio_mask.to(device), labels.to(device)
        loading += time.perf_counter() - t0
        with autocast_for(device):
            logits = model(visual, audio, face_mask, audio_mask)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        frames += int(labels.numel())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return frames, time.perf_counter() - started, loading


def vectorised_batches(data, index, order, batch_size, n_batches):
    """Batches gathered from the stacked split by fancy indexing."""
    rows = torch.from_numpy(index.rows).to(data.labels.device)
    valid = torch.from_numpy(index.valid).to(data.labels.device)
    for step in range(n_batches):
        ids = order[step * batch_size : (step + 1) * batch_size]
        batch = gather_windows(data, rows[ids], valid[ids])
        yield batch.visual, batch.audio, batch.face_mask, batch.audio_mask, batch.labels


def naive_batches(loader, n_batches):
    """Batches from the per-window Dataset through a default DataLoader."""
    for step, batch in enumerate(loader):
        if step >= n_batches:
            break
        yield batch["visual"], batch["audio"], batch["face_mask"], batch["audio_mask"], batch["labels"]


def main() -> None:
    """Measure both loaders and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: generate the default profile)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--batches", type=int, default=12, help="batches per measured pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.corpus
        if root is None:
            from exprfusion.sources.synthetic import generate_corpus

            root = Path(tmp) / "corpus"
            generate_corpus(root, profile=args.profile, seed=0)
        corpus = Corpus(root)
        device = resolve_device(args.device)
        generator = seed_everything(0)
        started = time.perf_counter()
        data = load_split(corpus, "train").to(device)
        stack_seconds = time.perf_counter() - started
        index = data.window_index(args.window, args.stride)
        n_batches = min(args.batches, index.n_windows // args.batch_size)
        config = FusionConfig.paper(
            visual_dim=corpus.visual_dim, audio_dim=corpus.audio_dim, d_model=args.d_model, n_layers=args.n_layers
        )
        model = FusionTransformer(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss_fn = FocalLoss()
        dataset = NaiveWindowDataset(corpus, "train", args.window, args.stride)
        results: dict[str, list[tuple[float, float, float]]] = {"vectorised": [], "naive Dataset": []}
        data_only: dict[str, list[float]] = {"vectorised": [], "naive Dataset": []}
        for _ in range(args.repeats):
            order = torch.randperm(index.n_windows, generator=generator).to(device)
            loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0)
            for name, make in (
                ("vectorised", lambda o=order: vectorised_batches(data, index, o, args.batch_size, n_batches)),
                ("naive Dataset", lambda ld=loader: naive_batches(ld, n_batches)),
            ):
                frames, seconds, loading = train_steps(model, optimizer, loss_fn, make(), device)
                results[name].append((frames / seconds, loading / seconds, frames))
                t0 = time.perf_counter()
                frames_loaded = sum(int(b[4].numel()) for b in make())
                data_only[name].append(frames_loaded / (time.perf_counter() - t0))

        print(f"corpus {root} | train frames {data.n_frames} | windows {index.n_windows} | device {device}")
        print(f"model d={args.d_model} l={args.n_layers} ({model.count_parameters() / 1e6:.2f} M params)")
        print(f"stacking the split once: {stack_seconds:.2f} s; {n_batches} batches of {args.batch_size} per pass")
        print(f"{'loader':<15}{'train frames/s':>16}{'data share':>12}{'load-only frames/s':>20}")
        medians = {}
        for name in results:
            fps = statistics.median(r[0] for r in results[name])
            share = statistics.median(r[1] for r in results[name])
            load = statistics.median(data_only[name])
            medians[name] = (fps, load)
            print(f"{name:<15}{fps:>16.0f}{share:>11.1%}{load:>20.0f}")
        vec, naive = medians["vectorised"], medians["naive Dataset"]
        print(f"ratio vectorised/naive: training {vec[0] / naive[0]:.2f}x, data loading alone {vec[1] / naive[1]:.1f}x")
        epoch_frames = index.n_windows * args.window
        print(f"one epoch ({epoch_frames} window frames) at the vectorised rate: {epoch_frames / vec[0]:.1f} s")


if __name__ == "__main__":
    main()
