"""The Dockerfile, read instruction by instruction (no Docker daemon is needed), and the parts of it that run.

The entrypoint script and the Dask configuration the build writes are extracted from the Dockerfile and
executed here, so what the image will do is tested, not only how the file reads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import AIRFLOW_VALUES, DOCKERFILE, ROOT, load_yaml

SECRET_NAME = re.compile(r"SECRET|PASSW|TOKEN|CREDENTIAL|PRIVATE|_KEY\b|^KEY\b|FERNET|API_KEY", re.I)
INDEX_OPTIONS = re.compile(r"--(extra-)?index-url|--find-links|--trusted-host|(^|\s)-[if]\s|--index\b|--default-index")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: continuation lines joined, heredoc bodies attached."""

    keyword: str
    arguments: str
    heredocs: tuple[str, ...]
    line: int


def parse(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile, with `\\` continuations, comments and `<<"EOF"` heredocs handled."""
    lines = text.splitlines()
    instructions: list[Instruction] = []
    i = 0
    while i < len(lines):
        start, line = i, lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line.strip()]
        while parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1].strip()
            while lines[i].lstrip().startswith("#"):
                i += 1
            parts.append(lines[i].strip())
            i += 1
        keyword, _, arguments = " ".join(parts).partition(" ")
        heredocs = []
        for match in re.finditer(r"<<-?([\"']?)(\w+)\1", arguments):
            body = []
            while lines[i] != match.group(2):
                body.append(lines[i])
                i += 1
            i += 1
            heredocs.append("\n".join(body) + "\n")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), tuple(heredocs), start + 1))
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def stages() -> list[list[Instruction]]:
    """Instructions per build stage (the global ARGs before the first FROM are left out)."""
    found: list[list[Instruction]] = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def global_args() -> dict[str, str]:
    args = {}
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    return args


def first(stage: list[Instruction], keyword: str, contains: str) -> int:
    """Index in ``stage`` of the first ``keyword`` instruction whose arguments contain ``contains``."""
    for index, instruction in enumerate(stage):
        if instruction.keyword == keyword and contains in instruction.arguments:
            return index
    raise AssertionError(f"no {keyword} with {contains!r}")


def test_parser_reads_continuations_comments_and_heredocs() -> None:
    parsed = parse('FROM a AS b\n# c\nRUN x \\\n  # inside\n  && y\nCOPY <<"EOF" /p\nline 1\nEOF\nCMD ["z"]\n')

    assert [(i.keyword, i.arguments) for i in parsed] == [
        ("FROM", "a AS b"),
        ("RUN", "x && y"),
        ("COPY", '<<"EOF" /p'),
        ("CMD", '["z"]'),
    ]
    assert parsed[2].heredocs == ("line 1\n",)


def test_two_stages_on_the_slim_python_the_project_requires() -> None:
    builder, runtime = stages()
    base = global_args()["PYTHON_IMAGE"]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]

    assert builder[0].arguments == "${PYTHON_IMAGE} AS builder"
    assert runtime[0].arguments == "${PYTHON_IMAGE} AS runtime"
    assert base == "python:3.11-slim"
    assert requires.startswith(">=3.11,<3.12")


def test_final_user_is_numeric_and_not_root() -> None:
    runtime = stages()[-1]
    users = [i.arguments for i in runtime if i.keyword == "USER"]

    assert users, "the runtime stage must set USER"
    numeric = re.fullmatch(r"(\d+):(\d+)", users[-1])
    assert numeric, f"USER {users[-1]} must be numeric UID:GID (a name cannot be checked as non-root)"
    uid, gid = int(numeric.group(1)), int(numeric.group(2))
    assert uid > 0 and gid > 0
    created = next(i.arguments for i in runtime if i.keyword == "RUN" and "useradd" in i.arguments)
    assert f"--uid {uid} --gid {gid}" in created and f"groupadd --gid {gid}" in created
    # The instruction that sets USER comes after every RUN: nothing runs as root after it.
    last_user = max(n for n, i in enumerate(runtime) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in runtime[last_user:])


def test_dependencies_come_from_the_pinned_requirements_without_any_index() -> None:
    builder = stages()[0]
    installs = [i.arguments for i in INSTRUCTIONS if i.keyword == "RUN" and re.search(r"pip install", i.arguments)]

    assert any(
        re.search(r"uv pip install --python /opt/venv/bin/python -r requirements-image\.txt$", run) for run in installs
    )
    for run in installs:
        assert not INDEX_OPTIONS.search(run), run
        for command in re.split(r"&&|\|\|", run):
            if "pip install" not in command:
                continue
            words = shlex.split(command)
            targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
            targets = [t for t in targets if t not in ("/opt/venv/bin/python", "requirements-image.txt")]
            # Every other install is either pinned or the project itself without its dependencies.
            for target in targets:
                assert "==" in target or (target == "." and "--no-deps" in words), command
    assert all(i.keyword != "ADD" for i in builder)


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a pinned requirements file; every non-comment line must be ``name==version``."""
    pins = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==(\S+)", line.strip())
        assert match, f"{path.name}: {line!r} is not name==version"
        pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def test_image_requirements_are_the_tested_pins_without_test_tooling() -> None:
    image, tested = _pins(ROOT / "requirements-image.txt"), _pins(ROOT / "requirements.txt")

    # Every package in the image runs at exactly the version the test suite ran against.
    assert {name: version for name, version in image.items() if tested.get(name) != version} == {}
    assert image["apache-airflow"] == tested["apache-airflow"] == "3.3.2"
    # The product's own run-time dependencies are all there ...
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in project:
        name = re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in image, requirement
    for runtime in ("psycopg", "s3fs", "apache-airflow-providers-openlineage", "pylibjpeg-libjpeg"):
        assert runtime in image, runtime
    # ... and what only tests, linters, benchmarks and chart tests need is not.
    for tooling in ("pytest", "ruff", "mypy", "moto", "opendp", "helm-python-sdk", "kubernetes-validate", "deid"):
        assert tooling not in image, tooling


def test_uv_is_the_version_the_makefile_pins() -> None:
    makefile = re.search(r"(?m)^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text())
    builder = stages()[0]

    assert makefile
    assert f"UV_VERSION={makefile.group(1)}" in [i.arguments for i in builder if i.keyword == "ARG"]
    assert 'pip install "uv==${UV_VERSION}"' in builder[first(builder, "RUN", "uv==")].arguments


def test_requirements_are_copied_and_installed_before_the_source() -> None:
    builder = stages()[0]
    copy_requirements = first(builder, "COPY", "requirements-image.txt")
    install_requirements = first(builder, "RUN", "-r requirements-image.txt")

    assert copy_requirements < install_requirements
    for source in ("pyproject.toml", "privacy_core/", "operators/", "schemas/"):
        assert install_requirements < first(builder, "COPY", source), source
    assert first(builder, "COPY", "operators/") < first(builder, "RUN", "--no-deps .")


def test_no_remote_add_and_no_secret_in_the_image() -> None:
    for instruction in INSTRUCTIONS:
        assert instruction.keyword != "ADD", f"line {instruction.line}: use COPY; never ADD a URL"
        assert "http://" not in instruction.arguments and "https://" not in instruction.arguments
        if instruction.keyword in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", instruction.arguments):
                assert not SECRET_NAME.search(name), f"line {instruction.line}: {name}"
        if instruction.keyword == "COPY":
            assert not re.search(r"\.(key|pem|env)\b|secret", instruction.arguments, re.I), instruction.line


def test_runtime_takes_only_the_venv_from_the_builder() -> None:
    runtime = stages()[-1]
    copies = [i.arguments for i in runtime if i.keyword == "COPY" and "--from=" in i.arguments]
    packages = " ".join(i.arguments for i in runtime if i.keyword == "RUN" and "apt-get install" in i.arguments)

    assert copies == ["--from=builder /opt/venv /opt/venv"]
    assert "--no-install-recommends tini" in packages
    assert not re.search(r"gcc|build-essential|-dev\b|git\b|curl|wget", packages)


def test_environment_of_the_runtime() -> None:
    runtime = stages()[-1]
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    airflow_home = re.search(r"AIRFLOW_HOME=(\S+)", env)

    assert airflow_home and airflow_home.group(1) == "/opt/airflow"
    assert "HOME=/home/airflow" in env
    assert re.search(r"\bPATH=/opt/venv/bin:", env)
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root file system is read-only in the chart
    # The official chart mounts airflow.cfg, dags and logs under its airflowHome: the same folder.
    assert load_yaml(AIRFLOW_VALUES).get("airflowHome", "/opt/airflow") == airflow_home.group(1)
    created = next(i.arguments for i in runtime if i.keyword == "RUN" and "install -d" in i.arguments)
    assert "/opt/airflow /opt/airflow/dags /opt/airflow/logs" in created


def test_no_healthcheck_and_exec_form_entrypoint_and_cmd() -> None:
    runtime = stages()[-1]
    keywords = [i.keyword for i in INSTRUCTIONS]

    assert "HEALTHCHECK" not in keywords
    entrypoint = json.loads(next(i.arguments for i in runtime if i.keyword == "ENTRYPOINT"))
    cmd = json.loads(next(i.arguments for i in runtime if i.keyword == "CMD"))
    assert entrypoint == ["/usr/bin/tini", "--", "/usr/local/bin/imaging-privacy-entrypoint"]
    assert cmd == ["airflow", "version"]


@pytest.fixture
def entrypoint(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The entrypoint script from the Dockerfile, and a PATH where airflow and dask are stubs that echo."""
    copy = next(
        i
        for i in INSTRUCTIONS
        if i.keyword == "COPY" and i.arguments.endswith("/usr/local/bin/imaging-privacy-entrypoint")
    )
    assert "--chmod=0755" in copy.arguments
    script = tmp_path / "entrypoint"
    script.write_text(copy.heredocs[0])
    script.chmod(0o755)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for program in ("airflow", "dask"):
        stub = stubs / program
        stub.write_text(f'#!/bin/sh\necho "{program} $*"\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    return script, env


@pytest.mark.parametrize(
    ("arguments", "runs"),
    [
        (["scheduler"], "airflow scheduler"),
        (["version"], "airflow version"),
        (
            ["db", "check-migrations", "--migration-wait-timeout=60"],
            "airflow db check-migrations --migration-wait-timeout=60",
        ),
        (["airflow", "version"], "airflow version"),
        (["dask", "worker", "tcp://s:8786", "--nthreads=1"], "dask worker tcp://s:8786 --nthreads=1"),
        (["bash", "-c", "exec airflow scheduler"], "airflow scheduler"),
        (["sh", "-c", "echo from-sh"], "from-sh"),
        (["python", "-c", "print('from-python')"], "from-python"),
        ([], "airflow"),
    ],
)
def test_entrypoint_runs_airflow_unless_told_another_program(
    entrypoint: tuple[Path, dict[str, str]], arguments: list[str], runs: str
) -> None:
    script, env = entrypoint
    if arguments[:1] == ["python"]:  # the venv's python, as first on the image's PATH
        env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}

    done = subprocess.run([str(script), *arguments], env=env, capture_output=True, text=True, timeout=60, check=True)

    assert done.stdout.strip() == runs


def test_dask_configuration_written_at_build_gives_workers_privacy_cores_malloc_settings(tmp_path: Path) -> None:
    import dask.config
    import distributed  # noqa: F401  (registers distributed's defaults, pre-spawn-environ among them)

    from privacy_core.imaging.compute import WORKER_MALLOC_ENV

    run = next(i.arguments for i in INSTRUCTIONS if i.keyword == "RUN" and "WORKER_MALLOC_ENV" in i.arguments)
    target = re.search(r"> (\S+)$", run)
    code = re.search(r"-c '([^']+)'", run)
    assert target and code
    # The file lands in <venv>/etc/dask, a folder dask reads for a process running from that venv.
    assert Path(target.group(1)).parent == Path("/opt/venv/etc/dask")
    written = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, check=True)
    (tmp_path / "imaging-privacy.yaml").write_text(written.stdout)

    collected = dask.config.collect(paths=[str(tmp_path)], env={})
    merged = dask.config.merge(*dask.config.defaults, collected)
    environ = merged["distributed"]["nanny"]["pre-spawn-environ"]

    assert yaml.safe_load(written.stdout) == {"distributed": {"nanny": {"pre-spawn-environ": WORKER_MALLOC_ENV}}}
    # Ours replace distributed's MALLOC_TRIM_THRESHOLD_ default; its other defaults stay beside them.
    assert {k: environ[k] for k in WORKER_MALLOC_ENV} == WORKER_MALLOC_ENV
    assert environ["OMP_NUM_THREADS"] == 1


def dockerignore_ignores(path: str) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent folders, decides."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_build_context_holds_what_is_copied_and_nothing_private() -> None:
    sources = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments and not instruction.heredocs:
            sources += instruction.arguments.split()[:-1]
    assert sources

    for source in sources:
        assert not dockerignore_ignores(source.rstrip("/")), source
        assert (ROOT / source).exists(), source
    for kept in ("privacy_core/keys.py", "operators/hooks/dask.py", "schemas/DPRelease-1.0.json"):
        assert not dockerignore_ignores(kept), kept
    for private in (
        ".venv/bin/python",
        ".git/config",
        ".demo/ledger.db",
        "secret.key",
        "privacy_core/x.key",
        "operators/__pycache__/deid.cpython-311.pyc",
        "tests/conftest.py",
        "benchmarks/.data/x",
        ".env",
    ):
        assert dockerignore_ignores(private), private
