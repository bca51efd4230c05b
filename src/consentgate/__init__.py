"""consentgate: the gate between a platform's member data and its AI training pipelines.

Package map (dependencies point inward, see docs/architecture.md):
cli, service -> build, lineage, reports -> ledger, policy, detect, translog -> errors, config, datamodel.
"""

__version__ = "0.1.0"
