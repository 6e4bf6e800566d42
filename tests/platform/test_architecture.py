"""The shape of the code (DESIGN.md, "The shape of one product"), checked.

- The product cards in ``pipelines/products.py`` are the only registry: every card's job kind has a job, a
  dispatch sensor, partitions retention knows, and a documented route; a product removed from the list is
  gone from the API's job kinds, retention and the code location.
- Layers point down: ``api/`` imports nothing from ``assets/``, ``sensors/`` or the code location, and the API
  process loads no Dagster; domain code and cards import no Dagster, FastAPI or SQLAlchemy session.
- No product imports another product, and the project's modules import each other without cycles.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import products
from pipelines.maintenance import retention

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "assets", "pipelines", "resources", "sensors", "warehouse")

# The modules of each product, by dotted prefix: its card and domain, assets, sensor, tables and routes.
PRODUCT_MODULES = {
    "selftest": ("pipelines.selftest", "assets.selftest", "sensors.selftest"),
    "video_notes": ("pipelines.video_notes", "assets.video_notes", "sensors.video_notes", "warehouse.video_notes",
                    "api.routes.videos", "api.video_views", "api.video_input", "api.cli_video"),
    "documents": ("pipelines.documents", "assets.documents", "sensors.documents", "warehouse.documents",
                  "api.routes.templates", "api.routes.bulk_runs", "api.bulk_input", "api.render_gate"),
    "episodes": ("pipelines.episodes", "assets.episodes", "sensors.episodes", "warehouse.episodes",
                 "warehouse.episodes_models", "api.routes.characters", "api.routes.episodes", "api.episodes_views",
                 "api.cli_episodes"),
    "linkedin": ("pipelines.linkedin", "assets.linkedin", "sensors.linkedin", "warehouse.linkedin",
                 "warehouse.linkedin_models", "warehouse.linkedin_posting", "api.routes.linkedin",
                 "api.routes.linkedin_content", "api.routes.drafts", "api.cli_packs", "resources.linkedin_client",
                 "resources.linkedin_emulator", "resources.linkedin_tokens"),
}
# Products whose groundwork landed before their card (none now): held to the same rule.
UNCARDED_PRODUCT_MODULES: dict[str, tuple[str, ...]] = {
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }


MODULES = _project_modules()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (a function-level import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _internal_imports(name: str) -> set[str]:
    return {imported for imported in _imports(MODULES[name]) if imported in MODULES and imported != name}


def _belongs(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _product_of(module: str) -> str | None:
    for product, prefixes in {**PRODUCT_MODULES, **UNCARDED_PRODUCT_MODULES}.items():
        if any(_belongs(module, prefix) for prefix in prefixes):
            return product
    return None


# --- the cards ---------------------------------------------------------------------------------------------


def test_every_listed_product_has_a_card_module_and_modules_here():
    assert {card.name for card in products.PRODUCTS} == set(PRODUCT_MODULES)
    for card in products.PRODUCTS:
        assert f"pipelines.{card.name}.product" in MODULES


@pytest.fixture(scope="module")
def repository():
    from pipelines.definitions import defs

    return defs.get_repository_def()


@pytest.fixture(scope="module")
def openapi_paths(tmp_path_factory) -> list[str]:
    from api.main import create_app
    from resources.settings import Settings

    home = tmp_path_factory.mktemp("kiln-home")
    return list(create_app(Settings(home=home)).openapi()["paths"])


@pytest.mark.parametrize("kind", sorted(products.all_job_kinds()))
def test_every_card_kind_has_a_job_a_dispatch_sensor_retention_partitions_and_a_documented_route(
    kind, repository, openapi_paths
):
    entry = products.all_job_kinds()[kind]
    card = products.product_of_kind(kind)
    jobs = [job for job in repository.get_all_jobs() if dict(job.tags).get("kiln/kind") == kind]
    assert jobs, f"no job is tagged kiln/kind={kind}"
    for job in jobs:
        assert job.partitions_def is not None and job.partitions_def.name == entry.partitions
    if entry.pool is not None:
        assert any(dict(job.tags).get("kiln/pool") == entry.pool for job in jobs)
    job_names = {job.name for job in jobs}
    sensors = [s for s in repository.sensor_defs if job_names & {t.job_name for t in s.targets}]
    assert sensors, f"no sensor dispatches the jobs of {kind}"
    assert retention.partitions_by_kind()[kind] == entry.partitions
    assert kind in retention.kinds_by_partitions_def()[entry.partitions]
    assert card is not None and card.route_prefix
    assert any(path.startswith(card.route_prefix) for path in openapi_paths)
    if not entry.submit_via_jobs_api:
        route = entry.product_route.split()[1]
        assert route in openapi_paths, f"{kind}'s product route {route} is not served"
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    assert card.route_prefix in docs, f"{card.route_prefix} is not documented"


def test_removing_a_product_from_the_list_removes_it_everywhere(monkeypatch, tmp_path):
    from api import job_kinds
    from api.main import PRODUCT_ROUTERS, create_app
    from resources.settings import Settings
    from pipelines.definitions import build_defs

    kept = tuple(card for card in products.PRODUCTS if card.name != "video_notes")
    monkeypatch.setattr(products, "PRODUCTS", kept)
    assert "video_notes" not in job_kinds.job_kinds() and job_kinds.get_job_kind("video_notes") is None
    assert "video_notes" not in retention.partitions_by_kind()
    assert "videos" not in retention.kinds_by_partitions_def()
    repo = build_defs(kept).get_repository_def()
    assert not repo.has_job("video_notes_job")
    assert "video_notes_dispatch_sensor" not in {s.name for s in repo.sensor_defs}
    assert repo.has_job("selftest_job") and repo.has_job("bulk_pdf_job")
    paths = create_app(Settings(home=tmp_path), configure_logs=False).openapi()["paths"]
    assert not any(path.startswith("/v1/videos") for path in paths)
    assert "/v1/templates" in paths and "/v1/jobs" in paths
    assert set(PRODUCT_ROUTERS) == {card.name for card in products.PRODUCTS} | {"video_notes"}  # one entry a card


def test_cards_are_plain_python():
    for card in products.PRODUCTS:
        for imported in _imports(MODULES[f"pipelines.{card.name}.product"]):
            assert not imported.startswith(("dagster", "fastapi", "sqlalchemy", "warehouse", "resources", "api")), (
                card.name, imported)


# --- layers ------------------------------------------------------------------------------------------------


def test_importing_the_api_loads_no_dagster():
    code = "import sys, api.main; print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_api_imports_no_assets_sensors_or_code_location():
    for name in MODULES:
        if _belongs(name, "api"):
            for imported in _imports(MODULES[name]):
                assert not imported.startswith(("assets", "sensors", "pipelines.definitions", "dagster")), (
                    name, imported)


def test_domain_logic_imports_no_dagster_fastapi_or_sessions():
    for name in MODULES:
        if _belongs(name, "pipelines") and name != "pipelines.definitions":
            for imported in _imports(MODULES[name]):
                assert not imported.startswith(("dagster", "fastapi", "sqlalchemy", "assets", "sensors", "api")), (
                    name, imported)


def test_no_product_imports_another_product():
    assert {"pipelines.linkedin.packs", "pipelines.episodes.package"} <= set(MODULES)  # the walk reaches them
    for name in MODULES:
        owner = _product_of(name)
        if owner is None:
            continue
        for imported in _internal_imports(name):
            other = _product_of(imported)
            assert other in (None, owner), f"{name} ({owner}) imports {imported} ({other})"


def test_project_modules_import_each_other_without_cycles():
    graph = {name: _internal_imports(name) for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):], name]))
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


_SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "and_", "or_", "exists", "union"}


def _sql_builders_imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            found.update(alias.name for alias in node.names if alias.name in _SQL_BUILDERS)
    return found


def test_sql_lives_in_warehouse_not_in_routes():
    routes = {name for name in MODULES if _belongs(name, "api.routes") and name != "api.routes"}
    assert {"api.routes.invitations", "api.routes.videos", "api.routes.bulk_runs"} <= routes  # the walk reaches them
    offenders = {name: found for name in routes if (found := _sql_builders_imported(MODULES[name]))}
    assert not offenders, f"route modules call named functions in warehouse/ instead of building SQL: {offenders}"
