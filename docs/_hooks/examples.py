"""MkDocs hook: publish the paper reproductions (examples/*/README.md and their plots) in the
site next to docs/, and let docs/ link to them the way they are linked on disk.

The pages of docs/ link to `../examples/<name>/README.md` (right when reading the repository);
in the site those files sit at `examples/<name>/README.md` under the docs root, so those links
lose one `../`, and the examples' links to `../../docs/<page>` lose the `docs/`. Nothing is
copied into docs/ on disk.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = (".md", ".png")
LINK = re.compile(r"(\]\()((?:\.\./)+)(examples/)")


def on_files(files: Files, config) -> Files:  # noqa: ANN001 (mkdocs hook signature)
    for path in sorted((ROOT / "examples").rglob("*")):
        if path.suffix in PUBLISHED and path.is_file():
            rel = path.relative_to(ROOT).as_posix()
            files.append(
                File(
                    rel,
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001
    depth = page.file.src_uri.count("/")
    if page.file.src_uri.startswith("examples/"):
        # examples/<name>/README.md links to ../../docs/<page>; in the site docs/ is the root
        return markdown.replace("](../../docs/", "](../../")

    def fix(match: re.Match) -> str:
        ups = match.group(2).count("../")
        if ups == depth + 1:
            return match.group(1) + "../" * depth + match.group(3)
        return match.group(0)

    return LINK.sub(fix, markdown)
