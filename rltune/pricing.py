"""On-demand prices of SageMaker training instances, for worst-case estimates before a run starts.

A small, deliberately conservative table: us-east-1 list prices (USD per instance-hour) of SageMaker
training instances as published on https://aws.amazon.com/sagemaker/pricing/. Other regions cost up
to ~30 % more; spot usually costs 60-70 % less. Prices change: treat every figure as an estimate.
"""

from __future__ import annotations

REGION = "us-east-1"

ON_DEMAND_USD_PER_HOUR: dict[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.c5.9xlarge": 1.836,
    "ml.c6i.xlarge": 0.204,
    "ml.c6i.2xlarge": 0.408,
    "ml.c6i.4xlarge": 0.816,
    "ml.m6i.xlarge": 0.23,
    "ml.m6i.2xlarge": 0.461,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.p3.2xlarge": 3.825,
}


def hourly_price(instance_type: str | None) -> float | None:
    """USD per instance-hour on demand, or None for an instance type the table does not know."""
    return ON_DEMAND_USD_PER_HOUR.get(instance_type or "")


def cost_usd(seconds: float, instance_type: str | None, instance_count: int = 1) -> float | None:
    """Cost of `seconds` of (billable) time on `instance_count` instances, or None for an unknown type."""
    price = hourly_price(instance_type)
    if price is None:
        return None
    return round(seconds / 3600.0 * price * instance_count, 4)
