"""Baseline for scripts/bench_stream_ui.py: a Write page "written the way Streamlit's
docs show" (st.write_stream over an OpenAI stream), not part of the app.

    OPENAI_BASE_URL=... OPENAI_API_KEY=... streamlit run scripts/naive_write_page.py

- a text input and a button;
- on click: a new `openai.OpenAI()` client (per click), `chat.completions.create(stream=True)`;
- every delta goes straight to `st.write_stream` (which re-sends the whole text each time);
- a progress bar (`st.progress`) updated on every delta with the word count so far.

The word count is kept incrementally (cheap), so what this page measures is Streamlit's
own per-delta cost, not a slow Python word counter. `NAIVE_TARGET_WORDS` sets the target.
"""
import os

import openai
import streamlit as st

TARGET = int(os.environ.get("NAIVE_TARGET_WORDS", "800"))
MODEL = os.environ.get("WRITER_MODEL", "gpt-4o-mini")

st.title("Write (naive)")
topic = st.text_input("Topic")

if st.button("Generate", type="primary"):
    client = openai.OpenAI()  # reads OPENAI_API_KEY / OPENAI_BASE_URL
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "You are a helpful marketing writer."},
                  {"role": "user", "content": f"Write a blog article of about {TARGET} words "
                                              f"in English about: {topic}"}],
        stream=True,
    )
    progress = st.progress(0.0, text="Waiting for the first words…")

    def deltas():
        words = 0
        at_space = True
        for chunk in stream:
            if not chunk.choices:
                continue
            text = chunk.choices[0].delta.content or ""
            if not text:
                continue
            for ch in text:  # count word starts incrementally
                if ch.isspace():
                    at_space = True
                elif at_space:
                    words += 1
                    at_space = False
            progress.progress(min(1.0, words / TARGET), text=f"{words} / {TARGET} words")
            yield text

    st.write_stream(deltas())
    st.success("Done.")
