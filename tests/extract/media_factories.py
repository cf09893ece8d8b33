"""Tiny Aff-Wild2 media for extraction tests: saved random BEiT/WavLM models, drawn faces, mp4 files with a tone."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw

from exprfusion.data.annotations import EXPR_HEADER
from exprfusion.sources.extract.settings import AudioSettings, ExtractSettings, MediaSources, VisualSettings

SAMPLE_RATE = 44_100  # the media's own rate; extraction resamples to the model's 16 kHz
ATTENTION_WINDOW = 2  # rows each side that the test WavLM's attention can see


def save_tiny_beit(folder: Path) -> Path:
    """A randomly initialised 2-layer BEiT on 32x32 images (8x8 patches), with its image processor."""
    from transformers import BeitConfig, BeitImageProcessor, BeitModel

    torch.manual_seed(0)
    config = BeitConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        use_mean_pooling=True,
    )
    BeitModel(config).save_pretrained(folder)
    BeitImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_tiny_wavlm(folder: Path, window: int = ATTENTION_WINDOW) -> Path:
    """A randomly initialised 2-layer WavLM whose attention sees only ``window`` rows each side.

    Its relative-position bias is -1e4 for every bucket farther than ``window`` rows, so each layer's receptive
    field is bounded: the positional convolution (kernel 4) reaches 2 rows back and 1 ahead, each attention layer
    ``window`` rows either way, 2 + 2 * window rows in all. The front end is WavLM's (400 samples, hop 320), with
    layer normalisation as in WavLM-large.
    """
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_buckets=16,
        max_bucket_distance=32,
    )
    model = WavLMModel(config)
    with torch.no_grad():
        bias = model.encoder.layers[0].attention.rel_attn_embed.weight
        per_side = bias.shape[0] // 2
        for bucket in range(bias.shape[0]):
            if bucket % per_side > window:
                bias[bucket] = -1e4
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=16_000).save_pretrained(folder)
    return folder


def draw_face(frame: int, size: int = 112) -> Image.Image:
    """A drawn face whose mouth opens and closes with the frame number."""
    image = Image.new("RGB", (size, size), (40 + frame % 7 * 20, 60, 90))
    draw = ImageDraw.Draw(image)
    draw.ellipse((16, 8, 96, 104), fill=(224, 182, 150))
    draw.ellipse((34, 36, 46, 46), fill=(30, 30, 30))
    draw.ellipse((66, 36, 78, 46), fill=(30, 30, 30))
    opening = 2 + (frame * 3) % 14
    draw.ellipse((40, 72 - opening // 2, 72, 72 + opening // 2), fill=(150, 40, 50))
    return image


def write_video(
    path: Path,
    fps: Fraction | float,
    n_frames: int,
    tone_at: float | None = None,
    audio: bool = True,
    audio_delay: float = 0.0,
) -> Path:
    """An H.264 mp4 (64x48) with an AAC mono track: silence, then a 440 Hz tone from second ``tone_at``.

    The audio stream starts ``audio_delay`` seconds after the first frame (the tone stays at ``tone_at`` of the
    video's timeline) and ends with the last frame.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 9) % 256, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            delay = round(audio_delay * SAMPLE_RATE)
            t = (delay + np.arange(round(n_frames / float(rate) * SAMPLE_RATE) - delay)) / SAMPLE_RATE
            onset = np.inf if tone_at is None else tone_at
            wave = np.where(t >= onset, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
            step = sound.codec_context.frame_size or 1024
            for start in range(0, wave.size, step):
                frame = av.AudioFrame.from_ndarray(wave[None, start : start + step], format="flt", layout="mono")
                frame.sample_rate, frame.pts = SAMPLE_RATE, delay + start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


@dataclass
class TinyVideo:
    """One annotated video of the tiny tree: frames, split, fps of its media, frames with no face image."""

    split: str
    n_frames: int
    fps: float
    missing: tuple[int, ...] = ()  # 0-based frames without an image
    tone_at: float | None = 0.4
    audio: bool = True


TINY_VIDEOS: dict[str, TinyVideo] = {
    "v1": TinyVideo("train", 24, 30.0, missing=(2, 3, 4, 20)),
    "pair_left": TinyVideo("train", 15, 25.0, missing=(7,)),
    "pair_right": TinyVideo("train", 15, 25.0, missing=tuple(range(3, 15))),
    "w": TinyVideo("validation", 9, 7.5, missing=(0,), tone_at=0.4),
    "quiet": TinyVideo("validation", 10, 10.0, audio=False),
}


@dataclass
class TinyTree:
    """The generated layout and the models saved beside it."""

    root: Path
    sources: MediaSources
    visual_model: Path
    audio_model: Path
    videos: dict[str, TinyVideo] = field(default_factory=dict)

    def settings(self, **overrides) -> ExtractSettings:
        """Settings for the tiny models: short audio chunks, decoding in this process."""
        visual = VisualSettings(model=str(self.visual_model), batch_size=4)
        audio = AudioSettings(model=str(self.audio_model), chunk_seconds=0.2, context_seconds=0.2, batch_size=2)
        return ExtractSettings(visual=visual, audio=audio, workers=overrides.pop("workers", 0), **overrides)


def write_tiny_tree(root: Path, videos: dict[str, TinyVideo] | None = None, models: Path | None = None) -> TinyTree:
    """An official-layout tree: annotations, cropped_aligned with gaps, videos/batch1/<media>.mp4, tiny models."""
    videos = dict(TINY_VIDEOS if videos is None else videos)
    rng = np.random.default_rng(0)
    split_dirs = {"train": "Train_Set", "validation": "Validation_Set"}
    media_done = set()
    for name, spec in videos.items():
        folder = root / "EXPR_Recognition_Challenge" / split_dirs[spec.split]
        folder.mkdir(parents=True, exist_ok=True)
        labels = rng.integers(-1, 8, spec.n_frames)
        (folder / f"{name}.txt").write_text(EXPR_HEADER + "\n" + "\n".join(map(str, labels)) + "\n")
        faces = root / "cropped_aligned" / name
        for frame in range(spec.n_frames):
            if frame not in spec.missing:
                faces.mkdir(parents=True, exist_ok=True)
                draw_face(frame).save(faces / f"{frame + 1:05d}.jpg", quality=90)
        media = name.removesuffix("_left").removesuffix("_right")
        if media not in media_done:
            write_video(root / "videos" / "batch1" / f"{media}.mp4", spec.fps, spec.n_frames, spec.tone_at, spec.audio)
            media_done.add(media)
    (root / "cropped_aligned").mkdir(exist_ok=True)
    models = models or root / "models"
    visual_model, audio_model = models / "beit", models / "wavlm"
    if not visual_model.exists():
        save_tiny_beit(visual_model)
        save_tiny_wavlm(audio_model)
    sources = MediaSources(
        annotations=root / "EXPR_Recognition_Challenge",
        cropped_aligned=root / "cropped_aligned",
        videos=root / "videos",
    )
    return TinyTree(root, sources, visual_model, audio_model, videos)
