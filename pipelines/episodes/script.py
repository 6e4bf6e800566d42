"""The script: its model, the offline deterministic writer, and ``script.md``.

The offline writer is honest about what it is (``generator = "offline-v1"``, ``offline = true``): it
does no understanding. Paragraphs (blank-line separated) become scenes; quoted passages become
dialogue attributed to a named speaker when the text around the quote says so (``"…," said Mira.``,
``"…" Mira said.``, ``Mira said, "…"``, ``Mira: "…"``); an unattributed quote (or ``she said``)
inherits the scene's last speaker (``attribution = "inherited"``) or, with none, stays unattributed
and is flagged; everything else is narration. A screenplay heading line (``INT. KITCHEN - NIGHT``)
at the top of a paragraph becomes the scene's heading.

Linear time: quotes are found with one ``finditer`` over quote characters; attribution regexes
only ever look at a bounded window (``ATTRIBUTION_WINDOW`` characters) either side of a quote.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from pipelines.episodes.errors import StoryEmpty, StoryTooLong, TooManyScenes
from pipelines.episodes.models import _Frozen
from pipelines.episodes.text import NameIndex, md

MAX_STORY_CHARS = 100_000
MAX_SCENES = 200
OFFLINE_GENERATOR = "offline-v1"
# How far before/after a quote the attribution is looked for: "said Captain Leo Hart," fits easily.
ATTRIBUTION_WINDOW = 120

SPEECH_VERBS = (
    "said|says|asked|asks|replied|replies|answered|whispered|shouted|yelled|cried|called|muttered|"
    "murmured|added|laughed|sighed|snapped|told|began|continued|insisted|exclaimed|admitted|warned"
)
# Up to three words of any script (Élodie, Zoë); which of them are capitalised is checked in code.
_WORD = r"[^\W\d_][\w'’-]*"
_NAME = rf"{_WORD}(?:[ \t]+{_WORD}){{0,2}}"
_LEAD = r"[\s,.!?;:—–-]*"
_AFTER_VERB_NAME = re.compile(rf"{_LEAD}(?:{SPEECH_VERBS})[ \t]+({_NAME})")
_AFTER_NAME_VERB = re.compile(rf"{_LEAD}({_NAME})[ \t]+(?:{SPEECH_VERBS})\b")
_BEFORE_NAME_VERB = re.compile(rf"({_NAME})[ \t]+(?:{SPEECH_VERBS})[ \t]*[,:]?[ \t]*$")
_BEFORE_NAME_COLON = re.compile(rf"({_NAME})[ \t]*:[ \t]*$")
# "…," she said. / She said, "…": the pronoun names nobody, so the quote inherits; the words are consumed.
_PRONOUN = r"(?:[Hh]e|[Ss]he|[Tt]hey|I|[Ww]e)"
_AFTER_PRONOUN = re.compile(rf"{_LEAD}(?:(?:{SPEECH_VERBS})[ \t]+{_PRONOUN}|{_PRONOUN}[ \t]+(?:{SPEECH_VERBS}))\b")
_BEFORE_PRONOUN = re.compile(rf"\b{_PRONOUN}[ \t]+(?:{SPEECH_VERBS})[ \t]*[,:]?[ \t]*$")
_QUOTE_CHARS = re.compile(r"[\"“”]")
_HEADING = re.compile(r"(?:INT\.?/EXT|INT|EXT|I/E)\.[ \t]+\S[^\n]{0,200}")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_CONTROL = {c: None for c in range(32) if c not in (9, 10)} | {0x7F: None}
_PUNCT_ONLY = re.compile(r"[\s,.!?;:—–\-\"“”']*")

Attribution = Literal["explicit", "inherited", "unattributed"]


class ScriptLine(_Frozen):
    kind: Literal["dialogue", "narration"]
    text: str = Field(min_length=1, max_length=MAX_STORY_CHARS)
    speaker: str | None = Field(None, max_length=200)
    attribution: Attribution | None = None  # dialogue only


class ScriptScene(_Frozen):
    number: int = Field(ge=1, le=MAX_SCENES)
    heading: str | None = Field(None, max_length=300)
    lines: tuple[ScriptLine, ...]
    notes: tuple[str, ...] = ()  # what the writer could not do (an unclosed quote, ...), never hidden


class Script(_Frozen):
    title: str
    episode_number: int = Field(ge=1)
    generator: str  # "offline-v1" or the model name
    offline: bool
    scenes: tuple[ScriptScene, ...] = Field(min_length=1, max_length=MAX_SCENES)

    def speakers(self) -> list[tuple[int, str]]:
        return [(s.number, ln.speaker) for s in self.scenes for ln in s.lines if ln.speaker]


def check_story(story: str) -> str:
    """The story normalised (newlines, control characters) or a typed error for the limits."""
    if len(story) > MAX_STORY_CHARS:
        raise StoryTooLong(f"The story has {len(story):,} characters; the limit is {MAX_STORY_CHARS:,}.",
                           limit=MAX_STORY_CHARS)
    text = story.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL)
    if not text.strip():
        raise StoryEmpty("The story is empty: give at least one paragraph.")
    return text


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a heading-only paragraph joins the next one. Stops past the limit."""
    paragraphs: list[str] = []
    pending_heading = ""
    for raw in _BLANK_LINE.split(text):
        para = raw.strip()
        if not para:
            continue
        if _HEADING.fullmatch(para):
            pending_heading = (pending_heading + "\n" + para).strip()
            continue
        paragraphs.append((pending_heading + "\n" + para).strip() if pending_heading else para)
        pending_heading = ""
        if len(paragraphs) > MAX_SCENES:
            raise TooManyScenes(f"The story has more than {MAX_SCENES} paragraphs (scenes); split the episode.",
                                limit=MAX_SCENES)
    if pending_heading:
        paragraphs.append(pending_heading)
    return paragraphs


def _quote_spans(para: str) -> tuple[list[tuple[int, int]], bool]:
    """``[(start, end)]`` of each closed quote including its marks; and whether one was left open."""
    spans: list[tuple[int, int]] = []
    opened = -1
    for m in _QUOTE_CHARS.finditer(para):
        char = m.group()
        if opened < 0:
            if char != "”":  # a stray closing mark outside a quote is just text
                opened = m.start()
        elif char != "“":  # '"' or '”' closes; a nested opening mark is text
            spans.append((opened, m.end()))
            opened = -1
    return spans, opened >= 0


def _narration(text: str) -> str | None:
    # what an attribution leaves behind (". She fell.") loses its leading punctuation
    cleaned = " ".join(text.split()).lstrip(",.;:!?—–- ")
    return cleaned if cleaned and not _PUNCT_ONLY.fullmatch(cleaned) else None


def _capitalised_run(phrase: str, *, trailing: bool) -> tuple[str, int, int]:
    """The run of capitalised words at the end (or start) of ``phrase``: its text, start and end in ``phrase``."""
    words = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", phrase)]
    keep = []
    for word in reversed(words) if trailing else words:
        if not word[0][:1].isupper():
            break
        keep.append(word)
    if not keep:
        return "", 0, 0
    keep.sort(key=lambda w: w[1])
    return " ".join(w[0] for w in keep), keep[0][1], keep[-1][2]


def parse_scene(number: int, para: str, names: NameIndex) -> ScriptScene:
    heading = None
    first, _, rest = para.partition("\n")
    if _HEADING.fullmatch(first.strip()):
        heading, para = " ".join(first.split()), rest
    spans, unclosed = _quote_spans(para)
    lines: list[ScriptLine] = []
    notes: list[str] = []
    last_speaker: str | None = None
    cursor = 0
    for index, (start, end) in enumerate(spans):
        before = para[cursor:start]
        next_start = spans[index + 1][0] if index + 1 < len(spans) else len(para)
        after = para[end:next_start]
        speaker, consumed_before, consumed_after = None, 0, 0
        window = before[-ATTRIBUTION_WINDOW:]
        for pattern in (_BEFORE_NAME_COLON, _BEFORE_NAME_VERB):
            m = pattern.search(window)
            run, offset, _ = _capitalised_run(m.group(1), trailing=True) if m else ("", 0, 0)
            if m and run and names.resolve(run):
                speaker, consumed_before = names.resolve(run), len(window) - (m.start() + offset)
                break
        if speaker is None:
            head = after[:ATTRIBUTION_WINDOW]
            for pattern in (_AFTER_VERB_NAME, _AFTER_NAME_VERB):
                m = pattern.match(head)
                run, _, run_end = _capitalised_run(m.group(1), trailing=False) if m else ("", 0, 0)
                # "Mira said" must be all capitalised ("the old man said" names nobody); "said Mira softly" → Mira
                if m and run and (pattern is _AFTER_VERB_NAME or run == " ".join(m.group(1).split())) \
                        and names.resolve(run):
                    speaker = names.resolve(run)
                    consumed_after = m.end() if pattern is _AFTER_NAME_VERB else m.start(1) + run_end
                    break
        if speaker is None and not consumed_after:
            m = _BEFORE_PRONOUN.search(window)
            if m:
                consumed_before = len(window) - m.start()
            else:
                m = _AFTER_PRONOUN.match(after[:ATTRIBUTION_WINDOW])
                consumed_after = m.end() if m else 0
        text_before = _narration(before[: len(before) - consumed_before])
        if text_before:
            lines.append(ScriptLine(kind="narration", text=text_before))
        said = " ".join(para[start + 1 : end - 1].split())
        if said.endswith(","):  # "Out," Leo said. -> the line is "Out."
            said = said[:-1] + "."
        if speaker:
            attribution: Attribution = "explicit"
        elif last_speaker:
            speaker, attribution = last_speaker, "inherited"
        else:
            attribution = "unattributed"
        if said:
            lines.append(ScriptLine(kind="dialogue", text=said, speaker=speaker, attribution=attribution))
            last_speaker = speaker or last_speaker
        cursor = end + consumed_after
    tail = _narration(para[cursor:])
    if tail:
        lines.append(ScriptLine(kind="narration", text=tail))
    if unclosed:
        notes.append("a quotation mark is never closed; the text after it is kept as narration")
    if not lines:  # a paragraph of punctuation only: keep the scene, say so
        notes.append("the paragraph holds no words")
        lines.append(ScriptLine(kind="narration", text=" ".join(para.split()) or "(empty)"))
    return ScriptScene(number=number, heading=heading, lines=tuple(lines), notes=tuple(notes))


def write_offline_script(*, title: str, episode_number: int, story: str, cast_names: list[str]) -> Script:
    """The deterministic offline script: the same story and cast always give the same script."""
    paragraphs = split_paragraphs(check_story(story))
    if not paragraphs:
        raise StoryEmpty("The story is empty: give at least one paragraph.")
    names = NameIndex(cast_names)
    scenes = tuple(parse_scene(i, para, names) for i, para in enumerate(paragraphs, start=1))
    return Script(title=title, episode_number=episode_number, generator=OFFLINE_GENERATOR, offline=True,
                  scenes=scenes)


def script_markdown(script: Script) -> str:
    how = ("Written offline by Kiln's deterministic script writer (no model): paragraphs became scenes, "
           "quoted lines became dialogue, the rest narration." if script.offline
           else f"Written by the model {md(script.generator)} and validated against the script schema.")
    out = [f"# Episode {script.episode_number}: {md(script.title)}", "", f"_{how}_", ""]
    for scene in script.scenes:
        out += [f"## Scene {scene.number}" + (f" — {md(scene.heading)}" if scene.heading else ""), ""]
        for line in scene.lines:
            if line.kind == "narration":
                out += [md(line.text), ""]
            else:
                who = md(line.speaker.upper()) if line.speaker else "(UNATTRIBUTED)"
                mark = " _(speaker inherited)_" if line.attribution == "inherited" else ""
                out += [f"**{who}**{mark}: {md(line.text)}", ""]
        out += [f"> Note: {md(note)}" for note in scene.notes] + ([""] if scene.notes else [])
    return "\n".join(out).rstrip() + "\n"
