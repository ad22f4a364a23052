"""The references and the measurements' pages are generated (from the code and from benchmarks/results/*.json); they
must match what docs/generate.py writes now, so no reference drifts from the code and no figure from its results."""
import importlib.util

from conftest import ROOT


def generator():
    spec = importlib.util.spec_from_file_location("generate_docs", ROOT / "docs" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    return generate


def test_api_cli_and_benchmark_pages_are_up_to_date():
    generate = generator()
    for path, text in (("docs/api.md", generate.api()), ("docs/cli.md", generate.cli()),
                       ("docs/benchmarks.md", generate.benchmarks())):
        assert (ROOT / path).read_text() == text, f"{path} is stale: run .venv/bin/python docs/generate.py"


def test_the_readme_figures_come_from_the_results():
    """Bug caught: the README's results tables were pasted by hand and could disagree with the JSON."""
    generate = generator()
    readme = (ROOT / "README.md").read_text()
    assert generate.README_BLOCK.search(readme), "README.md lost its generated block of headline figures"
    assert readme == generate.readme(), "README.md's headline figures are stale: run .venv/bin/python docs/generate.py"
    assert "<!-- table:" not in (ROOT / "docs" / "benchmarks.md").read_text()


def test_readme_is_a_short_guide_that_links_the_documents_it_promises():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for path in ("docs/privacy.md", "docs/api.md", "docs/cli.md", "docs/benchmarks.md", "docs/guide.md",
                 "serving/README.md", "notebooks/README.md", "docs/images/default_run_samples.png",
                 "benchmarks/results/privacy_utility.png"):
        assert path in readme and (ROOT / path).exists(), path
