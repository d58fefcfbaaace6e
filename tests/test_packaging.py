"""The distribution owns its names: it installs beside packages that ship `server` and `tools`, every way users install.

The wheel used to put `server/` and `tools/` at the top of site-packages, where other projects' files
of the same names replaced ours (their server/cli.py ran as `contacts-mcp`) or, uninstalled, deleted
them. Each install here runs from a fresh environment with no network (see packaging_support), then
runs `contacts-mcp tools --sandbox`, which imports every tool module and lists them.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.packaging_support import ROOT, clean_copy, local_index, user_environment, write_wheel

TIMEOUT = 180

# A stand-in for the projects that clashed: top-level `server` with a cli.py, and `tools`.
_COLLIDER = {
    "server/__init__.py": b"",
    "server/cli.py": b'WHO = "collider"\n\ndef main():\n    print("collider")\n    return 0\n',
    "tools/__init__.py": b'WHO = "collider"\n',
    "collider-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: collider\nVersion: 1.0\n",
    "collider-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}


def run(command: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=user_environment(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def succeeds(command: list[str | Path], cwd: Path, **env: str) -> str:
    finished = run(command, cwd, **env)
    assert finished.returncode == 0, f"{command} exited {finished.returncode}:\n{finished.stdout}\n{finished.stderr}"
    return finished.stdout


def lists_the_tools(contacts_mcp: Path, cwd: Path) -> None:
    """`contacts-mcp tools --sandbox` ran our code: it lists our tools, not another project's output."""
    listed = succeeds([contacts_mcp, "tools", "--sandbox"], cwd)
    assert "get_contact" in listed
    assert "create_contact" in listed
    assert "collider" not in listed


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return local_index(tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("checkout") / "contacts-mcp")


@pytest.fixture(scope="module")
def built(index: Path, checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`uv build` as a release is made: the sdist, and the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    succeeds(["uv", "build", "--no-index", "--find-links", index, "--out-dir", out, checkout], checkout)
    return next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def collider(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wheel(tmp_path_factory.mktemp("collider"), "collider", "1.0", "py3-none-any", _COLLIDER)


def top_level_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        record = next(name for name in archive.namelist() if name.endswith(".dist-info/RECORD"))
        rows = archive.read(record).decode().splitlines()
    return {row.split(",", 1)[0].split("/", 1)[0] for row in rows if row}


def test_the_wheel_claims_one_import_package_and_its_metadata(built: tuple[Path, Path]) -> None:
    _, wheel = built
    assert top_level_names(wheel) == {"contacts_mcp", "contacts_mcp-0.1.0.dist-info"}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read("contacts_mcp-0.1.0.dist-info/entry_points.txt").decode()
    assert {"contacts_mcp/server/cli.py", "contacts_mcp/tools/models.py", "contacts_mcp/__main__.py"} <= names
    assert "contacts-mcp = contacts_mcp.server.cli:main" in entry_points


def test_the_sdist_holds_the_real_directories_and_the_licence(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        members = {member.name.split("/", 1)[1]: member for member in archive.getmembers() if "/" in member.name}
    assert {"server/cli.py", "tools/models.py", "contacts_mcp/__init__.py", "LICENSE", "pyproject.toml"} <= set(members)
    assert not any(member.issym() for member in members.values())


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-then-collider", "collider-then-ours"])
def test_contacts_mcp_runs_beside_a_package_with_top_level_server_and_tools(
    ours_first: bool, built: tuple[Path, Path], collider: Path, index: Path, tmp_path: Path
) -> None:
    _, wheel = built
    venv = tmp_path / "venv"
    succeeds(["uv", "venv", "--python", sys.executable, venv], tmp_path)
    python = venv / "bin" / "python"
    install = ["uv", "pip", "install", "--python", python, "--no-index", "--find-links", index]
    for package in (wheel, collider) if ours_first else (collider, wheel):
        succeeds([*install, package], tmp_path)

    lists_the_tools(venv / "bin" / "contacts-mcp", tmp_path)
    theirs = succeeds([python, "-c", "import server.cli, tools; print(server.cli.WHO, tools.WHO)"], tmp_path)
    assert theirs.split() == ["collider", "collider"]  # both stay whole: neither replaced the other's files

    succeeds(["uv", "pip", "uninstall", "--python", python, "collider"], tmp_path)
    lists_the_tools(venv / "bin" / "contacts-mcp", tmp_path)  # removing theirs removed nothing of ours


def test_uvx_from_a_checkout_runs_the_server(index: Path, checkout: Path, tmp_path: Path) -> None:
    uvx = ["uvx", "--no-index", "--find-links", index, "--from", checkout, "contacts-mcp", "tools", "--sandbox"]
    listed = succeeds(uvx, tmp_path, UV_TOOL_DIR=str(tmp_path / "tools"))
    assert "get_contact" in listed


def test_uv_tool_install_puts_a_working_command_on_the_path(index: Path, checkout: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    env = {"UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(bin_dir)}
    succeeds(["uv", "tool", "install", "--no-index", "--find-links", index, checkout], tmp_path, **env)
    lists_the_tools(bin_dir / "contacts-mcp", tmp_path)


def test_pip_install_of_a_checkout_gives_a_working_command(index: Path, checkout: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    succeeds([sys.executable, "-m", "venv", venv], tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--no-input"]
    succeeds([*pip, "install", "--no-index", "--find-links", index, checkout], tmp_path)
    lists_the_tools(venv / "bin" / "contacts-mcp", tmp_path)


def test_the_checkout_imports_the_same_package_the_wheel_installs() -> None:
    """In the repository, contacts_mcp/server and contacts_mcp/tools are the top-level directories themselves."""
    for name in ("server", "tools"):
        link = ROOT / "contacts_mcp" / name
        assert link.is_symlink()
        assert link.resolve() == (ROOT / name).resolve()
