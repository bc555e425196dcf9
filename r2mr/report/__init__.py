"""Report layer: published numbers, significance, tables, plots, notebook outputs and set-up."""
