"""`python -m writer reindex`: rebuild every search index from the articles (after a
restore, an import made with SQL, or an index change). Safe while the app runs: the
work is done in short write transactions (writer/storage/search.py `reindex`). On
PostgreSQL (WRITER_DATABASE_URL; writer/storage/search_pg.py `reindex`) the same
command rebuilds the trigram index concurrently and recomputes `articles.grams` batch
by batch, with the same progress lines ("reindex articles_grams: done/total articles")."""
from __future__ import annotations

from writer.cli.output import EXIT_OK, open_store, say
from writer.storage.search import reindex


def cmd_reindex(args) -> int:
    store = open_store()

    def progress(index: str, done: int, total: int) -> None:
        say(f"reindex {index}: {done}/{total} articles")

    total = reindex(store, progress)
    say(f"reindexed {total} articles")
    return EXIT_OK
