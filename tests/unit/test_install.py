"""The executables install-plugins writes: self-contained, and lean from their first line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multinic.plugins.install import (
    EXECUTABLES,
    executable_text,
    install_plugins,
    installed_from_source,
    package_root,
)


def test_the_collector_is_off_before_the_plugin_is_imported() -> None:
    lines = executable_text("multinic-bridge").splitlines()
    assert lines[0].endswith(" -IS")
    assert lines.index("gc.disable()") < lines.index("from multinic.plugins.bridge import main")


def test_an_installed_executable_answers_version_with_a_bare_environment(tmp_path: Path) -> None:
    (bridge,) = (p for p in install_plugins(str(tmp_path)) if p.endswith("/multinic-bridge"))
    # Run as a runtime runs it: by its #! line, with nothing but CNI_* in the environment.
    done = subprocess.run(
        [bridge], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert "1.0.0" in answer["supportedVersions"]


def test_the_stub_appends_the_package_directory_after_the_standard_library() -> None:
    # Inserted first, anything installed beside multinic could shadow a standard module.
    text = executable_text("multinic-ipam")
    assert f"sys.path.append({package_root()!r})" in text
    assert "insert(0" not in text


# --- a normal install: the package built as a wheel and pip-installed, not this checkout --------

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multinic built as a wheel from a copy of the checkout (the checkout stays clean)."""
    work = tmp_path_factory.mktemp("build")
    project = work / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", project / "src", ignore=ignore)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(work / "wheels"),
            str(project),
        ]
    )
    shutil.rmtree(project)  # the installed plugins must not need the source either
    (built,) = (work / "wheels").glob("multinic-*.whl")
    return built


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done


def install_from(python: str, bin_dir: Path, path_entry: str | None = None) -> list[str]:
    """install_plugins as the installed package runs it (isolated: no checkout on sys.path)."""
    prelude = f"import sys; sys.path.append({path_entry!r}); " if path_entry else ""
    code = (
        f"{prelude}from multinic.plugins.install import install_plugins, installed_from_source; "
        f"print(installed_from_source()); print('\\n'.join(install_plugins({str(bin_dir)!r})))"
    )
    # -S with a path entry: the test's own site-packages holds this checkout, editable.
    flags = ["-I", "-S"] if path_entry else ["-I"]
    lines = run([python, *flags, "-c", code], cwd="/").stdout.split()
    assert lines[0] == "False", "the installed package must not look like a source tree"
    return lines[1:]


def assert_plugins_answer_with_nothing_else(written: list[str], forbidden: list[str]) -> None:
    assert len(written) == len(EXECUTABLES)
    for path in written:
        text = Path(path).read_text()
        for place in forbidden:
            assert place not in text, f"{path} refers to {place}"
    for name in ("multinic-bridge", "multinic-ipam", "multinic-host-local"):
        (plugin,) = (p for p in written if p.endswith("/" + name))
        # Executed as a runtime does: by its #! line, with an empty environment, from /.
        done = subprocess.run(
            [plugin],
            env={"CNI_COMMAND": "VERSION"},
            capture_output=True,
            cwd="/",
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "1.1.0" in json.loads(done.stdout)["supportedVersions"]


def test_plugins_of_a_package_installed_into_a_venv_need_only_that_venv(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ]
    )

    written = install_from(python, tmp_path / "bin")

    assert_plugins_answer_with_nothing_else(written, [str(REPO), str(wheel.parent)])
    assert all(f"sys.path.append('{venv}/lib/" in Path(p).read_text() for p in written)


def test_plugins_of_a_package_installed_with_target_need_only_that_directory(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(
        [*pip, "install", "--no-deps", "--no-index", "--quiet", "--target", str(target), str(wheel)]
    )

    # The system's interpreter (the one this test's venv was made from), as on a node.
    system_python = getattr(sys, "_base_executable", sys.executable)
    written = install_from(system_python, tmp_path / "bin", str(target))

    assert_plugins_answer_with_nothing_else(written, [str(REPO), str(wheel.parent)])


def test_install_plugins_from_a_checkout_says_the_executables_depend_on_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from multinic.cli.main import cli

    done = CliRunner().invoke(cli, ["install-plugins", str(tmp_path)])

    assert done.exit_code == 0
    assert installed_from_source()  # the test suite runs from the editable checkout
    assert "runs from the source tree" in done.stderr and "pip install" in done.stderr


def test_install_plugins_only_writes_the_executables_named(tmp_path: Path) -> None:
    # A DaemonSet's init container puts only the shim on its host (deploy/, docs/deploy.md).
    from click.testing import CliRunner

    from multinic.cli.main import cli

    done = CliRunner().invoke(cli, ["install-plugins", "--only", "multinic-shim", str(tmp_path)])

    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multinic-shim"]


def test_install_plugins_only_an_unknown_name_is_refused_writing_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from multinic.cli.main import cli

    target = tmp_path / "bin"
    done = CliRunner().invoke(cli, ["install-plugins", "--only", "multinic-shin", str(target)])

    assert done.exit_code == 2
    assert "multinic-shin" in done.stderr and "multinic-shim" in done.stderr
    assert not target.exists()
