"""Shared fixtures and helpers of the video notes tests (imported explicitly by tests/test_video_*.py)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.support.corpus import PUBLIC as CORPUS  # ../shared/corpus/public beside the checkout, or KILN_CORPUS_DIR


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    assert (CORPUS / "expected.json").is_file(), f"test corpus missing at {CORPUS}"
    return CORPUS


@pytest.fixture(scope="session")
def expected(corpus_dir: Path) -> dict[str, Any]:
    return json.loads((corpus_dir / "expected.json").read_text())["items"]  # same data as tests.support.corpus.expected()


def make_scene_video(path: Path, colours: list[tuple[int, int, int]], seconds_each: float = 2.0, fps: int = 10) -> Path:
    """An H.264 MP4 of solid-colour scenes (keyframe every second) with a 440 Hz tone: cuts at known times."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.options = {"g": str(fps), "preset": "ultrafast"}
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        frame_index = 0
        for colour in colours:
            for _ in range(int(seconds_each * fps)):
                image = np.zeros((120, 160, 3), dtype=np.uint8)
                image[:, :] = colour
                image[100:110, (frame_index * 3) % 150 : (frame_index * 3) % 150 + 10] = 255  # a moving mark
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = frame_index, Fraction(1, fps)
                out.mux(video.encode(frame))
                frame_index += 1
        out.mux(video.encode(None))
        total = len(colours) * seconds_each
        t = np.arange(int(total * 16000)) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            chunk = tone[start : start + 1024].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


class ChatEmulator:
    """A faithful little OpenAI-compatible server: POST /v1/chat/completions over real HTTP on 127.0.0.1.

    ``fail_first`` answers of (status, body) are served before the real ones (to prove retries). The "model"
    reads the ``[mm:ss]`` lines of the user message and answers JSON citing them, plus one invented timestamp.
    """

    def __init__(self, fail_first: list[int] | None = None) -> None:
        self.fail_first = list(fail_first or [])
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                # Recorded before the answer goes out: once the client has the bytes the test may read this list.
                emulator.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    self._send(401, {"error": {"message": "missing key", "type": "invalid_request_error"}})
                    return
                if not payload.get("model") or not isinstance(payload.get("messages"), list):
                    self._send(400, {"error": {"message": "model and messages required", "type": "invalid_request_error"}})
                    return
                emulator.requests.append(payload)
                if emulator.fail_first:
                    status = emulator.fail_first.pop(0)
                    self._send(status, {"error": {"message": "slow down", "type": "rate_limit_error"}},
                               {"Retry-After": "0"} if status == 429 else None)
                    return
                user = next(m["content"] for m in payload["messages"] if m["role"] == "user")
                lines = re.findall(r"^\[((?:\d+:)?\d{2}:\d{2})\] (.+)$", user, flags=re.M)
                answer = {
                    "title": "Emulated notes",
                    "overview": "An overview written by the emulator.",
                    "key_points": [{"text": text[:60], "timestamps": [stamp]} for stamp, text in lines[:3]]
                    + [{"text": "An invented point", "timestamps": ["59:59"]}],
                    "chapters": [{"start": lines[0][0], "title": "Start"}] if lines else [],
                }
                self._send(200, {
                    "id": "chatcmpl-emulated", "object": "chat.completion", "created": 0, "model": payload["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": json.dumps(answer)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ChatEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_emulator() -> Iterator[ChatEmulator]:
    with ChatEmulator(fail_first=[429, 503]) as emulator:
        yield emulator
