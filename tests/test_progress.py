"""codesign/progress.py: plain lines off a terminal, silence when disabled, callback form."""
import io

from precsim.codesign import progress


def test_stages_print_one_line_per_stage_off_a_terminal():
    out = io.StringIO()
    with progress.stages("validate", total=3, stream=out) as p:
        p.advance("calibrating")
        p.advance("measuring kernels")
        p.advance("simulating")
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "validate: stage 1/3 calibrating", "validate: stage 2/3 measuring kernels",
        "validate: stage 3/3 simulating"]
    assert all(line.endswith(")") and " s" in line for line in lines)


def test_iterate_yields_every_item_and_counts():
    out = io.StringIO()
    assert list(progress.iterate(["a", "b"], "plans", stream=out)) == ["a", "b"]
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["plans: 0/2 a", "plans: 1/2 b"]
    assert "left" in lines[1]           # an estimate once one item is done


def test_disabled_prints_nothing():
    out = io.StringIO()
    assert list(progress.iterate(range(3), "x", stream=out, enabled=False)) == [0, 1, 2]
    with progress.reporter("validate", stream=out, enabled=False) as on_progress:
        on_progress("measuring", 1, 4)
    assert out.getvalue() == ""


def test_callback_form_prints_done_of_total():
    out = io.StringIO()
    with progress.reporter("calibrate", stream=out) as on_progress:
        on_progress("gemm", 0, 4)
        on_progress("stream", 2, 4)
    first, second = out.getvalue().splitlines()
    assert first.startswith("calibrate: 0/4 gemm (")
    assert second.startswith("calibrate: 2/4 stream (") and "left" in second


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_gets_a_bar_with_count():
    out = _Tty()
    with progress.stages("law validate", total=2, stream=out) as p:
        p.advance("fitting")
        p.advance("scoring")
    text = out.getvalue()
    assert "law validate" in text and "/2" in text and "stage 1/2" not in text


def test_eta_counts_only_the_steps_done_in_this_run():
    out = io.StringIO()
    with progress.reporter("sweep", stream=out, unit="config") as rep:
        rep("resumed", 90, 100)          # 90 resumed: no estimate from them
        rep.advance(5)
    first, second = out.getvalue().splitlines()
    assert first.startswith("sweep: 90/100 configs resumed (") and "left" not in first
    assert second.startswith("sweep: 95/100 configs (") and "left" in second
