"""Property tests: any story within the limits gives a script, deterministically, and a valid package."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.episodes.errors import StoryEmpty, TooManyScenes
from pipelines.episodes.package import build_episode, package_files
from pipelines.episodes.script import write_offline_script
from tests.episodes.support import AVAILABLE, SERIES, SIBLINGS, episode, pins

PIECES = st.sampled_from(['"', "“", "”", "Mira", "Leo", "Zed", " said ", ", ", ": ", ".", "\n\n", "\n",
                          "her brother ", "green eyes", "wearing a hat", "holding a cup",
                          "INT. ROOM - DAY\n", "'s ", "she said", "x"])
STORIES = st.lists(PIECES, min_size=1, max_size=60).map("".join) | st.text(max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STORIES)
def test_any_story_gives_a_deterministic_script_and_a_valid_package(story):
    try:
        first = write_offline_script(title="T", episode_number=1, story=story, cast_names=["Mira", "Leo"])
    except (StoryEmpty, TooManyScenes):
        return
    again = write_offline_script(title="T", episode_number=1, story=story, cast_names=["Mira", "Leo"])
    assert first == again
    for scene in first.scenes:
        for line in scene.lines:
            assert line.text.strip()
            if line.kind == "dialogue":
                assert (line.speaker is None) == (line.attribution == "unattributed")
    build = build_episode(episode=episode(story), series=SERIES, pinned=pins(), relationships=(SIBLINGS,),
                          available_images=AVAILABLE)
    files = package_files(build)  # validates package.json against the published schema
    assert json.loads(files["package.json"])["continuity"]["passes"] == build.passes
