"""The service's session store: bounded, and idle sessions are dropped (a real clock would make this slow)."""

from __future__ import annotations

import pytest
import torch

from exprfusion.inference.streaming import StreamingPredictor
from exprfusion.model.artifact import InferenceSettings
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.service.sessions import SessionStore, TooManySessions, UnknownSession


def test_the_bound_holds_until_an_idle_session_expires():
    now = [0.0]
    model = FusionTransformer(FusionConfig.paper(visual_dim=4, audio_dim=4, d_model=8, n_layers=1, n_heads=2))
    inference = InferenceSettings(window=4, stride=2, median_kernel=1)
    store = SessionStore(
        lambda: StreamingPredictor(model, inference), max_sessions=2, idle_seconds=60, clock=lambda: now[0]
    )
    first, _ = store.open()
    now[0] = 30.0
    second, _ = store.open()
    with pytest.raises(TooManySessions, match="2 streaming sessions"):
        store.open()
    now[0] = 61.0  # the first has been idle for 61 s, the second for 31 s
    store.append(second, visual=torch.zeros(3, 4), audio=torch.zeros(3, 4), face_mask=[True] * 3, audio_mask=[True] * 3)
    third, _ = store.open()  # the first's slot was freed
    assert len(store) == 2
    with pytest.raises(UnknownSession):
        store.append(first, visual=torch.zeros(1, 4), audio=torch.zeros(1, 4), face_mask=[True], audio_mask=[True])
    now[0] = 100.0  # the second was used at 61 s: still open
    store.close(second)
    with pytest.raises(UnknownSession):
        store.close(second)
    assert len(store) == 1 and third


def test_released_labels_come_with_the_masks_of_their_own_frames():
    """Monitoring's view of a stream: every frame once, in order, its masks paired with its final label."""
    torch.manual_seed(0)
    model = FusionTransformer(FusionConfig.paper(visual_dim=4, audio_dim=4, d_model=8, n_layers=1, n_heads=2)).eval()
    inference = InferenceSettings(window=4, stride=2, median_kernel=3)
    seen = []

    def on_release(session, update):
        face, audio = session.release_masks(update.labels.size)
        seen.append((update.first, update.labels.copy(), face, audio))

    store = SessionStore(lambda: StreamingPredictor(model, inference), 1, 60, on_release=on_release)
    key, _ = store.open()
    n = 23
    face = [i % 3 != 0 for i in range(n)]  # frame i has no face when i is a multiple of 3
    audio = [i % 5 != 0 for i in range(n)]
    features = torch.randn(n, 4)
    for start in range(0, n, 7):
        stop = min(n, start + 7)
        store.append(
            key,
            visual=features[start:stop],
            audio=features[start:stop],
            face_mask=face[start:stop],
            audio_mask=audio[start:stop],
        )
    store.close(key)
    firsts = [first for first, labels, _, _ in seen if labels.size]
    released_face = [bool(x) for _, _, f, _ in seen for x in f]
    released_audio = [bool(x) for _, _, _, a in seen for x in a]
    assert sum(labels.size for _, labels, _, _ in seen) == n
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert released_face == face and released_audio == audio
