"""Lambda handlers of the tuning workflow. Each is a thin shell over `rltune.steps`.

Each handler file is copied to the root of its own asset (see `infra/lambda_assets.py`), next to the
`rltune` modules it imports and the third-party wheels it needs; boto3 comes from the Lambda runtime.
"""
