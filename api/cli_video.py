"""``kiln video ...``: upload a video through the HTTP API and read its notes.

The API URL and token come from ``KILN_API_URL`` / ``KILN_TOKEN``, else from ``.kiln/local-credentials.json``
(written by ``kiln run``). Uploads stream the file from disk (httpx reads it in chunks), with a progress bar.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import httpx
import typer

from resources.settings import PROJECT_ROOT, Settings

video = typer.Typer(help="Video notes: upload videos, follow them, print their notes.", no_args_is_help=True)

SAMPLE_VIDEO = PROJECT_ROOT / "pipelines" / "video_notes" / "samples" / "example.mp4"
TERMINAL = ("succeeded", "failed", "canceled")
_OUTPUT_FIELDS = ("summary_url", "transcript_json_url", "srt_url", "vtt_url", "txt_url", "highlights_url")


class CliError(Exception):
    pass


def api_credentials() -> tuple[str, str]:
    """(API URL, token) from the environment, else from the credentials ``kiln run`` keeps."""
    url, token = os.environ.get("KILN_API_URL"), os.environ.get("KILN_TOKEN")
    creds_path = Settings().home / "local-credentials.json"
    if (not url or not token) and creds_path.is_file():
        creds = json.loads(creds_path.read_text())
        token = token or creds.get("token")
        url = url or creds.get("api_url") or "http://127.0.0.1:8000"
    if not token:
        raise CliError("No API token: set KILN_TOKEN (and KILN_API_URL), or start `kiln run` once.")
    return (url or "http://127.0.0.1:8000").rstrip("/"), token


def make_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60.0))


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = f"{problem.get('code')}: {problem.get('detail')}"
        except ValueError:
            detail = response.text[:200]
        raise CliError(f"HTTP {response.status_code} {detail}")
    return response.json()


class _ProgressReader:
    """A file object that reports how many bytes were read (httpx streams the multipart body from it)."""

    def __init__(self, fh: BinaryIO, report: Callable[[int], None]) -> None:
        self._fh, self._report = fh, report

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._report(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def upload(client: httpx.Client, path: Path, *, exact_clips: bool = False, language: str | None = None,
           show_progress: bool = True) -> dict[str, Any]:
    fields = {"exact_clips": "true" if exact_clips else "false", **({"language": language} if language else {})}
    size = path.stat().st_size
    with open(path, "rb") as fh, open(os.devnull, "w") as devnull, typer.progressbar(
            length=size, label="upload", show_eta=True, file=None if show_progress else devnull) as bar:
        reader = _ProgressReader(fh, bar.update)
        response = client.post("/v1/videos", files={"file": (path.name, reader, "application/octet-stream")},
                               data=fields)
    return _check(response)


def wait_until_done(client: httpx.Client, video_id: str, *, poll_s: float = 1.0, timeout_s: float = 3600) -> dict:
    deadline = time.monotonic() + timeout_s
    shown = 0
    with typer.progressbar(length=100, label="processing") as bar:
        while True:
            info = _check(client.get(f"/v1/videos/{video_id}"))
            bar.update(max(0, info["progress"] - shown))
            shown = max(shown, info["progress"])
            if info["status"] in TERMINAL:
                return info
            if time.monotonic() > deadline:
                raise CliError(f"still {info['status']} after {timeout_s:.0f} s")
            time.sleep(poll_s)


def print_outputs(notes: dict[str, Any]) -> None:
    typer.echo(f"notes:       GET /v1/videos/{notes['video_id']}/notes")
    for field in _OUTPUT_FIELDS:
        if notes.get(field):
            typer.echo(f"{field.removesuffix('_url'):<12} {notes[field]}")
    for h in notes["highlights"]:
        typer.echo(f"highlight {h['rank']} [{h['start']:.1f}-{h['end']:.1f} s] {h['title']}")
        for kind in ("screenshot_url", "clip_url"):
            if h.get(kind):
                typer.echo(f"  {kind.removesuffix('_url'):<10} {h[kind]}")


@video.command("add")
def add_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Video or audio file")],
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job and print every output's link")] = False,
    exact_clips: Annotated[bool, typer.Option("--exact-clips", help="Re-encode clips for exact cuts")] = False,
    language: Annotated[str | None, typer.Option(help="Language code, skips detection (e.g. en)")] = None,
) -> None:
    """Upload FILE; with --wait, show progress until the notes are ready and print where each output is."""
    try:
        url, token = api_credentials()
        with make_client(url, token) as client:
            created = upload(client, file, exact_clips=exact_clips, language=language)
            typer.echo(f"video {created['id']}  job {created['job_id']}  status {created['status']}")
            if not wait:
                return
            info = wait_until_done(client, created["id"])
            if info["status"] != "succeeded":
                raise CliError(f"job {info['status']}: {info.get('error_code')}: {info.get('error_message')}")
            print_outputs(_check(client.get(f"/v1/videos/{created['id']}/notes")))
    except (CliError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@video.command("notes")
def notes_command(video_id: Annotated[str, typer.Argument(help="The video id")]) -> None:
    """Print the video's Summary.md."""
    try:
        url, token = api_credentials()
        with make_client(url, token) as client:
            typer.echo(_check(client.get(f"/v1/videos/{video_id}/notes"))["summary_markdown"], nl=False)
    except (CliError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def submit_sample_once(home: Path, api_url: str, token: str) -> str | None:
    """Upload the bundled sample on the first ``kiln run`` (recorded in ``.kiln/state.json``); its video id."""
    state_path = home / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    if state.get("sample_video_id") or not SAMPLE_VIDEO.is_file():
        return None
    with make_client(api_url, token) as client:
        created = upload(client, SAMPLE_VIDEO, show_progress=False)
    state["sample_video_id"] = created["id"]
    tmp = state_path.with_name(state_path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_path)
    return created["id"]
