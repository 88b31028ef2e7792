"""The result tables (SPEC section 6): long CSVs are the source of truth; paper-shaped tables
are pivots of them (CSV and Markdown), never computed separately."""
