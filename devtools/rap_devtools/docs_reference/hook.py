"""The mkdocs hook (mkdocs.yml `hooks:`) that adds the generated Reference pages to
the site. Kept to the mkdocs glue; what the pages say is decided in pages.py."""

from __future__ import annotations

import logging

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

from rap_devtools.docs_reference.pages import reference_pages

# Under mkdocs' logger: a warning here counts, and fails a --strict build.
log = logging.getLogger("mkdocs.hooks.reference")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for src_uri, markdown in reference_pages().items():
        if (existing := files.get_file_from_path(src_uri)) is not None:
            # A hand-written page would silently lose to the generated one.
            log.warning("docs/%s is generated: remove the file from docs/", src_uri)
            files.remove(existing)
        files.append(File.generated(config, src_uri, content=markdown))
    return files
