"""An overlay video: the input video with the face box and the current expression on each frame, and a timeline.

Beneath the picture a strip shows the whole video's labels, one colour per class, with a cursor at the current
frame; the output has the input's frame count and frame rate (H.264, no audio). Drawn with Pillow, encoded with
PyAV.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from exprfusion.core.atomic import atomic_path
from exprfusion.core.errors import InputError
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.video.prediction import VideoPrediction

# One colour per class, in CLASS_NAMES order (Neutral grey, Anger red, Disgust green, Fear purple, Happiness yellow,
# Sadness blue, Surprise orange, Other white-ish).
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (150, 150, 150),
    (220, 40, 40),
    (60, 170, 60),
    (140, 70, 200),
    (240, 210, 40),
    (50, 110, 230),
    (250, 140, 30),
    (230, 230, 220),
)
STRIP_HEIGHT = 24  # pixels of the class timeline beneath the picture (even, for yuv420p)


def timeline_strip(labels: np.ndarray, width: int, height: int = STRIP_HEIGHT) -> np.ndarray:
    """An RGB ``[height, width, 3]`` strip: column ``x`` shows the class of the frame at ``x / width`` of the video."""
    labels = np.asarray(labels, dtype=np.int64)
    frames = np.minimum((np.arange(width) * labels.size) // max(width, 1), labels.size - 1)
    colours = np.asarray(CLASS_COLOURS, dtype=np.uint8)[labels[frames]]  # [width, 3]
    return np.broadcast_to(colours[None], (height, width, 3)).copy()


def draw_frame(picture: np.ndarray, strip: np.ndarray, prediction: VideoPrediction, index: int) -> np.ndarray:
    """One output frame: ``picture`` with the face box and class name of frame ``index``, the strip beneath."""
    label = int(prediction.labels[index])
    colour = CLASS_COLOURS[label]
    height, width = picture.shape[:2]
    canvas = Image.new("RGB", (width, height + strip.shape[0]))
    canvas.paste(Image.fromarray(picture), (0, 0))
    strip = strip.copy()
    cursor = min(width - 1, index * width // prediction.labels.size)
    strip[:, cursor] = 0  # the current frame's position on the timeline
    canvas.paste(Image.fromarray(strip), (0, height))
    draw = ImageDraw.Draw(canvas)
    box = prediction.features.boxes[index]
    if box is not None:
        draw.rectangle((box.x, box.y, box.x + box.width - 1, box.y + box.height - 1), outline=colour, width=2)
    text = CLASS_NAMES[label] + ("" if box is not None else " (no face)")
    draw.rectangle((0, 0, 8 + 7 * len(text), 14), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=colour)
    return np.asarray(canvas)


def write_overlay(video: str | os.PathLike[str], prediction: VideoPrediction, out: str | os.PathLike[str]) -> Path:
    """Write the overlay video of ``prediction`` over the frames of ``video`` to ``out`` (mp4), atomically."""
    import av

    out = Path(out)
    labels = prediction.labels
    with av.open(str(video)) as source, atomic_path(out) as temporary:
        stream = source.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        out_width, out_height = width + width % 2, height + height % 2 + STRIP_HEIGHT
        rate = stream.average_rate or Fraction(prediction.features.fps).limit_denominator(1001)
        strip = timeline_strip(labels, width)
        written = 0
        with av.open(str(temporary), "w", format="mp4") as sink:
            encoded = sink.add_stream("libx264", rate=rate)
            encoded.width, encoded.height, encoded.pix_fmt = out_width, out_height, "yuv420p"
            for index, frame in enumerate(source.decode(stream)):
                if index >= labels.size:
                    break
                picture = draw_frame(frame.to_ndarray(format="rgb24"), strip, prediction, index)
                padded = np.zeros((out_height, out_width, 3), dtype=np.uint8)
                padded[: picture.shape[0], : picture.shape[1]] = picture
                sink.mux(encoded.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
                written += 1
            sink.mux(encoded.encode())
        if written != labels.size:
            raise InputError(f"{video}: decoded {written} frames for {labels.size} labels; the overlay was not written")
    return out
