"""The rltune trainer: runs one SageMaker training job (or one local trial) of an RLlib algorithm.

Layout of the package (only `config_builder`, `runner` and `export` import Ray):
- `paths`: the /opt/ml layout (`RLTUNE_OPT_ML` replaces /opt/ml for local runs);
- `spec`: hyperparameters.json -> a validated `TrainerSpec` (standard library only, no Ray);
- `config_builder`: `TrainerSpec` -> an RLlib `AlgorithmConfig`, every key checked against the real config;
- `resources`: what the config needs against the CPUs/GPUs present;
- `checkpoints`: atomic, per-job, verified checkpoints with fallback;
- `reporting`: metric lines (the rltune metric contract) and metrics.csv;
- `runner`: Ray start, resume, the training loop, SIGTERM handling;
- `export`: /opt/ml/model (final checkpoint, policy RLModule, metadata.json);
- `main`: exit codes and the failure file.
"""

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_SIGTERM = 143  # 128 + SIGTERM, what a shell reports for a job stopped by SIGTERM
EXIT_SIGINT = 130
