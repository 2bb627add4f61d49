"""Write page: an article another process writes (the CLI, another app server on the same
database; issue 24), followed from the drafts it saves."""
import streamlit as st

from views.common import guarded, registry, running_label, stop_job
from writer.access import Actor
from writer.io.i18n import Translator
from writer.io.markup import images_as_links
from writer.kinds import ACTIVE
from writer.runs.pacing import progress_fraction
from writer.runs.remote import elsewhere
from writer.storage.store import Store

FOLLOW_S = 1.0  # how often the saved text is read again


def follow_elsewhere(article_id: int, store: Store, actor: Actor, t: Translator) -> None:
    """Its saved text and progress, read again every FOLLOW_S while its writer is alive
    (with Stop, for who may: a request the writing process honours). Once it has ended
    (or its writer is gone) the page reruns and shows it as any saved article."""
    live = bool(elsewhere(registry(), article_id))

    @st.fragment(run_every=FOLLOW_S if live else None)
    @guarded
    def follow() -> None:
        row = store.get(article_id)
        found = elsewhere(registry(), article_id) if live else []
        if row is None or row["status"] not in ACTIVE or (live and not found):
            st.rerun(scope="app")  # ended, deleted or its writer died: the page redraws it
        if found:
            running = found[0]
            st.progress(progress_fraction(running.words, running.target_words),
                        text=running_label(running, t))
            if actor.may_change(running.author):
                st.button(t("write.stop"), key=f"elsewhere-stop-{article_id}",
                          icon=":material/stop_circle:", on_click=stop_job,
                          args=(article_id,), disabled=running.stopping)
        else:
            st.caption(t(f"statuses.{row['status']}"))
        st.markdown(images_as_links(row["content"]))

    follow()
