"""The API and CLI references are generated from the code; they must match what docs/generate.py writes now."""
import importlib.util

from conftest import ROOT


def test_api_and_cli_references_are_up_to_date():
    spec = importlib.util.spec_from_file_location("generate_docs", ROOT / "docs" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for name, text in (("api.md", generate.api()), ("cli.md", generate.cli())):
        assert (ROOT / "docs" / name).read_text() == text, f"docs/{name} is stale: run .venv/bin/python docs/generate.py"


def test_readme_links_the_documents_it_promises():
    readme = (ROOT / "README.md").read_text()
    for path in ("docs/privacy.md", "docs/api.md", "docs/cli.md", "serving/README.md", "notebooks/README.md"):
        assert path in readme and (ROOT / path).exists(), path
