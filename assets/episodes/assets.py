"""Episodes assets: script -> scenes -> asset plan -> render plan -> episode package (+ the continuity check).

Partitioned by ``episodes`` (one partition per episode id), group ``episodes``. Thin: each asset loads the
previous stage's JSON artifact of the job, calls ``pipelines.episodes``, stores its own artifact with lineage
and reports progress. The package's ``continuity`` check records every finding on the episode
(``episode.continuity``) and sets it ``ready`` or ``blocked``.

Why the check is not Dagster-``blocking``: a failing blocking check fails the step, so the run and the Kiln
job would fail (and be retried) although the package was built; a blocked episode is a finished package whose
findings say what to fix. The block is Kiln's: the episode is ``blocked``, and nothing renders from it.

No ``from __future__ import annotations``: Dagster inspects the real parameter annotations.
"""

import io

import dagster as dg

from assets._job_context import kiln_job
from assets.episodes.support import load_inputs, stage_json, store_bytes, store_json, outputs_of, write_rows
from pipelines.episodes.asset_plan import AssetPlan, build_asset_plan
from pipelines.episodes.continuity import Finding, check_continuity, passes
from pipelines.episodes.package import EpisodeBuild, build_package_zip
from pipelines.episodes.product import PACKAGE_KIND, PARTITIONS
from pipelines.episodes.render_plan import RenderPlan, build_render_plan, format_money
from pipelines.episodes.scenes import SceneRow, build_scene_rows
from pipelines.episodes.script import Script, script_markdown, write_offline_script
from pipelines.episodes.text import md
from resources.dagster_resources import DatabaseResource
from resources.objectstore import ObjectStore
from warehouse import episodes as rows

episodes_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)
GROUP = "episodes"
CONTINUITY_CHECK = "continuity"
MAX_FINDINGS_SHOWN = 30


def _pins(inputs):
    return {cid: inputs.pinned[cid] for cid in inputs.cast if cid in inputs.pinned}


@dg.asset(partitions_def=episodes_partitions, group_name=GROUP, kinds={"python"})
def episode_script(context: dg.AssetExecutionContext, database: DatabaseResource,
                   object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """The story as a script (offline writer: paragraphs -> scenes, quotes -> dialogue): script.json + script.md."""
    with kiln_job(context, database, object_store, kind=PACKAGE_KIND) as job:
        inputs = load_inputs(job)
        names = [cv.name for cv in _pins(inputs).values()]
        script = write_offline_script(title=inputs.episode.title, episode_number=inputs.episode.number,
                                      story=inputs.episode.story, cast_names=names)
        stored = store_json(job, "script.json", script.model_dump(mode="json"))
        store_bytes(job, "script.md", script_markdown(script).encode("utf-8"), parents=[stored.id])
        job.progress(20)
    return dg.MaterializeResult(metadata={
        "job_id": str(job.job_id), "generator": script.generator, "scenes": len(script.scenes),
        "lines": sum(len(s.lines) for s in script.scenes)})


@dg.asset(partitions_def=episodes_partitions, group_name=GROUP, kinds={"python"}, deps=[episode_script])
def episode_scenes(context: dg.AssetExecutionContext, database: DatabaseResource,
                   object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """Scene rows (slugline, characters present with their per-scene state, dialogue, durations) -> ``scene``."""
    with kiln_job(context, database, object_store, kind=PACKAGE_KIND) as job:
        inputs = load_inputs(job)
        script = Script.model_validate(stage_json(job, "script.json"))
        scene_rows = build_scene_rows(script, _pins(inputs), inputs.series.style.default_voice)
        data = [row.model_dump(mode="json") for row in scene_rows]
        store_json(job, "scenes.json", data, parents=[outputs_of(job)["script.json"].id])
        write_rows(job, lambda s, ws, eid: rows.replace_scenes(s, ws, eid, data))
        job.progress(40)
    return dg.MaterializeResult(metadata={
        "scenes": len(scene_rows), "duration_s": round(sum(r.estimated_duration_ms for r in scene_rows) / 1000, 1)})


@dg.asset(partitions_def=episodes_partitions, group_name=GROUP, kinds={"python"}, deps=[episode_scenes])
def episode_asset_plan(context: dg.AssetExecutionContext, database: DatabaseResource,
                       object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """Per scene: background, characters, props; each reused (content hash / generation key) or to generate."""
    with kiln_job(context, database, object_store, kind=PACKAGE_KIND) as job:
        inputs = load_inputs(job)
        scene_rows = [SceneRow.model_validate(r) for r in stage_json(job, "scenes.json")]
        plan = build_asset_plan(scene_rows, _pins(inputs), inputs.series.style, library=inputs.library)
        store_json(job, "asset_plan.json", plan.model_dump(mode="json"), parents=[outputs_of(job)["scenes.json"].id])
        items = [item.model_dump(mode="json") for item in plan.items()]
        write_rows(job, lambda s, ws, eid: rows.replace_scene_assets(s, ws, eid, items))
        job.progress(60)
    return dg.MaterializeResult(metadata={
        "to_generate": plan.to_generate, "reused": plan.reused, "provider": plan.provider,
        "cost": format_money(sum(plan.cost_micros_by_provider.values()), plan.currency)})


@dg.asset(partitions_def=episodes_partitions, group_name=GROUP, kinds={"python"}, deps=[episode_asset_plan])
def episode_render_plan(context: dg.AssetExecutionContext, database: DatabaseResource,
                        object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """The timeline: shots, dialogue audio per line, subtitles (SRT), transitions, the cost estimate."""
    with kiln_job(context, database, object_store, kind=PACKAGE_KIND) as job:
        inputs = load_inputs(job)
        scene_rows = [SceneRow.model_validate(r) for r in stage_json(job, "scenes.json")]
        plan = AssetPlan.model_validate(stage_json(job, "asset_plan.json"))
        render = build_render_plan(scene_rows, plan, _pins(inputs), inputs.series.style)
        parent = outputs_of(job)["asset_plan.json"].id
        store_json(job, "render_plan.json", render.model_dump(mode="json"), parents=[parent])
        store_bytes(job, "subtitles.srt", render.subtitles_srt.encode("utf-8"), parents=[parent])
        job.progress(80)
    return dg.MaterializeResult(metadata={
        "shots": len(render.shots), "duration_s": round(render.total_ms / 1000, 1),
        "estimate": format_money(render.estimate.total_micros, render.estimate.currency)})


def _markdown(build: EpisodeBuild, size: int) -> str:
    status = "passes" if build.passes else "**fails** (the episode is blocked)"
    lines = [f"### Episode {build.episode.number}: {md(build.episode.title)}", "",
             f"{len(build.rows)} scenes · {len(build.render.shots)} shots · {build.render.total_ms / 1000:.1f} s · "
             f"estimate {format_money(build.render.estimate.total_micros, build.render.estimate.currency)} · "
             f"package {size:,} bytes · continuity {status}", "",
             "| scene | slugline | characters | lines |", "|---|---|---|---|"]
    for row in build.rows:
        lines.append(f"| {row.number} | {md(row.slugline)} | {md(', '.join(c.name for c in row.characters))} | "
                     f"{len(row.dialogue)} |")
    if build.findings:
        lines += ["", "| severity | rule | scene | finding |", "|---|---|---|---|"]
        for f in build.findings[:MAX_FINDINGS_SHOWN]:
            lines.append(f"| {f.severity} | {f.rule} | {f.scene or '-'} | {md(f.message)} |")
    return "\n".join(lines)


@dg.asset(partitions_def=episodes_partitions, group_name=GROUP, kinds={"python", "zip"}, deps=[episode_render_plan],
          check_specs=[dg.AssetCheckSpec(CONTINUITY_CHECK, asset="episode_package",
                                         description="Every finding by scene: cast, speakers, pinned traits, "
                                                     "relationships, references (blocks the render)")])
def episode_package(context: dg.AssetExecutionContext, database: DatabaseResource,
                    object_store: dg.ResourceParam[ObjectStore]) -> dg.MaterializeResult:
    """The episode package ZIP (package.json validated against the published schema, script.md, storyboard.md,
    subtitles.srt, references, manifest.json with every file's SHA-256), stored as the job's output."""
    with kiln_job(context, database, object_store, kind=PACKAGE_KIND) as job:
        inputs = load_inputs(job)
        pins = _pins(inputs)
        script = Script.model_validate(stage_json(job, "script.json"))
        scene_rows = [SceneRow.model_validate(r) for r in stage_json(job, "scenes.json")]
        plan = AssetPlan.model_validate(stage_json(job, "asset_plan.json"))
        render = RenderPlan.model_validate(stage_json(job, "render_plan.json"))
        findings: list[Finding] = check_continuity(
            script=script, rows=scene_rows, plan=plan, cast=inputs.cast, pinned=pins,
            series_characters=inputs.series_characters, relationships=inputs.relationships,
            available_images=set(inputs.image_artifacts))
        build = EpisodeBuild(episode=inputs.episode, series=inputs.series, pinned=pins,
                             relationships=tuple(sorted(inputs.relationships, key=lambda r: r.key)), script=script,
                             rows=scene_rows, plan=plan, render=render, findings=findings)
        images = {sha: job.store.get_bytes(a.storage_key) for sha, a in inputs.image_artifacts.items()}
        out = io.BytesIO()
        build_package_zip(build, images, out=out)
        data = out.getvalue()
        stages = outputs_of(job)
        package = job.store_artifact(
            kind="output", name="episode_package.zip", data=data, content_type="application/zip",
            filename=f"episode-{inputs.episode.number}-package.zip",
            parents=[stages[n].id for n in ("script.json", "scenes.json", "asset_plan.json", "render_plan.json")]
            + [a.id for a in inputs.image_artifacts.values()])
        ok = passes(findings)
        finding_rows = [f.model_dump(mode="json") for f in findings]
        recorded = write_rows(job, lambda s, ws, eid: rows.record_package(
            s, ws, eid, job.job_id, passes=ok, findings=finding_rows,
            estimate=render.estimate.model_dump(mode="json"), package_artifact_id=package.id))
        if not recorded:
            context.log.warning("episode %s moved on to a newer job; this package is kept but not current",
                                inputs.episode_id)
        job.progress(100)
    errors = [f for f in findings if f.severity == "error"]
    return dg.MaterializeResult(
        metadata={"job_id": str(job.job_id), "package_artifact_id": str(package.id), "bytes": len(data),
                  "continuity_passes": ok, "summary": dg.MetadataValue.md(_markdown(build, len(data)))},
        check_results=[dg.AssetCheckResult(
            check_name=CONTINUITY_CHECK, passed=ok, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"errors": len(errors), "warnings": len(findings) - len(errors),
                      "findings": dg.MetadataValue.json(finding_rows[:MAX_FINDINGS_SHOWN]),
                      "rules": ", ".join(sorted({f.rule for f in errors})) or "none"})])


EPISODE_ASSETS = [episode_script, episode_scenes, episode_asset_plan, episode_render_plan, episode_package]
