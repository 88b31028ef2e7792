"""The result tables (docs/method.md, section 6): long CSVs are the source of truth; paper-shaped tables
are pivots of them (CSV and Markdown), never computed separately."""
