"""What calendar clients do to a description: Google's editor wraps lines in divs, a
plain-text client keeps only the text of the HTML."""

from __future__ import annotations

import html
import re


def google_divs(description: str) -> str:
    lines = re.split(r"<br\s*/?>", description)
    return "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in lines)


def html_to_text(description: str) -> str:
    text = re.sub(r"<br\s*/?>", "\n", description, flags=re.I)
    text = re.sub(r"<li>", "\n• ", text)
    text = re.sub(r"</(?:ul|div|p)>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))
