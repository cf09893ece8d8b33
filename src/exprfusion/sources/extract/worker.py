"""One process's extraction loop: both models, face batches streamed from worker processes, media decoded ahead.

The same loop runs in the single process and in each Ray worker; it yields results and writes nothing, so one
caller (the driver) owns the cache and the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from exprfusion.sources.extract.audio import SpeechEncoder
from exprfusion.sources.extract.cache import AudioEntry, FacesEntry
from exprfusion.sources.extract.checkpoints import compute_device, compute_dtype
from exprfusion.sources.extract.face_video import DETECT, video_faces
from exprfusion.sources.extract.faces import FaceDetector, load_detector
from exprfusion.sources.extract.media import DecodedMedia, MediaError, decode_media
from exprfusion.sources.extract.plan import FRAME_TOLERANCE, MediaJob, VideoJob
from exprfusion.sources.extract.settings import ExtractSettings
from exprfusion.sources.extract.visual import FaceEncoder, FaceVideo


@dataclass(frozen=True)
class FacesDone:
    """A video's face features."""

    video: str
    entry: FacesEntry


@dataclass(frozen=True)
class AudioDone:
    """A media's audio features."""

    media: str
    entry: AudioEntry


@dataclass(frozen=True)
class MediaFailed:
    """A media file that could not be decoded; its videos are left out."""

    media: str
    message: str


Result = FacesDone | AudioDone | MediaFailed


class MediaExtractor:
    """The face and speech models of one process, loaded on first use."""

    def __init__(self, settings: ExtractSettings, record: dict[str, Any]) -> None:
        self.settings = settings
        self.record = record
        self.device = compute_device(settings.device)
        self.dtype = compute_dtype(settings.precision, self.device)
        self._faces: FaceEncoder | None = None
        self._speech: SpeechEncoder | None = None
        self._detector: FaceDetector | None = None

    @property
    def faces(self) -> FaceEncoder:
        """The image model (loaded on first use)."""
        if self._faces is None:
            self._faces = FaceEncoder(
                self.settings.visual, self.record["visual"], self.device, self.dtype, self.settings.compile
            )
        return self._faces

    @property
    def speech(self) -> SpeechEncoder:
        """The speech model (loaded on first use)."""
        if self._speech is None:
            self._speech = SpeechEncoder(
                self.settings.audio, self.record["audio"], self.device, self.dtype, self.settings.compile
            )
        return self._speech

    def detected_faces(self, job: MediaJob, video: VideoJob) -> FacesEntry:
        """A video's faces found in its media by the detector (``faces: detect``), one row per annotated frame:
        frames past the last decoded one have no face."""
        if self._detector is None:
            self._detector = load_detector(self.settings.face_detector)
        found = video_faces(
            job.path, self.faces, self._detector, batch_size=self.settings.visual.batch_size, max_frames=video.n_frames
        )
        n, decoded = video.n_frames, found.face_mask.size
        features = np.zeros((n, found.features.shape[1]), dtype=np.float16)
        face_mask = np.zeros(n, dtype=bool)
        features[:decoded], face_mask[:decoded] = found.features[:n], found.face_mask[:n]
        return FacesEntry(features, face_mask, ())

    def audio_entry(self, media: DecodedMedia) -> AudioEntry:
        """The speech model's rows over a decoded media, from its first frame to its last."""
        speech = self.speech
        if media.waveform is None or media.waveform.size == 0:
            features, has_audio = np.zeros((0, speech.dim), dtype=np.float16), False
        else:
            features, has_audio = speech.encode(media.waveform, speech.rows_for(float(media.frame_times[-1]))), True
        return AudioEntry(features, has_audio, speech.rate, media.fps, media.frame_times)

    def run(self, jobs: Sequence[MediaJob], faces_todo: set[str], audio_todo: set[str]) -> Iterator[Result]:
        """Extract the listed videos' faces and media's audio, job by job, in order.

        Face images stream through ``settings.workers`` decoding processes (with ``faces: detect``, each video's
        frames are decoded, searched and cropped here instead); up to ``workers + 1`` media files are decoded ahead by
        threads while the models run.
        """
        workers, detect = self.settings.worker_count(), self.settings.faces == DETECT
        face_videos = [FaceVideo(v.name, v.images) for job in jobs for v in job.videos if v.name in faces_todo]
        faces = self.faces.encode_videos(face_videos, workers) if face_videos and not detect else iter(())
        audio_jobs = [job for job in jobs if job.media in audio_todo]
        sample_rate = self.speech.sample_rate if audio_jobs else 0
        ahead = workers + 1
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoding: dict[str, Future[DecodedMedia]] = {}
            next_audio = 0
            for job in jobs:
                while next_audio < len(audio_jobs) and len(decoding) < ahead:
                    upcoming = audio_jobs[next_audio]
                    decoding[upcoming.media] = pool.submit(
                        decode_media, upcoming.path, upcoming.n_frames, sample_rate, frame_tolerance=FRAME_TOLERANCE
                    )
                    next_audio += 1
                for video in job.videos:
                    if video.name in faces_todo and detect:
                        try:
                            entry = self.detected_faces(job, video)
                        except MediaError as error:
                            decoding.pop(job.media, None)
                            yield MediaFailed(job.media, str(error))
                            break
                        yield FacesDone(video.name, entry)
                    elif video.name in faces_todo:
                        done = next(faces)
                        yield FacesDone(done.name, FacesEntry(done.features, done.face_mask, done.failures))
                if job.media in decoding:
                    try:
                        media = decoding.pop(job.media).result()
                    except MediaError as error:
                        yield MediaFailed(job.media, str(error))
                        continue
                    yield AudioDone(job.media, self.audio_entry(media))
