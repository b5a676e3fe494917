"""The README's search-space examples are valid search spaces."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import yaml

from tune_grid.search.spec.space_file import parse_space

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_yaml_example_in_the_readme_is_a_valid_search_space() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    names = []
    for block in blocks:
        spec = parse_space(yaml.safe_load(textwrap.dedent(block)), file="README.md")
        names.append(spec.experiment)
    assert "protocol_prices" in names
