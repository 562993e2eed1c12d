import nbformat
import pytest

from utils.notebooks import REPO_URL, d2l_requirement, full_run_minutes, main, setup_cell_source, sync_setup_cell


def test_setup_cell_installs_the_pinned_d2l_and_the_course_only_in_colab():
    source = setup_cell_source()
    assert 'if "google.colab" in sys.modules:' in source and REPO_URL in source
    assert f"--no-deps {d2l_requirement()}" in source and d2l_requirement() == "d2l==1.0.3"
    body = source.split('if "google.colab" in sys.modules:')[1].split("\n", 1)[1]
    assert all(line.startswith("    ") for line in body.strip("\n").splitlines())  # nothing runs elsewhere


def test_a_notebook_without_code_cells_is_named(tmp_path, capsys):
    path = tmp_path / "99_test.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · Test")]), path)
    with pytest.raises(SystemExit) as exit_:
        main(["sync-setup-cell", str(path)])
    assert exit_.value.code == 2 and "99_test.ipynb: the notebook has no code cell" in capsys.readouterr().err


def test_sync_rewrites_the_first_code_cell_once(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · Test"), nbformat.v4.new_code_cell("print('old setup')"),
                nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "99_test.ipynb"
    nbformat.write(nb, path)
    assert sync_setup_cell(path) is True
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == setup_cell_source(full_run_minutes(nb)) and cells[2].source == "x = 1"
    assert sync_setup_cell(path) is False
