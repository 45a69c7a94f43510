"""Build hook: render Sphinx roles left in docstrings (``:meth:`x```) as plain code.

Some docstrings use reStructuredText roles; Markdown shows them as ``:meth:x``. This drops the
role prefix so only the code span remains.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|exc|mod|data|obj|const):(?=<code)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub("", html)
