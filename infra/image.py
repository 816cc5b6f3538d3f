"""The SageMaker training image, built and pushed by `cdk deploy` (synthesis only stages its context)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "training_image/Dockerfile"

# Never staged into the build context, whatever the root .dockerignore says: these trees are large and
# never belong in the image. The .dockerignore (the trainer's allowlist) decides everything else.
ALWAYS_EXCLUDED = (".git", ".venv", ".venv-tools", "node_modules", "cdk.out", ".build", "runs", "**/__pycache__")


class TrainingImage(Construct):
    """A linux/amd64 `DockerImageAsset` built from the repository root with `training_image/Dockerfile`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        directory: Path = REPO_ROOT,
        file: str = DOCKERFILE,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (directory / file).is_file():
            raise FileNotFoundError(f"training image: no Dockerfile at {directory / file}; the image is built from it")
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(directory),
            file=file,
            platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=list(ALWAYS_EXCLUDED),
            display_name="rltune training image",
        )
        self.repository = self.asset.repository
        self.image_uri = self.asset.image_uri
