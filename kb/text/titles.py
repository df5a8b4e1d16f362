"""Titles: the subject without a leading label ("Brief: …", "Resumen: …", "सार: …")."""
from __future__ import annotations

import re

#: A label of one or two short words before a colon, followed by the real title.
_LABEL = re.compile(r"^\s*[^\s:：]{1,12}(?:\s[^\s:：]{1,12})?\s*[:：]\s+(?=\S{2})")


def without_label(title: str) -> str:
    """``"Brief: Musk says …"`` → ``"Musk says …"``; a title without such a label is returned as is."""
    return _LABEL.sub("", title, count=1)
