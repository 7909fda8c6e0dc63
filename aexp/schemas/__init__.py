"""The JSON Schemas of aexp's JSON contract (aexp.contract), one file per document."""
