"""The AWS CDK app's constructs: one module per capability, composed by `infra.stack.RlTuneStack`."""
