"""Video test material: an mp4 of a drawn face with a tone, and a tiny artefact whose extractor is the tiny models."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from extract.media_factories import SAMPLE_RATE
from PIL import Image, ImageDraw, ImageFilter

from exprfusion.model.artifact import InferenceSettings, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.sources.extract.build import extractor_record
from exprfusion.sources.extract.settings import AudioSettings, ExtractSettings, VisualSettings

FPS = 10
N_FRAMES = 30
BLANK_FRAMES = (5, 6, 7, 20)  # 0-based frames where the face is blanked out
FRAME_SIZE = (160, 120)  # width, height
FACE_AT, FACE_SIZE = (40, 10), 90  # where the face is drawn (left, top) and its side
TINY_INFERENCE = InferenceSettings(window=8, stride=2, median_kernel=3)


def draw_face(size: int, frame: int = 0) -> Image.Image:
    """A grey-level frontal face (head, brows, eyes, nose, mouth) that OpenCV's Haar cascade finds."""
    image = Image.new("L", (size, size), 40)
    draw = ImageDraw.Draw(image)
    s = size / 100
    draw.ellipse((20 * s, 8 * s, 80 * s, 96 * s), fill=190)
    draw.rectangle((26 * s, 30 * s, 45 * s, 34 * s), fill=60)
    draw.rectangle((55 * s, 30 * s, 74 * s, 34 * s), fill=60)
    draw.ellipse((29 * s, 38 * s, 43 * s, 46 * s), fill=50)
    draw.ellipse((57 * s, 38 * s, 71 * s, 46 * s), fill=50)
    draw.polygon([(50 * s, 44 * s), (44 * s, 64 * s), (56 * s, 64 * s)], fill=165)
    opening = 4 + frame % 5  # the mouth moves, so the face features change over time
    draw.ellipse((36 * s, (72 - opening / 2) * s, 64 * s, (76 + opening / 2) * s), fill=80)
    return image.filter(ImageFilter.GaussianBlur(2 * s))


def face_frame(frame: int, blank: bool) -> np.ndarray:
    """One RGB frame: the face on a dark background, or the background alone."""
    canvas = Image.new("L", FRAME_SIZE, 40)
    if not blank:
        canvas.paste(draw_face(FACE_SIZE, frame), FACE_AT)
    return np.asarray(canvas.convert("RGB"))


def write_face_video(path: Path, n_frames: int = N_FRAMES, fps: int = FPS, blank=BLANK_FRAMES) -> Path:
    """An H.264 mp4 of the drawn face (blanked on the ``blank`` frames) with an AAC 440 Hz tone from 1 s on."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = *FRAME_SIZE, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for i in range(n_frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(face_frame(i, i in blank), format="rgb24")))
        container.mux(video.encode())
        t = np.arange(round(n_frames / fps * SAMPLE_RATE)) / SAMPLE_RATE
        wave = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
        step = sound.codec_context.frame_size or 1024
        for start in range(0, wave.size, step):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + step], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
    return path


def tiny_extract_settings(models: Path) -> ExtractSettings:
    """Extraction settings of the tiny models (short audio chunks)."""
    return ExtractSettings(
        visual=VisualSettings(model=str(models / "beit"), batch_size=4),
        audio=AudioSettings(model=str(models / "wavlm"), chunk_seconds=0.2, context_seconds=0.2, batch_size=2),
        workers=0,
    )


def save_tiny_artefact(path: Path, models: Path, *, visual_dim: int = 32, extractor: bool = True) -> Path:
    """A random 16-wide fusion model over the tiny models' features, its metadata naming their extractor."""
    torch.manual_seed(0)
    config = FusionConfig.paper(visual_dim=visual_dim, audio_dim=16, d_model=16, n_layers=1, n_heads=2)
    model = FusionTransformer(config)
    metadata = {"extractor": extractor_record(tiny_extract_settings(models), None)} if extractor else {}
    return save_model(path, model, TINY_INFERENCE, metadata)


def write_truncated_video(path: Path, n_frames: int = 60, fps: int = FPS) -> tuple[Path, Path]:
    """A faststart mp4 of the face (its sample table, declaring ``n_frames`` frames, ahead of the data) with a tone,
    and a copy cut after half its bytes: ``(whole, truncated)``. A noisy band keeps every frame's packet large, so
    the cut falls among the frames."""
    whole = path.with_name(f"whole-{path.name}")
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = *FRAME_SIZE, "yuv420p"
        sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for i in range(n_frames):
            picture = face_frame(i, False).copy()
            picture[:, :24] = rng.integers(0, 256, (FRAME_SIZE[1], 24, 3))
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode())
        t = np.arange(round(n_frames / fps * SAMPLE_RATE)) / SAMPLE_RATE
        wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        step = sound.codec_context.frame_size or 1024
        for start in range(0, wave.size, step):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + step], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return whole, path
