"""Lambda code assets, built locally at synth time: no Docker, and each asset holds only what its handler imports.

For each handler in `lambdas/`:
1. walk its imports (the AST, including imports inside functions) through `lambdas.*` and `rltune.*`, and
   collect the third-party top-level names it needs;
2. map those names to pinned distributions (versions from requirements.txt), and `pip install --platform
   manylinux2014_aarch64 --only-binary=:all: --no-deps` them for the Lambda's Python into a cache under
   `.build/lambda-deps/<hash of inputs>` (repeated synths reuse it);
3. copy the cached wheels' files, the handler's source modules and their packages' package data (pyproject's
   `[tool.setuptools.package-data]`, e.g. rltune/rllib_config_keys.json) into `.build/lambda-assets/<name>`,
   which becomes `lambda_.Code.from_asset(...)`.
boto3/botocore come from the Lambda runtime. The SageMaker Python SDK is refused outright.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / ".build"
PLATFORM = "manylinux2014_aarch64"
ARCHITECTURE = lambda_.Architecture.ARM_64
LOCAL_PACKAGES = ("lambdas", "rltune")
# What the Lambda Python runtime already provides (never bundled).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})
# Top-level import name -> the distributions that make it importable (the closure, --no-deps).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "aws_lambda_powertools": ("aws-lambda-powertools", "aws-xray-sdk", "wrapt", "jmespath", "typing-extensions"),
    "pydantic": ("pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection"),
}
DISTRIBUTIONS["pydantic_core"] = DISTRIBUTIONS["pydantic"]
DISTRIBUTIONS["typing_extensions"] = ("typing-extensions",)
FORBIDDEN = frozenset({"sagemaker", "ray", "torch", "optuna", "aws_cdk", "moto"})
# Powertools subpackages the handlers never load (Logger, Tracer and their helpers stay): ~6 MB less.
POWERTOOLS_KEEP_UTILITIES = frozenset({"__init__.py", "typing", "jmespath_utils"})
PRUNE_DIRS = ("aws_lambda_powertools/event_handler", "bin", "wrapt-stubs")


class AssetError(RuntimeError):
    """A handler imports something that cannot be bundled (missing, unknown or forbidden)."""


def lambda_runtime() -> lambda_.Runtime:
    """The newest Python runtime this aws-cdk-lib knows (what cdk-nag's L1 rule calls current)."""
    pythons = [r for r in lambda_.Runtime.ALL if r.family == lambda_.RuntimeFamily.PYTHON]
    return max(pythons, key=lambda r: tuple(int(p) for p in r.name.removeprefix("python").split(".")))


def python_version(runtime: lambda_.Runtime) -> str:
    return runtime.name.removeprefix("python")


@cache
def pinned_versions(requirements: Path = REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """`name==version` lines of requirements.txt, keyed by normalized name."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            pins[_normalize(match.group(1))] = match.group(3)
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class HandlerClosure:
    """What one handler needs: its local source files and the third-party top-level names it imports."""

    sources: tuple[Path, ...]  # repo-relative
    third_party: tuple[str, ...]
    data: tuple[Path, ...] = ()  # repo-relative package data of the packages in `sources`


@cache
def package_data_patterns(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, tuple[str, ...]]:
    """pyproject's `[tool.setuptools.package-data]`: package -> glob patterns (what an installed wheel carries)."""
    table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("package-data", {})
    return {package: tuple(patterns) for package, patterns in table.items()}


def _package_data(sources: tuple[Path, ...]) -> tuple[Path, ...]:
    files: set[Path] = set()
    patterns = package_data_patterns()
    for init in (s for s in sources if s.name == "__init__.py"):
        for pattern in patterns.get(".".join(init.parent.parts), ()):
            for path in (REPO_ROOT / init.parent).glob(pattern):
                if path.is_file():
                    files.add(path.relative_to(REPO_ROOT))
    return tuple(sorted(files))


def _module_file(module: str) -> Path | None:
    path = REPO_ROOT.joinpath(*module.split("."))
    if path.is_dir() and (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def _imports(path: Path) -> set[str]:
    """Every module name a file imports, at any depth (lazy imports inside functions count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    package = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            names.add(base)
            # `from rltune import steps` imports the submodule rltune.steps
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n and n != "__future__"}


def handler_closure(handler_module: str) -> HandlerClosure:
    """Follow local imports from `handler_module` (e.g. 'lambdas.start_handler')."""
    seen: dict[str, Path] = {}
    third_party: set[str] = set()
    pending = [handler_module]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        top = module.split(".")[0]
        if top in LOCAL_PACKAGES:
            path = _module_file(module)
            if path is None:
                parent = module.rsplit(".", 1)[0]
                if module != top and _module_file(parent) is not None and not REPO_ROOT.joinpath(
                        *module.split(".")).exists():
                    continue  # `from rltune.x import name` where name is an attribute, not a module
                raise AssetError(f"{handler_module} imports {module}, which does not exist in this checkout")
            seen[module] = path
            parts = module.split(".")
            pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
            pending.extend(_imports(path))
        elif top in FORBIDDEN:
            raise AssetError(f"{handler_module} imports {module}: {top} must never be in a Lambda asset")
        elif top in sys.stdlib_module_names or top in RUNTIME_PROVIDED:
            continue
        elif top in DISTRIBUTIONS:
            third_party.add(top)
        else:
            raise AssetError(
                f"{handler_module} imports {module}, a third-party module infra/lambda_assets.py does not know: "
                f"add it to DISTRIBUTIONS with the distributions that provide it"
            )
    sources = tuple(sorted(p.relative_to(REPO_ROOT) for p in seen.values()))
    return HandlerClosure(sources=sources, third_party=tuple(sorted(third_party)), data=_package_data(sources))


def _requirements(third_party: tuple[str, ...]) -> tuple[str, ...]:
    pins = pinned_versions()
    specs = set()
    for top in third_party:
        for dist in DISTRIBUTIONS[top]:
            version = pins.get(_normalize(dist))
            if version is None:
                raise AssetError(f"{dist} (needed by {top}) has no exact pin in requirements.txt")
            specs.add(f"{dist}=={version}")
    return tuple(sorted(specs))


def install_dependencies(requirements: tuple[str, ...], python: str) -> Path:
    """Wheels for the Lambda's platform, in a cache keyed by the inputs; built once, then reused."""
    key = hashlib.sha256("\n".join([PLATFORM, python, *requirements]).encode()).hexdigest()[:16]
    target = BUILD_DIR / "lambda-deps" / key
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=target.parent))
    if requirements:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--no-compile", "--platform", PLATFORM, "--implementation", "cp", "--only-binary=:all:",
                   "--python-version", python, "--target", str(staging), *requirements]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise AssetError(f"pip could not fetch Lambda wheels ({' '.join(requirements)}):\n{result.stderr}")
    _prune(staging)
    (staging / ".complete").write_text("\n".join(requirements))
    try:
        staging.rename(target)
    except OSError:  # another synth finished the same cache first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _prune(root: Path) -> None:
    for relative in PRUNE_DIRS:
        shutil.rmtree(root / relative, ignore_errors=True)
    utilities = root / "aws_lambda_powertools" / "utilities"
    if utilities.is_dir():
        for child in utilities.iterdir():
            if child.name not in POWERTOOLS_KEEP_UTILITIES:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    for cache_dir in root.rglob("__pycache__"):
        shutil.rmtree(cache_dir, ignore_errors=True)


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class BuiltAsset:
    name: str
    directory: Path
    handler: str  # the Lambda handler string, e.g. "lambdas.start_handler.handler"
    closure: HandlerClosure
    requirements: tuple[str, ...]

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())


def build_asset(name: str, handler_module: str, runtime: lambda_.Runtime | None = None) -> BuiltAsset:
    """Build (or reuse) the asset directory for one handler module, e.g. ('start', 'lambdas.start_handler')."""
    runtime = runtime or lambda_runtime()
    closure = handler_closure(handler_module)
    requirements = _requirements(closure.third_party)
    deps = install_dependencies(requirements, python_version(runtime))

    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=_ensure(BUILD_DIR / "lambda-assets")))
    shutil.copytree(deps, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    for source in (*closure.sources, *closure.data):
        destination = staging / source
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / source, destination)
    final = BUILD_DIR / "lambda-assets" / f"{name}-{_fingerprint(staging)}"
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        try:
            staging.rename(final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    _prune_stale(name, keep=final)
    return BuiltAsset(name=name, directory=final, handler=f"{handler_module}.handler", closure=closure,
                      requirements=requirements)


def _prune_stale(name: str, keep: Path, spare: int = 3) -> None:
    """Keep `keep` and the `spare` most recent other builds of this asset (a concurrent synth may use them)."""
    builds = sorted((p for p in keep.parent.glob(f"{name}-*") if p.is_dir() and p != keep),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in builds[spare:]:
        shutil.rmtree(stale, ignore_errors=True)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def code(asset: BuiltAsset) -> lambda_.Code:
    return lambda_.Code.from_asset(os.fspath(asset.directory))
