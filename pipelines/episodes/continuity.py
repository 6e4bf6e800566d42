"""Continuity: findings located by scene, checked against the pinned character versions. Nothing passes silently.

Rules (``rule`` codes are stable; ``error`` blocks the render, ``warning`` is shown):

- ``character_not_pinned``: a cast member has no pinned version.
- ``character_not_in_cast``: the script names a series character who is not in this episode's cast.
- ``unknown_speaker``: a line is spoken by someone neither the cast nor the series knows.
- ``unattributed_dialogue``: a line has no speaker at all. ``speaker_inherited`` (warning): the offline
  writer gave a line the scene's previous speaker.
- ``trait_contradiction``: the narration gives a character an eye or hair colour, an age band or a mark
  that the pinned static traits do not have. The matcher is a small vocabulary (below), read one
  sentence at a time, owner = the nearest character named before the feature (after it for ages,
  ``twelve-year-old Mira``). It does not understand negation, pronouns across sentences or dialogue;
  it compares only when the pinned trait itself uses the vocabulary.
- ``relationship_undefined``: ``her brother Leo`` / ``Mira's mother Ada`` names a relationship the
  series does not define (or defines only from a later episode).
- ``item_references_not_pinned``: an image to generate for a character does not carry that character's
  pinned references (up to three), or carries others.
- ``reference_image_missing``: a character on screen has no reference image, or one of their pinned
  reference images (or a reused still) is not in the store.
- ``script_note`` (warning): something the script writer could not do (an unclosed quote, ...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

from pipelines.episodes.asset_plan import MAX_REFERENCES, AssetPlan
from pipelines.episodes.models import CharacterVersion, Relationship, _Frozen
from pipelines.episodes.scenes import SceneRow
from pipelines.episodes.script import Script
from pipelines.episodes.text import NameIndex, base_word, sentences, tokens

Severity = Literal["error", "warning"]

EYE_COLOURS = {w: w for w in "brown blue green grey hazel amber black violet".split()} | {"gray": "grey"}
HAIR_COLOURS = {w: w for w in "black brown blonde red auburn grey white silver".split()} | {
    "gray": "grey", "blond": "blonde", "ginger": "red", "brunette": "brown"}
MARKS = {"scar": "scar", "scars": "scar", "scarred": "scar", "tattoo": "tattoo", "tattoos": "tattoo",
         "tattooed": "tattoo", "freckles": "freckles", "freckled": "freckles", "birthmark": "birthmark",
         "eyepatch": "eyepatch", "mole": "mole"}
AGE_WORDS = {"child": "child", "toddler": "child", "teenage": "teen", "teenager": "teen", "teen": "teen",
             "adult": "adult", "elderly": "elderly", "old": "elderly"}
# (relationship type, whether the named person is the ``a`` side of a directed type)
KIN_WORDS: dict[str, tuple[str, bool]] = {
    "brother": ("sibling", False), "sister": ("sibling", False), "sibling": ("sibling", False),
    "twin": ("sibling", False), "friend": ("friend", False), "rival": ("rival", False),
    "wife": ("spouse", False), "husband": ("spouse", False), "spouse": ("spouse", False),
    "colleague": ("colleague", False), "mother": ("parent_of", True), "father": ("parent_of", True),
    "mum": ("parent_of", True), "mom": ("parent_of", True), "dad": ("parent_of", True),
    "parent": ("parent_of", True), "son": ("parent_of", False), "daughter": ("parent_of", False),
    "child": ("parent_of", False), "mentor": ("mentor_of", True),
}
POSSESSIVE_PRONOUNS = frozenset({"her", "his", "their"})


class Finding(_Frozen):
    rule: str
    scene: int | None  # None: not tied to a scene (a cast member with no pin)
    message: str
    severity: Severity = "error"


def passes(findings: list[Finding]) -> bool:
    return not any(f.severity == "error" for f in findings)


def age_band(text: str) -> str | None:
    for word, _ in tokens(text):
        if word.isdigit():
            age = int(word)
            return "child" if age < 13 else "teen" if age < 20 else "adult" if age < 60 else "elderly"
        if word.lower() in AGE_WORDS:
            return AGE_WORDS[word.lower()]
    return None


def _vocab(text: str, vocab: Mapping[str, str]) -> set[str]:
    return {vocab[base_word(w)] for w, _ in tokens(text) if base_word(w) in vocab}


def _trait_findings(scene: int, text: str, names: NameIndex, by_name: Mapping[str, CharacterVersion]) -> list[Finding]:
    out: list[Finding] = []
    for sentence in sentences(text):
        toks = tokens(sentence)
        spans = names.spans(toks)
        if not spans:
            continue
        words = [base_word(w) for w, _ in toks]

        def owner_before(i: int) -> str | None:
            before = [name for name, _, end in spans if end < i]
            return before[-1] if before else None

        def say(cv: CharacterVersion, field: str, story: str, pinned: str) -> None:
            out.append(Finding(rule="trait_contradiction", scene=scene,
                               message=f"The story gives {cv.name} {story}, but the pinned version {cv.version} "
                                       f"has {field} “{pinned}”."))

        for i, word in enumerate(words):
            if word in ("eyes", "eye", "hair"):
                vocab, field = (EYE_COLOURS, "eyes") if word != "hair" else (HAIR_COLOURS, "hair")
                colours = [vocab[w] for w in words[max(0, i - 3) : i] if w in vocab]
                owner = owner_before(i)
                if colours and owner:
                    cv = by_name[owner]
                    pinned_text = getattr(cv.static_traits, field)
                    pinned = _vocab(pinned_text, vocab)
                    if pinned and colours[-1] not in pinned:
                        say(cv, field, f"{colours[-1]} {field}", pinned_text)
            elif word in MARKS:
                owner = owner_before(i)
                if owner:
                    cv = by_name[owner]
                    marks = _vocab(cv.static_traits.marks, MARKS)
                    if MARKS[word] not in marks:
                        say(cv, "marks", f"a {MARKS[word]}", cv.static_traits.marks or "none")
            elif word == "year-old" or word in AGE_WORDS and word != "old":
                band = AGE_WORDS.get(word) or (age_band(words[i - 1]) if i and words[i - 1].isdigit() else None)
                after = [name for name, start, _ in spans if start > i]
                # "the child Leo", "twelve-year-old Mira": the name right after wins; else the one before.
                owner = after[0] if after and any(s == i + 1 for _, s, _ in spans) else (
                    owner_before(i) or (after[0] if after else None))
                if band and owner:
                    cv = by_name[owner]
                    pinned_band = age_band(cv.static_traits.age)
                    if pinned_band and pinned_band != band:
                        say(cv, "age", f"the age of a{'n' if band[0] in 'ae' else ''} {band}", cv.static_traits.age)
    return out


def _relationship_findings(scene: int, text: str, names: NameIndex, by_name: Mapping[str, CharacterVersion],
                           relationships: Collection[Relationship], episode_number: int) -> list[Finding]:
    out: list[Finding] = []
    defined = {r.key: r for r in relationships}
    for sentence in sentences(text):
        toks = tokens(sentence)
        spans = names.spans(toks)
        starts = {start: name for name, start, _ in spans}
        for i, (word, _) in enumerate(toks):
            kin = KIN_WORDS.get(base_word(word))
            target = starts.get(i + 1)
            if not kin or not target or i == 0:
                continue
            j = i - 1 if toks[i - 1][0].lower() not in ("best", "little", "big", "older", "younger", "old") else i - 2
            if j < 0:
                continue
            owner = next((name for name, _, end in spans if end == j and toks[j][0].lower().endswith(("'s", "’s"))),
                         None)
            if owner is None and toks[j][0].lower() in POSSESSIVE_PRONOUNS:
                before = [name for name, _, end in spans if end < j and name != target]
                owner = before[-1] if before else None
            if owner is None or owner == target:
                continue
            rtype, target_is_a = kin
            a, b = by_name[target].character_id, by_name[owner].character_id
            if not target_is_a and rtype in ("parent_of",):
                a, b = b, a
            if rtype not in ("parent_of", "mentor_of") and a > b:
                a, b = b, a
            found = defined.get((a, b, rtype))
            if found is None and rtype not in ("parent_of", "mentor_of"):  # a symmetric type declared directed
                found = defined.get((b, a, rtype))
            if found is None:
                out.append(Finding(rule="relationship_undefined", scene=scene,
                                   message=f"The story calls {target} {owner}'s {base_word(word)}, but the series "
                                           f"defines no {rtype} relationship between them."))
            elif found.since_episode and found.since_episode > episode_number:
                out.append(Finding(rule="relationship_undefined", scene=scene,
                                   message=f"The {rtype} relationship between {target} and {owner} starts in "
                                           f"episode {found.since_episode}, after this one ({episode_number})."))
    return out


def check_continuity(*, script: Script, rows: list[SceneRow], plan: AssetPlan, cast: Collection[str],
                     pinned: Mapping[str, CharacterVersion], series_characters: Mapping[str, CharacterVersion],
                     relationships: Collection[Relationship], available_images: Collection[str]) -> list[Finding]:
    """Every finding, ordered by scene then rule. ``available_images``: SHA-256s the store holds."""
    findings: list[Finding] = []
    for cid in cast:
        if cid not in pinned:
            findings.append(Finding(rule="character_not_pinned", scene=None,
                                    message=f"The cast member {cid} has no pinned character version."))
    by_name = {cv.name: cv for cv in pinned.values()}
    names = NameIndex(list(by_name))
    # Series characters this episode may not use: outside the cast, or in it but never pinned.
    cast_ids = set(cast)
    outsiders = {cv.name: ("character_not_in_cast" if cid not in cast_ids else "character_not_pinned")
                 for cid, cv in series_characters.items() if cid not in pinned}
    outsider_names = NameIndex(list(outsiders))
    for scene in script.scenes:
        narration = " ".join(ln.text for ln in scene.lines if ln.kind == "narration")
        for note in scene.notes:
            findings.append(Finding(rule="script_note", scene=scene.number, message=note, severity="warning"))
        cast_at = {offset for _, offset in names.mentions(narration)}  # a cast name wins over a series name
        named = {n for n, offset in outsider_names.mentions(narration) if offset not in cast_at}
        for line in scene.lines:
            if line.kind != "dialogue":
                continue
            outsider = outsider_names.resolve(line.speaker) if line.speaker else None
            if line.speaker is None:
                findings.append(Finding(rule="unattributed_dialogue", scene=scene.number,
                                        message=f"Nobody is named as saying “{line.text[:80]}”."))
            elif line.speaker in by_name:
                pass
            elif outsider in outsiders:
                named.add(outsider)
            else:
                findings.append(Finding(rule="unknown_speaker", scene=scene.number,
                                        message=f"{line.speaker} speaks but is not a character of the series."))
            if line.attribution == "inherited":
                findings.append(Finding(rule="speaker_inherited", scene=scene.number, severity="warning",
                                        message=f"“{line.text[:80]}” is given to {line.speaker}, the previous "
                                                f"speaker; name the speaker if that is wrong."))
        for name in sorted(named):
            why = ("is not in this episode's cast" if outsiders[name] == "character_not_in_cast"
                   else "is in the cast but has no pinned version")
            findings.append(Finding(rule=outsiders[name], scene=scene.number, message=f"{name} appears but {why}."))
        findings += _trait_findings(scene.number, narration, names, by_name)
        findings += _relationship_findings(scene.number, narration, names, by_name, relationships,
                                           script.episode_number)
    available = set(available_images)
    reported: set[str] = set()
    for row in rows:
        for present in row.characters:
            cv = pinned[present.character_id]
            missing = [r for r in cv.references if r.sha256 not in available]
            if (not cv.references or missing) and cv.character_id not in reported:
                reported.add(cv.character_id)
                what = ("has no reference image" if not cv.references else
                        "has reference images missing from the store: " + ", ".join(r.view for r in missing))
                findings.append(Finding(rule="reference_image_missing", scene=row.number,
                                        message=f"{cv.name} (version {cv.version}) {what}."))
    for item in plan.items():
        if item.action == "reuse" and item.reuse_by == "content_hash" and item.sha256 not in available:
            findings.append(Finding(rule="reference_image_missing", scene=item.scene,
                                    message=f"The still reused for {item.description} is not in the store."))
        if item.kind != "character" or item.action != "generate" or item.character_id not in pinned:
            continue
        cv = pinned[item.character_id]
        expected = min(MAX_REFERENCES, len({r.sha256 for r in cv.references}))
        own = {r.sha256 for r in cv.references}
        if len(item.references) < expected or not set(item.references) <= own or item.character_version != cv.version:
            findings.append(Finding(rule="item_references_not_pinned", scene=item.scene,
                                    message=f"The image to generate for {item.description} does not carry the "
                                            f"pinned references of version {cv.version}."))
    return sorted(findings, key=lambda f: (f.scene or 0, f.rule, f.message))
