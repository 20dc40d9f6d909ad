"""One module per study: its assets, its lake tables' checks, and whether it runs for a study
configuration. `dagster_project.definitions` collects them (see STUDIES there)."""
