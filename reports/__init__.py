"""What a person looks at: figures of the marts, written under ``<home>/reports/``."""
