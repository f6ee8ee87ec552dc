"""What a run leaves for a person: its records (trials.csv and the YAML files: records), the Pareto
front (pareto), the plots (plots), and report.md / compare.md (report_md, with its words in
report_text)."""
