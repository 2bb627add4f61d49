"""Times in the reader's time zone. The database stores UTC (ISO-8601 with a Z);
pages show local times and take local dates, in the browser's zone
(`st.context.timezone`), else the `WRITER_TIMEZONE` setting, else UTC."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = ZoneInfo("UTC")


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo | None:
    """The zone called `name`, or None for an empty or unknown name."""
    if not name:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def choose(*names: str | None) -> ZoneInfo:
    """The first known zone among `names` (browser's, then the setting's), else UTC."""
    for name in names:
        found = zone(name)
        if found is not None:
            return found
    return UTC


def parse_utc(stamp: str) -> dt.datetime:
    """A stored timestamp ("2026-11-26T15:08:35.123Z", or a bare date) as an aware UTC time."""
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def local(stamp: str | None, tz: dt.tzinfo, *, seconds: bool = False) -> str:
    """"2026-11-26 23:08" in `tz` for a stored UTC timestamp ("–" for none)."""
    if not stamp:
        return "–"
    return parse_utc(stamp).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds
                                                    else "%Y-%m-%d %H:%M")


def today(tz: dt.tzinfo) -> dt.date:
    return dt.datetime.now(tz).date()


def utc_instant(day: dt.date | str, tz: dt.tzinfo) -> str:
    """The UTC timestamp (as stored) of local midnight starting `day` in `tz`."""
    if isinstance(day, str):
        day = dt.date.fromisoformat(day[:10])
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    return start.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_range(since: dt.date | str | None, until: dt.date | str | None,
              tz: dt.tzinfo) -> tuple[str | None, str | None]:
    """Local dates `since`..`until` (both inclusive) as UTC bounds [start, end)."""
    start = utc_instant(since, tz) if since else None
    if until:
        if isinstance(until, str):
            until = dt.date.fromisoformat(until[:10])
        end = utc_instant(until + dt.timedelta(days=1), tz)
    else:
        end = None
    return start, end


def local_day_function(tz: dt.tzinfo):
    """A SQLite function: stored UTC timestamp -> its local date "YYYY-MM-DD" in `tz`
    (exact across daylight-saving changes, unlike a fixed offset)."""
    def local_day(stamp):
        if not stamp:
            return None
        return parse_utc(stamp).astimezone(tz).date().isoformat()
    return local_day
