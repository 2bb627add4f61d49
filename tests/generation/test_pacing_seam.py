from writer.generation.seam import SeamFilter
from writer.runs.pacing import Pacer, overshoot_percent, progress_fraction


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_first_delta_is_painted_at_once_then_on_a_short_ramp_then_coalesced():
    clock = Clock()
    pacer = Pacer(base_s=0.08, per_char_s=1 / 200_000, clock=clock)
    assert pacer.due(5)  # first text: immediately
    clock.now = 0.015
    assert not pacer.due(20)
    clock.now = 0.021  # 2nd paint after 20 ms
    assert pacer.due(40)
    clock.now = 0.05
    assert not pacer.due(60)
    clock.now = 0.062  # 3rd after 40 ms
    assert pacer.due(80)
    clock.now = 0.12
    assert not pacer.due(90)  # then the full budget
    assert round(pacer.wait_s(90), 3) == 0.022
    clock.now = 0.143
    assert pacer.due(100) and pacer.paints == 4


def test_budget_grows_with_the_text_so_long_articles_repaint_less():
    pacer = Pacer(base_s=0.08, per_char_s=1 / 200_000, ramp=())
    assert pacer.budget_s(0) == 0.08
    assert round(pacer.budget_s(60_000), 3) == 0.38


def test_budget_stretches_with_the_number_of_viewers():
    pacer = Pacer(base_s=0.08, per_char_s=0, ramp=())
    pacer.scale = 5.0
    assert round(pacer.budget_s(1000), 3) == 0.4


def test_progress_and_overshoot():
    assert progress_fraction(412, 800) == 412 / 800
    assert progress_fraction(1000, 800) == 1.0
    assert overshoot_percent(799, 800) == 0 and overshoot_percent(960, 800) == 20


def feed_all(seam, pieces):
    return "".join(seam.feed(p) for p in pieces) + seam.flush()


def test_repeated_tail_is_dropped_even_when_split_across_chunks():
    seam = SeamFilter("The quick brown fox jumps")
    assert feed_all(seam, ["fox ", "ju", "mps over the lazy dog."]) == " over the lazy dog."
    assert seam.dropped == "fox jumps"


def test_chinese_repeat_is_dropped():
    seam = SeamFilter("流式输出让读者安心，第一个字越早出现越好。")
    assert feed_all(seam, ["第一个字越", "早出现越好。", "接下来是第二段。"]) == "接下来是第二段。"


def test_no_overlap_passes_through_without_delay():
    seam = SeamFilter("The end of the first part.")
    assert seam.feed(" Zebras") == " Zebras"  # not in the tail: decided at once
    assert seam.feed(" run.") == " run."


def test_short_coincidences_are_not_dropped():
    seam = SeamFilter("and then the")
    assert feed_all(seam, [" the", "atre opened."]) == " theatre opened."


def test_held_text_is_released_when_the_stream_ends():
    seam = SeamFilter("abc def ghi")
    assert seam.feed("def") == ""  # could be a repeat: held
    assert seam.flush() == "def"  # only 3 characters: shorter than a real repeat
