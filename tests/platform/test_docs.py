from warehouse import schema_doc


def test_architecture_schema_reference_matches_the_models():
    text = schema_doc.DOC.read_text()
    block = schema_doc.current_block(text)
    assert block is not None, "docs/architecture.md lost its schema markers"
    assert block == schema_doc.render(), "run `python -m warehouse.schema_doc --write` and review the diff"
