"""Face-feature throughput: the extractor's visual path against a naive per-image ``model(processor(image))`` loop.

Both paths embed the same JPEG face images (drawn, 112x112, in a temporary ``cropped_aligned`` folder) with the same
randomly initialised BEiT, saved and loaded by path like a checkpoint, at the same precision. The visual path batches
the images, decodes and preprocesses them in DataLoader workers beside the model, pins memory on CUDA and runs under
bf16 autocast there; the reference opens, preprocesses and embeds one image at a time. Printed: median frames/s of
each over repeats, and the ratio. ``--real-size`` builds BEiT-large (24 layers, width 1024, 224x224, 16x16 patches)
for GPU runs and also prints the fraction of the device's FLOP bound reached.

    python benchmarks/extract_throughput.py                          # small BEiT on CPU, about a minute
    python benchmarks/extract_throughput.py --real-size --images 4096 --naive-images 256 --batch-size 256 \
        --workers 12 --compile
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from transformers import BeitConfig, BeitImageProcessor, BeitModel

from exprfusion.sources.extract.checkpoints import (
    autocast,
    compute_device,
    compute_dtype,
    describe_checkpoint,
    dtype_name,
)
from exprfusion.sources.extract.settings import VisualSettings
from exprfusion.sources.extract.visual import FaceEncoder, FaceVideo

# Dense bf16 tensor-core peaks (TFLOP/s) of common accelerators, for the fraction of the FLOP bound.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def beit_config(real_size: bool) -> BeitConfig:
    """BEiT-large's architecture, or a small BEiT (width 192, 4 layers) on the same 224x224 images."""
    if real_size:
        return BeitConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            use_mean_pooling=True,
        )
    return BeitConfig(
        hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768, use_mean_pooling=True
    )


def flops_per_image(config: BeitConfig) -> float:
    """Forward FLOPs of one image (multiply-add = 2): the patch embedding, then per layer q/k/v/out, the MLP and
    the two attention products over all tokens."""
    d, n_layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    patches = (config.image_size // config.patch_size) ** 2
    tokens = patches + 1
    embedding = 2 * patches * (3 * config.patch_size**2) * d
    per_layer = 2 * tokens * (4 * d * d + 2 * d * ff) + 2 * 2 * tokens * tokens * d
    return embedding + n_layers * per_layer


def write_faces(folder: Path, count: int) -> list[Path]:
    """``count`` drawn 112x112 faces as JPEG files ``00001.jpg`` ..."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        image = Image.new("RGB", (112, 112), (40 + i % 7 * 20, 60, 90))
        draw = ImageDraw.Draw(image)
        draw.ellipse((16, 8, 96, 104), fill=(224, 182, 150))
        draw.ellipse((34, 36, 46, 46), fill=(30, 30, 30))
        draw.ellipse((66, 36, 78, 46), fill=(30, 30, 30))
        draw.ellipse((40, 70 - i % 9, 72, 74 + i % 9), fill=(150, 40, 50))
        path = folder / f"{i + 1:05d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def time_visual_path(encoder: FaceEncoder, paths: list[Path], workers: int) -> float:
    """Seconds to embed every image through the extractor's visual path."""
    started = time.perf_counter()
    for _ in encoder.encode_videos([FaceVideo("bench", paths)], workers=workers):
        pass
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def time_naive(model: torch.nn.Module, processor, paths: list[Path], device, dtype) -> float:
    """Seconds of the reference: open, preprocess and embed one image at a time."""
    started = time.perf_counter()
    for path in paths:
        pixels = processor(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"]
        with torch.inference_mode(), autocast(device, dtype):
            model(pixel_values=pixels.to(device)).pooler_output.float().cpu()
    return time.perf_counter() - started


def main() -> None:
    """Measure both paths and print frames/s, their ratio and (with a known device) the FLOP-bound fraction."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--naive-images", type=int, default=32, help="images of the reference (at most --images)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--real-size", action="store_true", help="BEiT-large's architecture (for GPUs)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the FLOP bound")
    args = parser.parse_args()

    device = compute_device(args.device)
    dtype = compute_dtype(args.precision, device)
    config = beit_config(args.real_size)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        torch.manual_seed(0)
        BeitModel(config).save_pretrained(folder / "beit")
        BeitImageProcessor().save_pretrained(folder / "beit")
        paths = write_faces(folder / "cropped_aligned" / "bench", args.images)
        settings = VisualSettings(model=str(folder / "beit"), batch_size=args.batch_size)
        encoder = FaceEncoder(settings, describe_checkpoint(settings.model, None), device, dtype, args.compile)
        naive_paths = paths[: args.naive_images]
        time_visual_path(encoder, paths[: args.batch_size * 2], args.workers)  # warm-up (and compilation)
        time_naive(encoder.model, encoder.processor, naive_paths[:4], device, dtype)
        fast, slow = [], []
        for _ in range(args.repeats):
            fast.append(len(paths) / time_visual_path(encoder, paths, args.workers))
            slow.append(len(naive_paths) / time_naive(encoder.model, encoder.processor, naive_paths, device, dtype))
    fast_median, slow_median = statistics.median(fast), statistics.median(slow)
    size = "BEiT-large architecture" if args.real_size else "small BEiT (width 192, 4 layers)"
    print(f"{size}, 224x224, {device}, {dtype_name(dtype)}, {torch.get_num_threads()} threads")
    print(f"images {len(paths)} (reference {len(naive_paths)}), batch {args.batch_size}, workers {args.workers}")
    print(f"visual path  : {fast_median:9.1f} frames/s  (repeats: {', '.join(f'{v:.1f}' for v in fast)})")
    print(f"naive loop   : {slow_median:9.1f} frames/s  (repeats: {', '.join(f'{v:.1f}' for v in slow)})")
    print(f"ratio        : {fast_median / slow_median:9.2f}x")
    flops = flops_per_image(config)
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((value for key, value in PEAK_TFLOPS.items() if key in name), None)
    print(f"FLOPs/image  : {flops / 1e9:9.2f} GFLOP -> {fast_median * flops / 1e9:.1f} GFLOP/s achieved")
    if peak:
        print(f"FLOP bound   : {fast_median * flops / (peak * 1e12):9.1%} of {peak:.0f} TFLOP/s")


if __name__ == "__main__":
    main()
