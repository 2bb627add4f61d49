"""The prompt plan: what the engine asks, built from a Brief before it starts."""
from __future__ import annotations

from writer.brief import Brief
from writer.generation.length import LengthPlan, budget_for
from writer.generation.plan import PromptPlan, max_tokens_for, plan_for
from writer.generation.prompts import default_prompts


def test_max_tokens_bounds_the_answer():
    assert max_tokens_for(Brief(topic="x", target_words=800, language="zh"), 8192) == 2600
    assert max_tokens_for(Brief(topic="x", target_words=800, language="en"), 8192) == 2120
    assert max_tokens_for(Brief(topic="x", target_words=20000, language="zh"), 8192) == 8192


def test_a_free_form_plan_asks_the_rendered_brief_within_the_generous_bound():
    brief = Brief(topic="流式输出", target_words=800, language="zh")
    plan = plan_for(brief, length_control=False, max_output_tokens=8192)
    assert plan.messages == default_prompts().render(brief)
    assert plan.length is None and plan.max_tokens == 2600 and not plan.long_form


def test_a_length_controlled_plan_is_budgeted_by_the_providers_tokenizer():
    brief = Brief(topic="streaming", target_words=600, language="en")
    plan = plan_for(brief, provider_kind="openai", max_output_tokens=8192)
    assert plan.length == LengthPlan.for_target(600, "en")
    assert plan.max_tokens == budget_for("openai").max_tokens(720, "en", 8192)
    assert plan_for(brief, max_output_tokens=300).max_tokens == 300  # the cap holds
    assert not plan.long_form  # under 1,500 words: one piece


def test_a_long_plan_carries_the_outline_and_section_prompts_of_its_brief():
    prompts = default_prompts()
    brief = Brief(topic="远程办公", content_type="marketing_copy", target_words=2000, language="zh",
                  keywords=("效率",))
    plan = plan_for(brief, prompts)
    assert plan.long_form and plan.outline_sections() == 4
    assert plan.outline() == prompts.outline(brief, 4)
    section = dict(title="T", outline="1. a (500)", number=2, count=4, heading="b",
                   section_words=500, previous="前文")
    assert plan.section(**section) == prompts.section(brief, **section)
    assert "效率" in plan.section(**section)[0]["content"] + plan.section(**section)[1]["content"]


def test_follow_up_prompts_extend_the_request_they_continue():
    brief = Brief(topic="streaming", target_words=600, language="en")
    plan = plan_for(brief)
    messages = plan.continuation(plan.messages, "Text so far.")
    assert messages[:2] == plan.messages and messages[2] == {"role": "assistant",
                                                             "content": "Text so far."}
    longer = plan.lengthen(plan.messages, "Short.", words=100, target_words=600)
    assert longer[:3] == messages[:2] + [{"role": "assistant", "content": "Short."}]
    assert "600" in longer[-1]["content"] and longer[-1]["role"] == "user"


def test_a_plan_asking_something_else_keeps_its_budget_and_length():
    plan = plan_for(Brief(topic="streaming", target_words=2000, language="en"))
    revised = plan.with_messages([{"role": "user", "content": "revise"}])
    assert revised.messages == [{"role": "user", "content": "revise"}]
    assert (revised.max_tokens, revised.length, revised.long_form) == (
        plan.max_tokens, plan.length, True)


def test_a_bare_plan_is_free_form_and_never_long():
    plan = PromptPlan([{"role": "user", "content": "hi"}], 100)
    assert plan.length is None and not plan.long_form and plan.max_output_tokens == 8192
    assert plan.continuation(plan.messages, "so far")[-1]["role"] == "user"
