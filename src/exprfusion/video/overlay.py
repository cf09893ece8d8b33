"""An overlay video: the input video with the face box, the current expression and the time on each frame, a timeline
and a legend.

The class name (at least 24 px high, 5 % of a taller picture, edged in black) is drawn at the top left in its class's
colour, the time (``m:ss.s``) at the bottom right. Beneath the picture a strip shows the whole video's labels, one
colour per class, with a 3-px cursor at the current frame, and a legend names each colour. The output has the
input's frame count and frame rate (H.264, no audio). Drawn with Pillow (its bundled scalable font), encoded with
PyAV.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
LABEL_PX = 24  # the smallest font size of the label and the time: readable on a phone
LEGEND_PX = 16  # font size of the legend's class names
CURSOR_PX = 3  # width of the timeline's cursor (black, edged in white)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font: no file to find


def label_size(height: int) -> int:
    """Font size of the label and the time: :data:`LABEL_PX`, or 5 % of a taller picture's height."""
    return max(LABEL_PX, round(0.05 * height))


def _legend_rows(width: int) -> list[list[int]]:
    """The classes of each legend row: as many swatch-and-name entries as fit the width."""
    font, rows, used = _font(LEGEND_PX), [[]], 4
    for label, name in enumerate(CLASS_NAMES):
        entry = LEGEND_PX + 4 + int(font.getlength(name)) + 12
        if rows[-1] and used + entry > width:
            rows.append([])
            used = 4
        rows[-1].append(label)
        used += entry
    return rows


def panel_height(width: int) -> int:
    """Pixels beneath the picture: the timeline strip and the legend's rows (even, for yuv420p)."""
    height = STRIP_HEIGHT + len(_legend_rows(width)) * (LEGEND_PX + 6) + 4
    return height + height % 2


def legend(width: int) -> np.ndarray:
    """An RGB ``[panel_height - STRIP_HEIGHT, width, 3]`` key: each class's colour swatch and name."""
    image = Image.new("RGB", (width, panel_height(width) - STRIP_HEIGHT), (20, 20, 20))
    draw, font = ImageDraw.Draw(image), _font(LEGEND_PX)
    for row, labels in enumerate(_legend_rows(width)):
        x, y = 4, 4 + row * (LEGEND_PX + 6)
        for label in labels:
            draw.rectangle((x, y + 2, x + LEGEND_PX - 2, y + LEGEND_PX), fill=CLASS_COLOURS[label])
            draw.text((x + LEGEND_PX + 4, y), CLASS_NAMES[label], fill=(235, 235, 235), font=font)
            x += LEGEND_PX + 4 + int(font.getlength(CLASS_NAMES[label])) + 12
    return np.asarray(image)


def timeline_strip(labels: np.ndarray, width: int, height: int = STRIP_HEIGHT) -> np.ndarray:
    """An RGB ``[height, width, 3]`` strip: column ``x`` shows the class of the frame at ``x / width`` of the video."""
    labels = np.asarray(labels, dtype=np.int64)
    frames = np.minimum((np.arange(width) * labels.size) // max(width, 1), labels.size - 1)
    colours = np.asarray(CLASS_COLOURS, dtype=np.uint8)[labels[frames]]  # [width, 3]
    return np.broadcast_to(colours[None], (height, width, 3)).copy()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(max(seconds, 0.0), 60.0)
    return f"{int(minutes)}:{seconds:04.1f}"


def draw_frame(picture: np.ndarray, panel: np.ndarray, prediction: VideoPrediction, index: int) -> np.ndarray:
    """One output frame: ``picture`` with the face box, class name and time of frame ``index``; beneath it the
    ``panel`` (timeline strip over legend) with the cursor at the frame."""
    label = int(prediction.labels[index])
    colour = CLASS_COLOURS[label]
    height, width = picture.shape[:2]
    canvas = Image.new("RGB", (width, height + panel.shape[0]))
    canvas.paste(Image.fromarray(picture), (0, 0))
    panel = panel.copy()
    cursor = min(width - CURSOR_PX, index * width // prediction.labels.size)
    panel[:STRIP_HEIGHT, max(cursor - 1, 0) : cursor + CURSOR_PX + 1] = 255  # a white edge, then the black cursor
    panel[:STRIP_HEIGHT, cursor : cursor + CURSOR_PX] = 0
    canvas.paste(Image.fromarray(panel), (0, height))
    draw = ImageDraw.Draw(canvas)
    box = prediction.features.boxes[index]
    if box is not None:
        thick = max(2, width // 320)
        draw.rectangle((box.x, box.y, box.x + box.width - 1, box.y + box.height - 1), outline=colour, width=thick)
    size = label_size(height)
    font, edge = _font(size), max(2, size // 12)
    text = CLASS_NAMES[label] + ("" if box is not None else " (no face)")
    draw.text((6, 4), text, fill=colour, font=font, stroke_width=edge, stroke_fill=(0, 0, 0))
    clock = _clock(float(prediction.features.frame_times[index]))
    draw.text((width - 6, height - 4), clock, fill=(255, 255, 255), font=font, anchor="rb", stroke_width=edge,
              stroke_fill=(0, 0, 0))  # fmt: skip
    return np.asarray(canvas)


def write_overlay(video: str | os.PathLike[str], prediction: VideoPrediction, out: str | os.PathLike[str]) -> Path:
    """Write the overlay video of ``prediction`` over the frames of ``video`` to ``out`` (mp4), atomically."""
    import av

    out = Path(out)
    labels = prediction.labels
    with av.open(str(video)) as source, atomic_path(out) as temporary:
        stream = source.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        out_width, out_height = width + width % 2, height + height % 2 + panel_height(width)
        rate = stream.average_rate or Fraction(prediction.features.fps).limit_denominator(1001)
        panel = np.concatenate([timeline_strip(labels, width), legend(width)])
        written = 0
        with av.open(str(temporary), "w", format="mp4") as sink:
            encoded = sink.add_stream("libx264", rate=rate)
            encoded.width, encoded.height, encoded.pix_fmt = out_width, out_height, "yuv420p"
            for index, frame in enumerate(source.decode(stream)):
                if index >= labels.size:
                    break
                picture = draw_frame(frame.to_ndarray(format="rgb24"), panel, prediction, index)
                padded = np.zeros((out_height, out_width, 3), dtype=np.uint8)
                padded[: picture.shape[0], : picture.shape[1]] = picture
                sink.mux(encoded.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")))
                written += 1
            sink.mux(encoded.encode())
        if written != labels.size:
            raise InputError(f"{video}: decoded {written} frames for {labels.size} labels; the overlay was not written")
    return out
