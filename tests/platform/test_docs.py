from warehouse import schema_doc


def test_architecture_schema_reference_matches_the_models():
    text = schema_doc.DOC.read_text()
    block = schema_doc.current_block(text)
    assert block is not None, "docs/architecture.md lost its schema markers"
    assert block == schema_doc.render(), "run `python -m warehouse.schema_doc --write` and review the diff"


def test_every_table_with_a_workspace_id_is_under_row_level_security_and_documented_so():
    from warehouse import all_models

    tables = all_models.Base.metadata.tables
    tenant_owned = {name for name, table in tables.items() if all_models.has_workspace_column(table)}
    assert tenant_owned == set(all_models.RLS_TABLES)
    for name in ("video_asset", "bulk_run", "template"):  # once labelled "(global)" by mistake
        assert f"#### `{name}` (tenant-scoped (row-level security on PostgreSQL))" in schema_doc.render()


def test_the_schema_label_comes_from_the_models_so_a_missing_rls_entry_is_drift(monkeypatch):
    from warehouse import all_models

    monkeypatch.setattr(all_models, "RLS_TABLES", tuple(t for t in all_models.RLS_TABLES if t != "highlight"))
    assert "#### `highlight` (tenant-scoped, WITHOUT row-level security)" in schema_doc.render()
    assert schema_doc.render() != schema_doc.current_block(schema_doc.DOC.read_text())


def test_architecture_products_table_matches_the_cards():
    from pipelines import products_doc

    block = products_doc.current_block(products_doc.DOC.read_text())
    assert block is not None, "docs/architecture.md lost its products markers"
    assert block == products_doc.render(), "run `python -m pipelines.products_doc --write` and review the diff"


def test_a_card_change_is_drift_in_the_products_table(monkeypatch):
    from pipelines import products, products_doc

    monkeypatch.setattr(products, "PRODUCTS", tuple(c for c in products.PRODUCTS if c.name != "documents"))
    assert "documents_bulk" not in products_doc.render()
    assert products_doc.render() != products_doc.current_block(products_doc.DOC.read_text())


def test_every_artifact_kind_a_card_declares_has_the_retention_setting_artifacts_use():
    """Artifacts get their TTL from ``Settings.retention_ttl(kind)``: a card's declared setting must be that one."""
    from pipelines import products
    from resources.settings import Settings

    for card in products.PRODUCTS:
        assert card.artifact_ttls, card.name
        for kind, setting in card.artifact_ttls.items():
            assert setting in Settings.model_fields and setting == f"retention_days_{kind}", (card.name, kind)
