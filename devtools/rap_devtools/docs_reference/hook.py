"""The mkdocs hook (mkdocs.yml `hooks:`) that adds the generated Reference pages to
the site. Kept to the mkdocs glue; what the pages say is decided in pages.py."""

from __future__ import annotations

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from rap_devtools.docs_reference.pages import reference_pages


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for src_uri, markdown in reference_pages().items():
        # A file of the same name in docs/ would be an out-of-date copy: the
        # generated page wins.
        if (existing := files.get_file_from_path(src_uri)) is not None:
            files.remove(existing)
        files.append(File.generated(config, src_uri, content=markdown))
    return files
