"""The demo's report: results.json, results.md and a self-contained report.html."""
