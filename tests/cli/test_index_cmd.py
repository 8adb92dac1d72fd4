"""cbns index build and cbns evaluate --index: faiss parameters refused in one line before faiss."""
import pytest

from cbns.cli import main


@pytest.mark.parametrize("argv,message", [
    (["index", "build", "RUN", "--kind", "hnsw", "--ef-search", "2147483648"], "--ef-search: must be <= 1,048,576"),
    (["index", "build", "RUN", "--kind", "hnsw", "--ef-construction", "2147483648"], "--ef-construction: must be <="),
    (["index", "build", "RUN", "--kind", "hnsw", "--m", "2147483648"], "--m: must be <= 512"),
    (["index", "build", "RUN", "--kind", "hnsw", "--m", "1"], "--m: must be >= 2, got 1"),
    (["index", "build", "RUN", "--kind", "ivf", "--nlist", "2147483648"], "--nlist: must be <= the number of items (30)"),
    (["evaluate", "RUN", "--index", "--kind", "hnsw", "--ef-search", "2147483648"], "--ef-search: must be <= 1,048,576"),
])
def test_out_of_range_parameters_end_in_one_line(capsys, tiny_run, argv, message):
    code = main([str(tiny_run) if a == "RUN" else a for a in argv] + ["--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cbns: error: ") and message in err and err.count("\n") == 1


def test_a_built_index_refuses_an_out_of_range_search_width(capsys, tiny_run, tmp_path):
    from conftest import copy_run

    run = copy_run(tiny_run, tmp_path / "run")
    assert main(["index", "build", str(run), "--kind", "hnsw", "--threads", "1"]) == 0
    code = main(["evaluate", str(run), "--index", "--ef-search", "2147483648", "--threads", "1"])
    err = capsys.readouterr().err.splitlines()[-1]
    assert code == 2 and err.startswith("cbns: error: --ef-search: must be <= 1,048,576")
