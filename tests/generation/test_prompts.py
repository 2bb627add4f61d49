import shutil

import pytest

from writer.brief import CONTENT_TYPES, Brief, BriefError
from writer.generation.prompts import PROMPTS_DIR, PromptError, load_prompts


@pytest.fixture
def prompt_dir(tmp_path):
    target = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, target)
    return target


def test_shipped_templates_load_and_render_every_field():
    prompts = load_prompts()
    assert set(prompts.templates) == set(CONTENT_TYPES)
    for content_type in CONTENT_TYPES:
        brief = Brief(topic="咖啡机测评", content_type=content_type, style="casual",
                      target_words=600, language="zh", audience="上班族",
                      keywords="意式, 性价比")
        system, user = prompts.render(brief)
        assert system["role"] == "system" and user["role"] == "user"
        text = system["content"] + user["content"]
        for expected in ("咖啡机测评", "600", "Simplified Chinese", "上班族", "意式, 性价比",
                         "casual and friendly"):
            assert expected in text, (content_type, expected)
        assert "{" not in text and "}" not in text


def test_optional_fields_get_defaults_and_free_text_style_passes_through():
    brief = Brief(topic="Launch day", language="en", style="witty, like a friend")
    user = load_prompts().render(brief)[1]["content"]
    assert "witty, like a friend" in user
    assert "general readers" in user
    assert "about 800 words" in user


def test_unknown_placeholder_fails_at_load(prompt_dir):
    path = prompt_dir / "blog.toml"
    path.write_text(path.read_text().replace("{topic}", "{topic} {tone}"))
    with pytest.raises(PromptError, match=r"blog.toml: unknown placeholder.*tone"):
        load_prompts(prompt_dir)


def test_missing_placeholder_fails_at_load(prompt_dir):
    path = prompt_dir / "social_post.toml"
    path.write_text(path.read_text().replace("{keywords}", "none"))
    with pytest.raises(PromptError, match=r"social_post.toml: missing placeholder.*keywords"):
        load_prompts(prompt_dir)


def test_missing_template_and_broken_braces_fail(prompt_dir):
    (prompt_dir / "marketing_copy.toml").unlink()
    with pytest.raises(PromptError, match="marketing_copy"):
        load_prompts(prompt_dir)
    shutil.copy(PROMPTS_DIR / "marketing_copy.toml", prompt_dir)
    path = prompt_dir / "blog.toml"
    path.write_text(path.read_text().replace("{topic}", "{topic"))
    with pytest.raises(PromptError, match="blog.toml"):
        load_prompts(prompt_dir)


@pytest.mark.parametrize("kwargs, message", [
    ({"topic": "   "}, "topic is empty"),
    ({"topic": "x", "target_words": 49}, "out of range"),
    ({"topic": "x", "target_words": 20001}, "out of range"),
    ({"topic": "x", "content_type": "poem"}, "unknown content type"),
    ({"topic": "x", "language": "fr"}, "unknown language"),
])
def test_brief_validation(kwargs, message):
    with pytest.raises(BriefError, match=message):
        Brief(**kwargs)


def test_brief_normalises_keywords_and_topic():
    brief = Brief(topic="  AI   写作  ", keywords="效率，自动化、效率; AI")
    assert brief.topic == "AI 写作"
    assert brief.keywords == ("效率", "自动化", "AI")
