"""rltune: hyperparameter tuning of Ray RLlib models on AWS SageMaker, and the same tuning locally.

Kept import-light on purpose: the training image and the Lambdas import single modules from here.
"""

__version__ = "0.1.0"
