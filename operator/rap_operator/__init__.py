"""The rap-analyzer operator: AnalysisRun resources → planned runs → Indexed Jobs."""
