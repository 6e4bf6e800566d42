"""The episode package: ``package.json`` (validated against the published schema), the human files, a
manifest with the SHA-256 of every file, and a deterministic ZIP (fixed timestamps, sorted entries).

:func:`build_episode` runs the whole offline pipeline as plain functions (script → scenes → asset
plan → render plan → continuity) on the **pinned** versions only: later character edits cannot
change a package, because nothing here ever looks at a character's current version.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft202012Validator

from pipelines.episodes.asset_plan import AssetPlan, KnownAsset, build_asset_plan
from pipelines.episodes.continuity import Finding, check_continuity, passes
from pipelines.episodes.errors import PackageInvalid, ReferenceImageMismatch, describe_schema_error
from pipelines.episodes.models import CharacterVersion, EpisodeInput, Relationship, Series, sha256_hex
from pipelines.episodes.render_plan import RenderPlan, build_render_plan, format_money
from pipelines.episodes.scenes import SceneRow, build_scene_rows
from pipelines.episodes.script import Script, check_story, script_markdown, write_offline_script
from pipelines.episodes.text import md

SCHEMA_PATH = Path(__file__).parent / "schemas" / "package.schema.json"
PACKAGE_SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
_VALIDATOR = Draft202012Validator(PACKAGE_SCHEMA)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP can hold: the same bytes on every build
THUMBNAILS_PER_CARD = 3


@dataclass(frozen=True)
class EpisodeBuild:
    """Everything the pipeline produced for one episode (the assets store each part)."""

    episode: EpisodeInput
    series: Series
    pinned: Mapping[str, CharacterVersion]
    relationships: tuple[Relationship, ...]
    script: Script
    rows: list[SceneRow]
    plan: AssetPlan
    render: RenderPlan
    findings: list[Finding]

    @property
    def passes(self) -> bool:
        return passes(self.findings)


def build_episode(*, episode: EpisodeInput, series: Series, pinned: Mapping[str, CharacterVersion],
                  relationships: Iterable[Relationship] = (), series_characters: Mapping[str, CharacterVersion] = {},
                  available_images: Collection[str] = (), library: Iterable[KnownAsset] = (),
                  provider: str = "offline-card", script: Script | None = None) -> EpisodeBuild:
    """The offline pipeline end to end. ``script`` replaces the offline writer (a validated LLM script)."""
    check_story(episode.story)  # the limits hold on the LLM path too
    cast = episode.cast if episode.cast is not None else series.cast
    names = [pinned[cid].name for cid in cast if cid in pinned]
    script = script or write_offline_script(title=episode.title, episode_number=episode.number, story=episode.story,
                                            cast_names=names)
    cast_pins = {cid: pinned[cid] for cid in cast if cid in pinned}
    rows = build_scene_rows(script, cast_pins, series.style.default_voice)
    plan = build_asset_plan(rows, cast_pins, series.style, provider=provider, library=library)
    render = build_render_plan(rows, plan, cast_pins, series.style)
    rels = tuple(sorted(relationships, key=lambda r: r.key))
    findings = check_continuity(script=script, rows=rows, plan=plan, cast=cast, pinned=cast_pins,
                                series_characters=series_characters, relationships=rels,
                                available_images=available_images)
    return EpisodeBuild(episode=episode, series=series, pinned=cast_pins, relationships=rels, script=script,
                        rows=rows, plan=plan, render=render, findings=findings)


def package_document(build: EpisodeBuild, files: list[str]) -> dict[str, Any]:
    characters = []
    for cv in sorted(build.pinned.values(), key=lambda c: c.character_id):
        data = cv.model_dump(mode="json", exclude={"references"})
        data["digest"] = cv.digest
        data["references"] = [ref.model_dump(mode="json") | {"file": ref.filename}
                              for ref in cv.references_by_priority()]
        characters.append(data)
    return {
        "schema_version": 1,
        "kind": "kiln.episode_package",
        "episode": {"number": build.episode.number, "title": build.episode.title, "series_title": build.series.title},
        "generator": {"script": build.script.generator, "offline": build.script.offline},
        "style": build.series.style.model_dump(mode="json"),
        "characters": characters,
        "relationships": [r.model_dump(mode="json") for r in build.relationships],
        "script": build.script.model_dump(mode="json"),
        "scenes": [row.model_dump(mode="json") for row in build.rows],
        "asset_plan": build.plan.model_dump(mode="json"),
        "render_plan": build.render.model_dump(mode="json"),
        "continuity": {"passes": build.passes, "findings": [f.model_dump(mode="json") for f in build.findings]},
        "files": files,
    }


def validate_package(document: Any) -> None:
    errors = sorted(_VALIDATOR.iter_errors(document), key=lambda e: (e.json_path, str(e.validator)))
    if errors:
        raise PackageInvalid(describe_schema_error(errors[0]), json_path=errors[0].json_path)


def storyboard_markdown(build: EpisodeBuild, included: Collection[str] = ()) -> str:
    """A card per scene; thumbnails link to ``references/…`` only when that file is in the package."""
    items = {s.number: s.items for s in build.plan.scenes}
    out = [f"# Storyboard — episode {build.episode.number}: {md(build.episode.title)}", "",
           f"Series: {md(build.series.title)} · style: {md(build.series.style.visual_style)} · "
           f"aspect {build.series.style.aspect_ratio} · {len(build.rows)} scenes · "
           f"{build.render.total_ms / 1000:.1f} s · estimate "
           f"{format_money(build.render.estimate.total_micros, build.render.estimate.currency)}", ""]
    if not build.passes:
        out += ["> **Continuity fails**: see the findings in package.json before rendering.", ""]
    for row in build.rows:
        out += [f"## Scene {row.number} — {md(row.slugline)}", "",
                f"_{row.estimated_duration_ms / 1000:.1f} s · {md(row.location)} · {row.time_of_day.lower()}_", ""]
        for present in row.characters:
            cv = build.pinned[present.character_id]
            outfit = present.state.outfit or "default outfit"
            out.append(f"- **{md(cv.name)}** (v{cv.version}) — {md(outfit)}")
            thumbs = cv.references_by_priority()[:THUMBNAILS_PER_CARD]
            if not thumbs:
                out.append("  _no reference image (see continuity)_")
            for ref in thumbs:  # say so when an image was not shipped, rather than leave a dead link
                out.append(f"  ![{md(cv.name)} {ref.view}]({ref.filename})" if ref.filename in included
                           else f"  _{ref.view} reference {ref.sha256[:12]}… not included in this package_")
        if row.action:
            out += ["", md(row.action)]
        if row.dialogue:
            out.append("")
            out += [f"- **{md(d.speaker or '(unattributed)')}**: “{md(d.text)}”" for d in row.dialogue]
        out += ["", "| asset | action | how |", "|---|---|---|"]
        for item in items.get(row.number, ()):
            how = (f"reuse by {item.reuse_by.replace('_', ' ')}" if item.action == "reuse" and item.reuse_by
                   else f"{item.provider}, {len(item.references)} reference(s), "
                        f"{format_money(item.cost_micros, build.plan.currency)}")
            out.append(f"| {item.kind}: {md(item.description)} | {item.action} | {md(how)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def package_files(build: EpisodeBuild, images: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """Every file of the package by path, ``manifest.json`` last (it lists the others with their SHA-256).

    ``images``: reference image bytes by SHA-256, copied under ``references/``; bytes that do not hash
    to their key are refused (a package never carries an image other than the one pinned).
    """
    files: dict[str, bytes] = {}
    for cv in build.pinned.values():
        for ref in cv.references:
            data = (images or {}).get(ref.sha256)
            if data is None:
                continue
            if sha256_hex(data) != ref.sha256:
                raise ReferenceImageMismatch(f"The bytes given for {cv.name}'s {ref.view} view do not match the "
                                             f"pinned SHA-256.")
            files[ref.filename] = data
    files["script.md"] = script_markdown(build.script).encode("utf-8")
    files["script.json"] = (build.script.model_dump_json(indent=2) + "\n").encode("utf-8")
    files["storyboard.md"] = storyboard_markdown(build, included=set(files)).encode("utf-8")
    files["subtitles.srt"] = build.render.subtitles_srt.encode("utf-8")
    names = sorted([*files, "package.json"])
    document = package_document(build, names + ["manifest.json"])
    validate_package(document)
    files["package.json"] = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    manifest = {"algorithm": "sha256",
                "files": [{"path": n, "sha256": sha256_hex(files[n]), "bytes": len(files[n])} for n in names]}
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    return files


def build_package_zip(build: EpisodeBuild, images: Mapping[str, bytes] | None = None,
                      out: IO[bytes] | None = None) -> bytes | None:
    """The package as a deterministic ZIP: returned as bytes, or written to ``out`` (then ``None``)."""
    target = out if out is not None else io.BytesIO()
    files = package_files(build, images)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever the building machine is
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return target.getvalue() if out is None else None
