"""The centre's office: telling cardholders (and their insured units) that their cards are
ready for collection, as ``cardperso registry notify --sms F --letters F`` does.

The same library calls as the CLI: :func:`cardperso.registry.production.notify` makes the cards
ready (accounts opened, made temporary cards), :func:`cardperso.registry.notices.messages_for`
writes the messages and :func:`~cardperso.registry.notices.deliver` sends them through the
CLI's channels, the SMS gateway's upload file (:class:`~cardperso.registry.notices.SmsFile`)
and the letters to print (:class:`~cardperso.registry.notices.Letters`), each message recorded
per channel in the registry. Both files are written into a private temporary directory (mode
0700, removed after the answer) and sent as one ZIP archive (``notify-YYYYMMDD.zip``: the two
files as the CLI writes them, byte for byte). For centre staff only.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from cardperso.errors import UsageError
from cardperso.outputs import atomic_write_bytes
from cardperso.registry import notices, production
from cardperso.registry.calendar import parse_day
from cardperso.storage.db import Database
from cardperso.web.core import guarded
from cardperso.web.core import log_action as _log
from cardperso.web.office import OFFICE, _actor, _download, _produce

__all__ = ["ROUTES"]


@guarded("/office/notify", OFFICE)
async def notify(request: Request) -> Response:
    """``registry notify --date D --sms sms-D.csv --letters letters-D.txt``, the two files in
    one archive."""
    form = await request.form()
    given = str(form.get("date", "")).strip()
    day = parse_day(given, "date") if given else datetime.date.today()
    stamp = f"{day:%Y%m%d}"
    sms_name, letters_name = f"sms-{stamp}.csv", f"letters-{stamp}.txt"
    counts: dict[str, int] = {}

    def write(db: Database, out: Path, _request: Request) -> str:
        done = production.notify(db, date=day, actor=_actor(request))
        if not done:
            raise UsageError("no card is waiting to be made ready for collection (no file written)")
        messages = notices.messages_for(db, [n.app_id for n in done], units=True)
        sms, letters = out.parent / sms_name, out.parent / letters_name
        counts.update(
            notices.deliver(db, messages, [notices.SmsFile(sms), notices.Letters(letters)])
        )
        counts["cards"] = len(done)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in (sms, letters):
                z.writestr(zipfile.ZipInfo(path.name, day.timetuple()[:6]), path.read_bytes())
        atomic_write_bytes(out, archive.getvalue())  # mode 0600: names and phones
        return f"notify-{stamp}.zip"

    name, data = _produce(request, write, "notify.zip")
    sent = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    _log(request, "notify", name, f"ok: {sent}")
    return _download(name, data, "application/zip")


ROUTES: Final[list[BaseRoute]] = [Route("/office/notify", notify, methods=["POST"])]
