"""Every series of a chart can be told apart: series that share a colour (the seeds of one
setting) differ in line style and marker, read back from the drawn matplotlib lines."""
from cbns.plots import canvas, panels
from cbns.plots.panels import Panel, Series, save_panels


def drawn_lines(monkeypatch, panel, tmp_path):
    """(label, colour, line style, marker) of every labelled line as matplotlib drew it."""
    seen = []
    real_save = canvas.save

    def capture(fig, path, dpi=110):
        for ax in fig.axes:
            for container, label in zip(*ax.get_legend_handles_labels()):  # errorbar: the data line first
                line = container.lines[0]
                seen.append((label, line.get_color(), line.get_linestyle(), line.get_marker()))
        return real_save(fig, path, dpi)

    monkeypatch.setattr(panels, "save", capture)
    save_panels([panel], tmp_path / "p.png")
    return seen


def test_two_seeds_of_one_sampler_are_drawn_differently(monkeypatch, tmp_path):
    series = [Series(f"{name} (seed {seed})", [1, 2, 3], [0.1, 0.2, 0.3 + seed], color_key=name, variant=seed)
              for name in ("inbatch", "cbns", "cbns-split") for seed in (0, 1)]
    lines = drawn_lines(monkeypatch, Panel("t", "x", "y", series), tmp_path)
    assert len(lines) == 6
    styles = [line[1:] for line in lines]
    assert len(set(styles)) == 6                          # no two lines look alike
    assert len({line[1] for line in lines}) == 3          # one colour per sampler
    assert lines[0][1] == lines[1][1] and lines[0][2:] != lines[1][2:]   # its seeds: style and marker
