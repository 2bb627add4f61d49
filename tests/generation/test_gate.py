"""The length gate on its own: no provider, no HTTP. The engine feeds it text as it
arrives and shows what it returns; these tests play the engine's part with a plain
string and a WordCounter."""
from __future__ import annotations

from writer.generation.counting import WordCounter, count_words
from writer.generation.gate import Bounds, LengthGate
from writer.generation.length import LengthPlan


class Article:
    """What the engine has shown so far, counted as it grows."""

    def __init__(self, text: str = ""):
        self.text = text
        self.counter = WordCounter(text)
        self.gate = LengthGate(self.counter, lambda: self.text[-2000:])

    def feed(self, chunk: str, bounds: Bounds) -> bool:
        shown, ended = self.gate.feed(chunk, bounds)
        self.show(shown)
        return ended

    def show(self, text: str) -> None:
        self.text += text
        self.counter.feed(text)


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


BOUNDS = Bounds(target=100, low=80, high=120)


def test_far_from_the_end_text_is_shown_as_it_comes():
    article = Article(words(10))
    assert article.feed(" and half a sent", BOUNDS) is False
    assert article.text == words(10) + " and half a sent" and article.gate.held == ""


def test_near_the_end_the_unfinished_sentence_is_held():
    article = Article(words(78) + ".")
    assert article.feed(" One more. And then", BOUNDS) is False
    assert article.text.endswith("word. One more.")
    assert article.gate.held == " And then"
    assert article.feed(" some", BOUNDS) is False  # still no sentence end: still held
    assert article.gate.held == " And then some" and article.text.endswith("One more.")


def test_on_target_it_ends_at_the_next_sentence_end_and_trims_the_rest():
    article = Article(words(95))
    assert article.feed(" a b c d e f g. h i j. k", BOUNDS) is True
    assert article.text.endswith(" a b c d e f g.")
    assert count_words(article.text) == 102 and article.gate.held == ""
    assert article.gate.trimmed == " h i j. k"


def test_a_sentence_that_runs_past_the_range_is_not_kept():
    """Past the target, the first sentence end is beyond high (1.2×): the piece ends at
    the last sentence end within range instead (a 100 字 post no longer lands at 1.25×)."""
    article = Article("字" * 90 + "。")
    assert article.feed("好" * 33 + "。后面", BOUNDS) is True
    assert article.text == "字" * 90 + "。" and count_words(article.text) == 90  # in range
    assert article.gate.trimmed == "好" * 33 + "。后面"
    article = Article("字" * 90 + "。")  # one end within range: that one
    assert article.feed("好" * 10 + "。" + "长" * 30 + "。", BOUNDS) is True
    assert article.text.endswith("好" * 10 + "。") and count_words(article.text) == 100


def test_a_cjk_sentence_ends_without_a_space_after_it():
    article = Article("字" * 95)
    assert article.feed("一二三四五六。七八", BOUNDS) is True
    assert article.text.endswith("一二三四五六。") and article.gate.trimmed == "七八"


def test_a_sentence_end_is_only_known_once_the_next_character_arrived():
    latin = Article(words(97))
    assert latin.feed(" and it ends.", BOUNDS) is False  # "ends.5" could still follow
    assert latin.text == words(97) and latin.gate.held == " and it ends."
    assert latin.feed(" Next", BOUNDS) is True
    assert latin.text.endswith("and it ends.") and latin.gate.trimmed == " Next"

    cjk = Article("字" * 97)
    assert cjk.feed("他说：“好了。", BOUNDS) is False  # a closing quote may follow
    assert cjk.text == "字" * 97 and cjk.gate.held == "他说：“好了。"
    assert cjk.feed("”然后", BOUNDS) is True
    assert cjk.text.endswith("他说：“好了。”") and cjk.gate.trimmed == "然后"


def test_a_heading_is_never_where_the_text_ends():
    article = Article(words(85))
    assert article.feed(". Done.\n\n## Next part\n", BOUNDS) is False
    assert article.text.endswith("word. Done.") and article.gate.held == "\n\n## Next part\n"
    # The answer stops there (cut by max_tokens): the heading is dropped, not shown.
    assert article.gate.end(BOUNDS, complete=False) == ""
    assert article.gate.trimmed == "\n\n## Next part\n" and article.gate.held == ""


def test_a_list_item_is_never_cut_mid_line():
    article = Article(words(85) + ".\n\n")
    assert article.feed("- first item\n- second it", BOUNDS) is False
    assert article.text.endswith("- first item") and article.gate.held == "\n- second it"
    assert article.feed("em\n- third", BOUNDS) is False
    assert article.text.endswith("- first item\n- second item")


def test_past_the_range_without_an_end_at_the_target_it_ends_on_the_last_one_that_fits():
    article = Article(words(90))
    assert article.feed(" a b c d e f g h i. " + words(30, "more"), Bounds(100, 80, 110)) is True
    assert article.text.endswith(" a b c d e f g h i.") and count_words(article.text) == 99
    assert article.gate.trimmed == " " + words(30, "more")


def test_a_runaway_sentence_is_held_then_dropped():
    article = Article(words(90))
    bounds = Bounds(100, 80, 110)
    assert article.feed(" " + words(30, "on"), bounds) is False  # 120 words: past high, held
    assert article.text == words(90)
    assert article.feed(" " + words(20, "on"), bounds) is True  # past 1.25 × high: give up
    assert article.text == words(90) and article.gate.trimmed == " " + words(50, "on")


def test_at_the_end_the_models_own_ending_is_kept_when_it_fits():
    article = Article(words(95) + ".")
    assert article.feed(" And so it ends", BOUNDS) is False
    assert article.gate.held == " And so it ends"
    shown = article.gate.end(BOUNDS, complete=True)  # finish_reason "stop"
    assert shown == " And so it ends" and article.gate.trimmed == ""


def test_at_the_end_of_a_cut_answer_half_a_sentence_is_never_shown():
    article = Article(words(85) + ".")
    assert article.feed(" Last one. And half", BOUNDS) is False
    article.show(article.gate.end(BOUNDS, complete=False))  # finish_reason "length"
    assert article.text.endswith("word. Last one.") and article.gate.trimmed == " And half"


def test_at_the_end_the_last_sentence_counts_only_when_the_model_finished():
    finished, cut = Article(words(95)), Article(words(95))
    for article in (finished, cut):
        assert article.feed(" a b c. d e f.", BOUNDS) is False  # "f." is not known yet
        assert article.text.endswith(" a b c.") and article.gate.held == " d e f."
    assert finished.gate.end(BOUNDS, complete=True) == " d e f."  # finish_reason "stop"
    assert cut.gate.end(BOUNDS, complete=False) == ""  # "length": it may have gone on
    assert cut.gate.trimmed == " d e f."


def test_an_ending_past_the_range_is_never_shown():
    article = Article(words(95) + ".")
    assert article.feed(" " + words(26) + " end.", BOUNDS) is False  # 122 words: held
    assert article.gate.end(BOUNDS, complete=True) == ""
    assert article.gate.trimmed == " " + words(26) + " end."


def test_release_hands_back_everything_held():
    article = Article(words(85) + ".")
    article.feed(" One. Two and", BOUNDS)
    article.gate.hold(" a tail")
    assert article.gate.release() == " Two and a tail" and article.gate.held == ""
    assert article.gate.end(BOUNDS, complete=True) == ""  # nothing held: nothing to end


def test_trimmed_text_adds_up_over_pieces():
    article = Article(words(99))
    assert article.feed(" one. two", BOUNDS) is True
    next_piece = Bounds(article.counter.words + 1, 0, article.counter.words + 5)
    assert article.feed(" three. four", next_piece) is True
    assert article.gate.trimmed == " two four"


def test_section_bounds():
    plan = LengthPlan.for_target(2000, "en")  # 1600–2400
    middle = Bounds.for_section(plan, before=500, words=400, last=False)
    assert middle == Bounds(target=900, low=820, high=980)
    last = Bounds.for_section(plan, before=1700, words=400, last=True)
    assert last == Bounds(target=2000, low=2020, high=2400)
    # A section planned too small still moves the article forward.
    tiny = Bounds.for_section(plan, before=2500, words=0, last=False)
    assert tiny.target > 2500 and tiny.high > tiny.target
