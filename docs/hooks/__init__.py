"""Build-time helpers of the documentation site (not pages: mkdocs.yml excludes this folder)."""
