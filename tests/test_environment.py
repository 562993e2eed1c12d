"""The environment: conda and pip agree, the self-check runs, and every d2l API we use is exercised."""
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from utils import envcheck

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_and_requirements_txt_list_the_same_packages():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    conda_pip = {str(Requirement(r)) for r in pip_sections[0]}
    pip = {str(r) for r in envcheck.read_requirements(ROOT / "requirements.txt")}
    assert conda_pip == pip, (f"only in environment.yml: {sorted(conda_pip - pip)}; "
                              f"only in requirements.txt: {sorted(pip - conda_pip)}")
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python == ["python>=3.11"]


def test_a_missing_or_wrong_version_is_reported():
    ok, message = envcheck.check_requirement(Requirement("surely-not-installed-package>=1"))
    assert not ok and "not installed" in message
    ok, message = envcheck.check_requirement(Requirement("numpy<1"))
    assert not ok and "found 2." in message


def test_self_check_passes_and_prints_one_line_per_item(capsys):
    assert envcheck.main(ROOT) == 0
    lines = capsys.readouterr().out.splitlines()
    count = sum(len(envcheck.read_requirements(ROOT / f)) for f in envcheck.REQUIREMENT_FILES)
    assert len([line for line in lines if line.startswith(("OK", "FAIL"))]) == count + len(envcheck.D2L_CHECKS)
    assert lines[-1].endswith("0 FAIL")


@pytest.mark.parametrize("name", sorted(envcheck.D2L_CHECKS))
def test_d2l_api_works_with_the_installed_versions(name):
    ok, message = envcheck.run_d2l_check(name)
    assert ok, message


def test_every_d2l_name_the_course_uses_has_a_check():
    sources = [path.read_text() for path in (ROOT / "utils").glob("*.py")]
    for path in (ROOT / "notebooks").glob("*.ipynb"):  # the code cells only: outputs may print d2l's own source
        sources += [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    used = set()
    for source in sources:
        used |= set(re.findall(r"\bd2l\.([A-Za-z_]\w*)", source))
    assert used, "found no use of d2l at all"
    missing = used - set(envcheck.D2L_CHECKS) - {"torch"}  # `import d2l.torch as d2l` is the module itself
    assert not missing, f"d2l names used without a check in utils/envcheck.py: {sorted(missing)}"
